//! From `compile`'s precision flags to a plan and its compile graph: the samples (calibration
//! images through the model's preprocessing, or synthesized inputs), the evidence (activation
//! statistics, cached), the plan, and its measured accuracy.

use super::calibrate::{self, cache_key};
use super::{
    apply, plan_file, plan_for, summarize, Agreement, Budget, Evidence, Findings, Judge,
    LayerError, Outputs,
};
use crate::calibrators::Calibrator;
use crate::{AutoBase, PlanMode, PrecisionPlan};
use std::path::{Path, PathBuf};
use temblor_ir::{Error, Graph, Precision, Result};
use temblor_tools::compare::{compare, Mode};
use temblor_tools::eval::{agreement, detections_from_outputs};
use temblor_tools::preprocess_config::{images_in, PreprocessConfig};
use temblor_tools::verify::synthesize;

/// Reference detections below this score are not ground truth for agreement: the fp32 model
/// itself does not stand behind them, and a box near the threshold flips with any rounding.
const AGREEMENT_MIN_SCORE: f32 = 0.3;

/// What `compile`'s precision flags ask for. The default is the fp32 plan.
#[derive(Clone, Debug)]
pub struct Request {
    pub mode: PlanMode,
    /// A plan file to re-apply (`--plan`), instead of making one.
    pub plan: Option<PathBuf>,
    pub calib: Option<PathBuf>,
    pub preprocess: Option<PathBuf>,
    pub budget: Option<Budget>,
    pub calibrator: Calibrator,
    /// What auto lowers layers to int8 on top of.
    pub auto_base: AutoBase,
    /// Where calibration statistics are cached.
    pub cache_dir: PathBuf,
    pub threads: usize,
}

impl Default for Request {
    fn default() -> Request {
        Request {
            mode: PlanMode::Fp32,
            plan: None,
            calib: None,
            preprocess: None,
            budget: None,
            calibrator: Calibrator::Entropy,
            auto_base: AutoBase::Fp16,
            cache_dir: std::env::temp_dir().join("temblor-calibration"),
            threads: 0,
        }
    }
}

/// The outcome: the compile graph, the plan it legalizes, and the report's `precision` object.
pub struct Assigned {
    pub graph: Graph,
    pub plan: PrecisionPlan,
    pub summary: super::Summary,
    /// The error each lowered layer adds on its own (isolated comparison with fp32 on the first
    /// sample), in the compile graph's order; empty for an fp32 or unmeasured plan.
    pub per_layer_error: Vec<LayerError>,
}

/// COCO AP of candidate detections against the reference's, image by image.
struct DetectionAgreement;

impl Agreement for DetectionAgreement {
    fn ap(&self, reference: &[Outputs], candidate: &[Outputs]) -> Result<f64> {
        let dets = |all: &[Outputs]| -> Result<Vec<_>> {
            all.iter().map(|o| detections_from_outputs(o)).collect()
        };
        Ok(agreement(&dets(reference)?, &dets(candidate)?, AGREEMENT_MIN_SCORE).ap)
    }
}

/// Calibration samples: the images of `dir` prepared as the model expects, in batches of the
/// model's batch size.
fn calibration_samples(
    model: &Path,
    request: &Request,
    dir: &Path,
    g: &Graph,
) -> Result<(Vec<Outputs>, String, Vec<PathBuf>)> {
    let config_path = match &request.preprocess {
        Some(p) => p.clone(),
        None => PreprocessConfig::beside(model).ok_or_else(|| {
            Error::usage(format!(
                "--calib needs the model's preprocessing: give --preprocess FILE (no \
                 infer_cfg.yml beside {})",
                model.display()
            ))
        })?,
    };
    let config = PreprocessConfig::load(&config_path)?;
    let images = images_in(dir)?;
    let samples = config.batches(&images, g)?;
    Ok((samples, config.key(), images))
}

/// The plan for the optimize graph of `model` (compiled with `input_dims`, e.g.
/// `x:1x3x640x640`, part of the calibration cache key) and the compile graph it legalizes into.
pub fn assign(
    optimize: &Graph,
    model: &Path,
    input_dims: &str,
    request: &Request,
) -> Result<Assigned> {
    let needs_scales = matches!(request.mode, PlanMode::Int8 | PlanMode::Auto);
    let (samples, key) = match request.calib.as_deref() {
        Some(dir) => {
            let (samples, preprocess_key, images) =
                calibration_samples(model, request, dir, optimize)?;
            let key = cache_key(model, &preprocess_key, &images, input_dims)?;
            (samples, Some(key))
        }
        None if needs_scales => {
            return Err(Error::usage(format!(
                "--precision {} needs calibration images: give --calib DIR",
                request.mode.name()
            )))
        }
        None if request.mode == PlanMode::Fp32 && request.plan.is_none() => (Vec::new(), None),
        None => match synthesize(optimize) {
            Ok(inputs) => (vec![inputs], None),
            Err(reason) => {
                eprintln!(
                    "warning: the precision plan is applied unmeasured (no fp16 range check \
                     either): {reason}; give --calib DIR to measure it"
                );
                (Vec::new(), None)
            }
        },
    };
    if samples.is_empty() {
        let plan = match request.plan.as_deref() {
            Some(path) => plan_file::read(path)?,
            None => {
                let (evidence, base) = (Evidence::default(), request.auto_base);
                plan_for(request.mode, optimize, &evidence, None, None, base)?.0
            }
        };
        return Ok(Assigned {
            graph: apply(optimize, &plan)?,
            summary: summarize(optimize, &plan, None, Findings::default()),
            plan,
            per_layer_error: Vec::new(),
        });
    }

    let stats = match &key {
        Some(key) => {
            let cache = request.cache_dir.join(format!("{key}.json"));
            calibrate::load_or_collect(&cache, key, optimize, &samples, request.threads)?
        }
        None => calibrate::collect(optimize, &samples, request.threads)?,
    };
    let mut evidence = Evidence::default();
    for (name, s) in stats.values() {
        if let Some(scale) = stats.scale(name, request.calibrator) {
            evidence.scales.insert(name.clone(), scale);
        }
        let range = if s.non_finite > 0 {
            f32::INFINITY
        } else {
            s.min.abs().max(s.max.abs())
        };
        evidence.ranges.insert(name.clone(), range);
    }

    let detector = DetectionAgreement;
    let agreement: Option<&dyn Agreement> =
        request.calib.as_ref().map(|_| &detector as &dyn Agreement);
    let judge = Judge::new(optimize, &samples, agreement, request.threads)?;
    let (plan, layers) = match request.plan.as_deref() {
        Some(path) => (plan_file::read(path)?, Findings::default()),
        None => plan_for(
            request.mode,
            optimize,
            &evidence,
            Some(&judge),
            request.budget,
            request.auto_base,
        )?,
    };
    let graph = apply(optimize, &plan)?;
    let score = judge.score(&graph)?;
    let summary = summarize(optimize, &plan, Some(score), layers);
    let per_layer_error = if plan.layers.is_empty() {
        Vec::new()
    } else {
        let isolated = compare(
            optimize,
            &graph,
            &samples[0],
            Mode::Isolated,
            ["fp32", "the plan"],
        )?;
        isolated
            .pairs
            .iter()
            .filter(|p| p.precision.is_some_and(|p| p != Precision::Fp32))
            .filter_map(|p| {
                p.metrics.as_ref().map(|m| LayerError {
                    layer: p.layer.clone(),
                    rel_l2: m.rel_l2,
                })
            })
            .collect()
    };
    Ok(Assigned {
        graph,
        plan,
        summary,
        per_layer_error,
    })
}
