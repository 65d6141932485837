//! `--precision auto`: the fastest plan found within the accuracy budget.
//!
//! The base is fp16 wherever values fit its range (when that alone meets the budget), or fp32
//! for the CPU runtime ([`AutoBase`]). Each
//! int8-capable layer is then lowered alone on top of the base and the error it adds is measured
//! (on a few samples: the ranking needs orders of magnitude, not digits). Layers are ranked by
//! error per FLOP moved to int8, cheapest first, and a binary search finds the longest prefix
//! of that ranking whose plan still meets the budget on every sample. The search assumes error
//! grows with the prefix, which holds closely when errors add; the chosen plan itself is always
//! measured, never estimated.

use super::{
    apply, bf16_layers, fp16_layers, int8_layer, layers, summarize, Budget, Evidence, Findings,
    Judge, LayerReport, Score, Tried,
};
use crate::{AutoBase, LayerPlan, PlanMode, PrecisionPlan};
use temblor_ir::{Graph, Precision, Result};
use temblor_tools::progress;

/// Samples used to rank layers by sensitivity.
const SENSITIVITY_SAMPLES: usize = 2;

fn compose(base: &[LayerPlan], int8: &[LayerPlan]) -> PrecisionPlan {
    let mut layers: Vec<LayerPlan> = base
        .iter()
        .filter(|l| !int8.iter().any(|q| q.layer == l.layer))
        .cloned()
        .collect();
    layers.extend(int8.iter().cloned());
    PrecisionPlan {
        mode: PlanMode::Auto,
        layers,
    }
}

pub fn auto(
    g: &Graph,
    evidence: &Evidence,
    judge: &Judge,
    budget: Budget,
    base_kind: AutoBase,
) -> Result<(PrecisionPlan, Findings)> {
    let mut tried = Vec::new();
    let mut measure = |plan: &PrecisionPlan| -> Result<(bool, f64)> {
        let score = judge.score(&apply(g, plan)?)?;
        let met = budget.met(&score);
        tried.push(trial(g, plan, score, met));
        Ok((met, score.rel_l2))
    };
    let mut base = match base_kind {
        AutoBase::Fp16 => fp16_layers(g, evidence),
        AutoBase::Fp32 => Vec::new(),
        AutoBase::Bf16 => bf16_layers(g),
    };
    let (base_met, base_rel_l2) = measure(&compose(&base, &[]))?;
    if !base_met {
        base.clear();
    }
    for l in &mut base {
        l.why = match base_kind {
            AutoBase::Bf16 => "bf16 everywhere it runs",
            _ => "fp16 everywhere it fits",
        }
        .to_owned()
            + &format!(": worst checkpoint relative L2 {base_rel_l2:.2e}");
    }

    let quick = judge.first(SENSITIVITY_SAMPLES);
    let candidates: Vec<_> = layers(g)
        .into_iter()
        .filter_map(|id| int8_layer(g, id, evidence).map(|l| (id, l)))
        .collect();
    let bar = progress::bar(candidates.len(), "sensitivity");
    let mut ranked = Vec::new();
    for (id, layer) in candidates {
        let score = quick.score(&apply(g, &compose(&base, std::slice::from_ref(&layer)))?)?;
        bar.inc(1);
        ranked.push((score.rel_l2, temblor_ir::cost::flops(g, id), layer));
    }
    bar.finish_and_clear();
    let reports: Vec<LayerReport> = ranked
        .iter()
        .map(|(e, _, l)| LayerReport {
            layer: l.layer.clone(),
            precision: Precision::Int8,
            rel_l2_alone: *e,
        })
        .collect();
    ranked.sort_by(|a, b| {
        let per_flop = |(e, f, _): &(f64, f64, LayerPlan)| e / f.max(1.0);
        per_flop(a).total_cmp(&per_flop(b))
    });

    let int8_prefix = |k: usize| -> Vec<LayerPlan> {
        ranked[..k]
            .iter()
            .map(|(e, _, l)| LayerPlan {
                why: format!("adds relative L2 {e:.2e} alone; ranked by error per FLOP"),
                ..l.clone()
            })
            .collect()
    };
    // The longest prefix meeting the budget: `lo` is known good (0 is the base), `hi` bad.
    let (mut lo, mut hi) = (0, ranked.len() + 1);
    let bar = progress::bar(ranked.len().max(1).ilog2() as usize + 1, "search");
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        let (met, _) = measure(&compose(&base, &int8_prefix(mid)))?;
        bar.inc(1);
        if met {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    bar.finish_and_clear();
    Ok((
        compose(&base, &int8_prefix(lo)),
        Findings {
            layers: reports,
            tried,
        },
    ))
}

fn trial(g: &Graph, plan: &PrecisionPlan, score: Score, met: bool) -> Tried {
    let count = |p: Precision| plan.layers.iter().filter(|l| l.precision == p).count();
    Tried {
        fp16_layers: count(Precision::Fp16),
        bf16_layers: count(Precision::Bf16),
        int8_layers: count(Precision::Int8),
        int8_flop_share: summarize(g, plan, None, Findings::default()).int8_flop_share,
        rel_l2: score.rel_l2,
        agreement_ap: score.agreement_ap,
        met,
    }
}
