//! How far a lowered graph is from fp32: it runs on the CPU runtime over the sample inputs and
//! is compared at the checkpoints verification uses (dense outputs, and the candidates of each
//! selection such as NMS, where a last-bit change would otherwise flip a box in or out), and,
//! for detectors, by the agreement of its detections with fp32's.

use temblor_ir::{DType, Error, Graph, Op, Result};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor};
use temblor_tools::verify::{checkpoints, with_outputs};

/// Detection agreement of candidate outputs with reference outputs (COCO AP with the
/// reference's detections as ground truth), over the same samples.
pub trait Agreement {
    fn ap(&self, reference: &[Outputs], candidate: &[Outputs]) -> Result<f64>;
}

pub type Outputs = Vec<(String, Tensor)>;

#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Score {
    /// Worst relative L2 over the checkpoints, each pooled over all samples.
    pub rel_l2: f64,
    pub agreement_ap: Option<f64>,
}

pub struct Judge<'a> {
    samples: &'a [Outputs],
    checkpoints: Vec<String>,
    outputs: Vec<String>,
    reference: Vec<Outputs>,
    agreement: Option<&'a dyn Agreement>,
    threads: usize,
}

impl<'a> Judge<'a> {
    /// Runs `fp32` once over `samples` to have the reference values.
    pub fn new(
        fp32: &Graph,
        samples: &'a [Outputs],
        agreement: Option<&'a dyn Agreement>,
        threads: usize,
    ) -> Result<Judge<'a>> {
        let mut judge = Judge {
            samples,
            checkpoints: checkpoints(fp32, fp32),
            outputs: fp32.outputs.iter().map(|o| o.name.clone()).collect(),
            reference: Vec::new(),
            agreement,
            threads,
        };
        judge.reference = judge.run(fp32)?;
        Ok(judge)
    }

    /// The same judge over its first `n` samples only (a cheaper, rougher measure).
    pub fn first(&self, n: usize) -> Judge<'a> {
        let n = n.min(self.samples.len());
        Judge {
            samples: &self.samples[..n],
            checkpoints: self.checkpoints.clone(),
            outputs: self.outputs.clone(),
            reference: self.reference[..n].to_vec(),
            agreement: self.agreement,
            threads: self.threads,
        }
    }

    pub fn is_detector(&self, g: &Graph) -> bool {
        self.agreement.is_some()
            && g.node_ids()
                .any(|id| matches!(g.node(id).op, Op::NonMaxSuppression { .. } | Op::Lib(_)))
    }

    fn run(&self, g: &Graph) -> Result<Vec<Outputs>> {
        let mut names = self.checkpoints.clone();
        for output in &self.outputs {
            if !names.contains(output) {
                names.push(output.clone());
            }
        }
        let options = PrepareOptions {
            threads: self.threads,
            ..PrepareOptions::default()
        };
        let plan = prepare(&with_outputs(g, &names), &Device::Cpu, &options)
            .map_err(|e| Error::internal(format!("precision: {e}")))?;
        let mut state = plan.new_state();
        self.samples
            .iter()
            .map(|inputs| {
                plan.run(&mut state, inputs)
                    .map_err(|e| Error::internal(format!("precision: {e}")))?
                    .into_iter()
                    .map(|(name, t)| Ok((name, widened(t)?)))
                    .collect()
            })
            .collect()
    }

    pub fn score(&self, g: &Graph) -> Result<Score> {
        let got = self.run(g)?;
        let mut worst = 0f64;
        for name in &self.checkpoints {
            let (mut diff, mut norm) = (0f64, 0f64);
            for (want, have) in self.reference.iter().zip(&got) {
                let (Some(a), Some(b)) = (find(want, name), find(have, name)) else {
                    continue;
                };
                let (Some(a), Some(b)) = (a.as_f32(), b.as_f32()) else {
                    continue;
                };
                if a.len() != b.len() {
                    return Ok(Score {
                        rel_l2: f64::INFINITY,
                        agreement_ap: None,
                    });
                }
                for (&x, &y) in a.iter().zip(b) {
                    diff += (x as f64 - y as f64).powi(2);
                    norm += (x as f64).powi(2);
                }
            }
            let e = if norm > 0.0 {
                (diff / norm).sqrt()
            } else {
                diff.sqrt()
            };
            worst = worst.max(if e.is_nan() { f64::INFINITY } else { e });
        }
        let agreement_ap = match self.agreement {
            Some(a) if self.is_detector(g) => {
                let outputs = |all: &[Outputs]| -> Vec<Outputs> {
                    all.iter()
                        .map(|o| {
                            o.iter()
                                .filter(|(n, _)| self.outputs.contains(n))
                                .cloned()
                                .collect()
                        })
                        .collect()
                };
                Some(a.ap(&outputs(&self.reference), &outputs(&got))?)
            }
            _ => None,
        };
        Ok(Score {
            rel_l2: worst,
            agreement_ap,
        })
    }
}

fn find<'t>(outputs: &'t Outputs, name: &str) -> Option<&'t Tensor> {
    outputs.iter().find(|(n, _)| n == name).map(|(_, t)| t)
}

/// Half values as f32, so fp16 and bf16 regions compare with fp32 ones.
fn widened(t: Tensor) -> Result<Tensor> {
    if !t.dtype().is_half() {
        return Ok(t);
    }
    temblor_runtime::run_op(&Op::Cast { to: DType::F32 }, &[Some(&t)], 1)
        .ok()
        .and_then(|mut v| v.pop())
        .ok_or_else(|| Error::internal("precision: cannot widen a half tensor"))
}
