//! Precision assignment, all of it: calibrators that turn activation statistics into int8 scales
//! (`calibrate`, `calibrators`, `histogram`), the precision plan (`plan`, `plan_file`) and its
//! search under an accuracy budget (`request`, `search`, `judge`, `cost`), and its legalization
//! into the strongly typed compile graph (casts around fp16 layers, QuantizeLinear and
//! DequantizeLinear around int8 ones).

#![forbid(unsafe_code)]

pub mod calibrate;
pub mod calibrators;
pub mod histogram;
mod judge;
pub mod legalize;
pub mod plan;
pub mod plan_file;
pub mod request;
mod search;

pub use judge::{Agreement, Judge, Outputs, Score};
pub use legalize::{int8_weight_axis, legalize, per_channel_scales, runs_in_half, LegalizeError};
pub use plan::{AutoBase, LayerPlan, PlanMode, PrecisionPlan};

use std::collections::HashMap;
use temblor_ir::{Error, Graph, NodeId, Precision, Result};

/// fp16's largest finite value: a layer whose values reach beyond it stays fp32.
pub const FP16_MAX: f32 = 65504.0;

/// What accuracy `auto` must keep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    /// Worst relative L2 at the checkpoints, against fp32.
    RelL2(f64),
    /// Detection agreement with fp32 (COCO AP with fp32's detections as ground truth).
    Agreement(f64),
}

impl Budget {
    /// `rel_l2=0.01`, `ap=0.95`, or a bare number (a relative L2).
    pub fn parse(text: &str) -> std::result::Result<Budget, String> {
        let number = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| format!("'{v}' is not a non-negative number"))
        };
        match text.split_once('=') {
            Some(("rel_l2", v)) => Ok(Budget::RelL2(number(v)?)),
            Some(("ap", v)) => Ok(Budget::Agreement(number(v)?)),
            Some((k, _)) => Err(format!("unknown budget '{k}'; use rel_l2=X or ap=X")),
            None => Ok(Budget::RelL2(number(text)?)),
        }
    }

    fn met(self, score: &Score) -> bool {
        match self {
            Budget::RelL2(max) => score.rel_l2 <= max,
            Budget::Agreement(min) => score.agreement_ap.is_some_and(|ap| ap >= min),
        }
    }
}

/// What calibration measured, by value name.
#[derive(Clone, Debug, Default)]
pub struct Evidence {
    /// The int8 scale of each value (clip threshold / 127).
    pub scales: HashMap<String, f32>,
    /// The largest magnitude each value reached.
    pub ranges: HashMap<String, f32>,
}

/// The plan for the requested mode; `base` is what auto builds on.
pub fn plan_for(
    mode: PlanMode,
    g: &Graph,
    evidence: &Evidence,
    judge: Option<&Judge>,
    budget: Option<Budget>,
    base: AutoBase,
) -> Result<(PrecisionPlan, Findings)> {
    match mode {
        PlanMode::Fp32 | PlanMode::Manual => Ok((
            PrecisionPlan {
                mode,
                layers: Vec::new(),
            },
            Findings::default(),
        )),
        PlanMode::Fp16 => Ok((fp16_plan(g, evidence), Findings::default())),
        PlanMode::Bf16 => Ok((bf16_plan(g), Findings::default())),
        PlanMode::Int8 => Ok((int8_plan(g, evidence), Findings::default())),
        PlanMode::Auto => {
            let judge = judge.ok_or_else(|| {
                Error::usage("--precision auto needs sample inputs to measure (--calib DIR)")
            })?;
            let budget = budget.unwrap_or(if judge.is_detector(g) {
                Budget::Agreement(0.95)
            } else {
                Budget::RelL2(0.01)
            });
            search::auto(g, evidence, judge, budget, base)
        }
    }
}

/// What a search measured on its way to a plan, for the report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Findings {
    /// Each int8-capable layer's sensitivity.
    pub layers: Vec<LayerReport>,
    /// Every whole plan measured, in the order tried.
    pub tried: Vec<Tried>,
}

/// One plan the search measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Tried {
    pub fp16_layers: usize,
    pub bf16_layers: usize,
    pub int8_layers: usize,
    pub int8_flop_share: f64,
    pub rel_l2: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement_ap: Option<f64>,
    /// Whether it met the budget.
    pub met: bool,
}

/// The error one lowered layer adds on its own, for the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerError {
    pub layer: String,
    pub rel_l2: f64,
}

/// A layer's measured sensitivity, for the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerReport {
    pub layer: String,
    pub precision: Precision,
    /// The error the layer adds when it alone is lowered to int8.
    pub rel_l2_alone: f64,
}

/// The layers of `g` in topological order.
fn layers(g: &Graph) -> Vec<NodeId> {
    g.layer_order().unwrap_or_default()
}

/// Whether every float value the layer writes stayed within fp16's range on the samples.
/// Without calibration evidence a value counts as in range.
fn fits_fp16(g: &Graph, id: NodeId, evidence: &Evidence) -> bool {
    g.node(id).outputs.iter().all(|o| {
        evidence
            .ranges
            .get(&o.name)
            .is_none_or(|&r| r.is_finite() && r <= FP16_MAX)
    })
}

fn fp16_layers(g: &Graph, evidence: &Evidence) -> Vec<LayerPlan> {
    layers(g)
        .into_iter()
        .filter(|&id| runs_in_half(&g.node(id).op) && fits_fp16(g, id, evidence))
        .map(|id| LayerPlan {
            layer: g.node(id).name.clone(),
            precision: Precision::Fp16,
            input_scale: None,
            why: String::new(),
        })
        .collect()
}

/// Every layer that can run in fp16 and whose values fit its range.
fn fp16_plan(g: &Graph, evidence: &Evidence) -> PrecisionPlan {
    PrecisionPlan {
        mode: PlanMode::Fp16,
        layers: fp16_layers(g, evidence),
    }
}

/// Every layer that can run in bf16: its range is f32's, so no value needs to fit.
fn bf16_layers(g: &Graph) -> Vec<LayerPlan> {
    layers(g)
        .into_iter()
        .filter(|&id| runs_in_half(&g.node(id).op))
        .map(|id| LayerPlan {
            layer: g.node(id).name.clone(),
            precision: Precision::Bf16,
            input_scale: None,
            why: String::new(),
        })
        .collect()
}

fn bf16_plan(g: &Graph) -> PrecisionPlan {
    PrecisionPlan {
        mode: PlanMode::Bf16,
        layers: bf16_layers(g),
    }
}

/// The int8 form of layer `id`, when it can run in int8 and its input was calibrated.
fn int8_layer(g: &Graph, id: NodeId, evidence: &Evidence) -> Option<LayerPlan> {
    int8_weight_axis(g, id)?;
    let input = g.input(id, 0)?;
    let scale = *evidence.scales.get(&g.value_info(input).name)?;
    Some(LayerPlan {
        layer: g.node(id).name.clone(),
        precision: Precision::Int8,
        input_scale: Some(scale),
        why: String::new(),
    })
}

/// Every layer that can run in int8 does; the others stay fp32.
fn int8_plan(g: &Graph, evidence: &Evidence) -> PrecisionPlan {
    PrecisionPlan {
        mode: PlanMode::Int8,
        layers: layers(g)
            .into_iter()
            .filter_map(|id| int8_layer(g, id, evidence))
            .collect(),
    }
}

/// The compile graph of `plan`.
pub fn apply(g: &Graph, plan: &PrecisionPlan) -> Result<Graph> {
    let out = legalize(g, plan).map_err(|e| Error::usage(e.to_string()))?;
    temblor_ir::validate(&out)
        .map_err(|e| Error::internal(format!("compile stage after precision: {e}")))?;
    Ok(out)
}

/// The `precision` object of report.json.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    pub mode: &'static str,
    pub fp16_flop_share: f64,
    pub bf16_flop_share: f64,
    pub int8_flop_share: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement_ap: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_rel_l2: Option<f64>,
    pub layers: Vec<LayerReport>,
    pub tried: Vec<Tried>,
}

pub fn summarize(
    g: &Graph,
    plan: &PrecisionPlan,
    score: Option<Score>,
    findings: Findings,
) -> Summary {
    let (mut total, mut half, mut bf16, mut int8) = (0.0, 0.0, 0.0, 0.0);
    for id in g.node_ids() {
        let f = temblor_ir::cost::flops(g, id);
        total += f;
        match plan.precision_of(&g.node(id).name) {
            Precision::Fp16 => half += f,
            Precision::Bf16 => bf16 += f,
            Precision::Int8 => int8 += f,
            Precision::Fp32 => {}
        }
    }
    let share = |x: f64| if total > 0.0 { x / total } else { 0.0 };
    Summary {
        mode: plan.mode.name(),
        fp16_flop_share: share(half),
        bf16_flop_share: share(bf16),
        int8_flop_share: share(int8),
        agreement_ap: score.and_then(|s| s.agreement_ap),
        output_rel_l2: score.map(|s| s.rel_l2),
        layers: findings.layers,
        tried: findings.tried,
    }
}
