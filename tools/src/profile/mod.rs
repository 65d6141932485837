//! Where a model's time goes on the CPU runtime: each step of the plan timed on every run, summed
//! per op type (Detectron's table: ms per run, stddev, count per run), per layer, and per stage
//! of the detector ([`StageMap`]).
//!
//! An op type is the canonical op's name, with a convolution's fused epilogue spelled out
//! (`Conv+HardSwish`, `Conv+Add+Relu` for a residual and an activation), since a fused conv costs
//! more than a bare one and users need to see which is which.
//!
//! Each layer and op type is also placed against the machine's measured peaks (`roofline.rs`):
//! achieved GFLOP/s and GB/s, and the share of the roofline's bound it reaches.

mod roofline;
mod stages;

pub use roofline::{Efficiency, Peak};
pub use stages::{StageMap, INFERRED_STAGES};

use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use temblor_ir::{Activation, Error, Graph, NodeId, Op, Result};
use temblor_runtime::{
    prepare, Device, Observer, Plan, PrepareOptions, RuntimeError, StepInfo, Tensor, ValueView,
};

/// What `temblor profile` measured: means over the timed runs.
#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    /// Threads the kernels ran on.
    pub threads: usize,
    pub warmup: usize,
    pub iters: usize,
    /// End-to-end time of one run.
    pub total_ms: f64,
    pub total_stddev_ms: f64,
    /// The sum of the step times of one run: `total_ms` less the executor's own work between
    /// steps (freeing values, gathering inputs).
    pub steps_ms: f64,
    /// Slowest first.
    pub op_types: Vec<OpTypeTime>,
    /// Every layer, slowest first.
    pub layers: Vec<LayerTime>,
    /// The machine's compute and memory peaks, measured on the same threads.
    pub peak: Peak,
    /// In the stage map's order.
    pub stages: Vec<StageTime>,
}

#[derive(Clone, Debug, Serialize)]
pub struct OpTypeTime {
    pub op_type: String,
    /// Time of all layers of this type in one run.
    pub mean_ms: f64,
    pub stddev_ms: f64,
    /// Layers of this type run per run.
    pub count: usize,
    /// `mean_ms` over the end-to-end `total_ms`.
    pub share: f64,
    /// The FLOPs and bytes of all layers of this type over their time.
    pub gflops_per_s: f64,
    pub gbytes_per_s: f64,
    /// The time the roofline allows these layers over the time they took.
    pub of_roofline: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerTime {
    pub layer: String,
    pub op_type: String,
    pub mean_ms: f64,
    /// The median and the fastest of the layer's timed runs: on a shared machine a few runs
    /// that lost the core pull the mean up, and the median and minimum show the layer itself.
    pub median_ms: f64,
    pub min_ms: f64,
    pub stage: String,
    #[serde(flatten)]
    pub efficiency: Efficiency,
}

#[derive(Clone, Debug, Serialize)]
pub struct StageTime {
    pub stage: String,
    pub mean_ms: f64,
    /// `mean_ms` over the end-to-end `total_ms`.
    pub share: f64,
    /// How many layers the stage holds.
    pub layers: usize,
}

/// Runs `graph` on `device` `warmup` times untimed, then `iters` times with every step timed,
/// on `threads` threads (0: one per core), showing a progress bar on a terminal. On a GPU, each
/// layer is run and waited for on its own, so the times are the layers' own, not a CUDA graph's
/// replay.
pub fn run(
    graph: &Graph,
    inputs: &[(String, Tensor)],
    warmup: usize,
    iters: usize,
    threads: usize,
    stages: &StageMap,
    device: &Device,
) -> Result<Profile> {
    if iters == 0 {
        return Err(Error::usage("profiling needs at least one timed run"));
    }
    let options = PrepareOptions {
        threads,
        spin: true,
        ..PrepareOptions::default()
    };
    let plan = prepare(graph, device, &options).map_err(Error::from)?;
    let mut state = plan.new_state();
    let layers = plan_layers(graph, &plan)?;
    let mut timer = StepTimer {
        times: vec![Duration::ZERO; layers.len()],
    };
    let bar = crate::progress::bar(warmup + iters, "profile");
    for _ in 0..warmup {
        plan.run(&mut state, inputs).map_err(Error::from)?;
        bar.inc(1);
    }
    let mut totals = Vec::with_capacity(iters);
    let mut per_step: Vec<Vec<f64>> = vec![Vec::with_capacity(iters); layers.len()];
    for _ in 0..iters {
        let start = Instant::now();
        let outputs = plan
            .run_observed(&mut state, inputs, &mut timer)
            .map_err(Error::from)?;
        totals.push(ms(start.elapsed()));
        drop(outputs);
        for (runs, t) in per_step.iter_mut().zip(&timer.times) {
            runs.push(ms(*t));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (total_ms, total_stddev_ms) = mean_stddev(&totals);
    let steps_ms = per_step.iter().map(|runs| mean(runs)).sum();
    let fused = fused_layers(graph, &plan);
    let names: Vec<String> = layers
        .iter()
        .zip(&fused)
        .map(|(&id, with)| {
            let mut name = String::new();
            for &f in with {
                name.push_str(&op_type(graph, f));
                name.push('+');
            }
            name + &op_type(graph, id)
        })
        .collect();
    let peak = Peak::measure(threads, device)?;
    let layer_rows = layer_times(graph, (&layers, &fused), &names, &per_step, stages, &peak);
    Ok(Profile {
        threads: plan.threads(),
        warmup,
        iters,
        total_ms,
        total_stddev_ms,
        steps_ms,
        op_types: op_types(&names, &per_step, iters, total_ms, &layer_rows),
        layers: layer_rows,
        peak,
        stages: stage_times(&layers, &per_step, stages, total_ms),
    })
}

/// The op type a layer is shown as: its op's name, with a convolution's (or transposed
/// convolution's) fused residual, activation and affine appended.
pub fn op_type(g: &Graph, id: NodeId) -> String {
    let op = &g.node(id).op;
    let (activation, affine) = match op {
        Op::Conv(a) => (a.activation, a.affine),
        Op::ConvTranspose(a) => (a.activation, None),
        _ => return op.name().to_string(),
    };
    let mut name = op.name().to_string();
    if g.input(id, 3).is_some() {
        name.push_str("+Add");
    }
    if let Some(a) = &activation {
        name.push('+');
        name.push_str(activation_op(a));
    }
    if affine.is_some() {
        name.push_str("+Mul+Add");
    }
    name
}

/// The standalone op an epilogue activation computes, by its op name.
fn activation_op(a: &Activation) -> &'static str {
    match a {
        Activation::Relu => "Relu",
        Activation::Sigmoid => "Sigmoid",
        Activation::HardSwish => "HardSwish",
        Activation::Silu => "Silu",
        Activation::Mish => "Mish",
        Activation::LeakyRelu { .. } => "LeakyRelu",
        Activation::HardSigmoid { .. } => "HardSigmoid",
        Activation::Clip { .. } => "Clip",
    }
}

/// Records the time of each step of the latest run.
struct StepTimer {
    times: Vec<Duration>,
}

impl Observer for StepTimer {
    fn step(
        &mut self,
        index: usize,
        _: &StepInfo,
        _: &[Option<ValueView>],
        _: &[ValueView],
        elapsed: Duration,
    ) -> Result<(), RuntimeError> {
        self.times[index] = elapsed;
        Ok(())
    }

    /// Times the run as it is when unobserved.
    fn reads_values(&self) -> bool {
        false
    }
}

/// The graph's layers the plan runs, in its step order. The plan runs the layers in the
/// graph's topological order, less those it folded or read past (an int8 convolution's
/// quantization, a dequantized weight); a mismatch would pin times on the wrong layers, so it
/// is checked.
fn plan_layers(g: &Graph, plan: &Plan) -> Result<Vec<NodeId>> {
    let layers = g.layer_order().map_err(|n| {
        Error::bad_input(format!(
            "graph '{}' has a cycle through {}",
            g.name,
            g.describe(n)
        ))
    })?;
    let mut steps = plan.steps().iter().peekable();
    let run: Vec<NodeId> = layers
        .into_iter()
        .filter(|&id| steps.next_if(|s| s.node == g.node(id).name).is_some())
        .collect();
    if steps.next().is_some() {
        return Err(Error::internal(format!(
            "the CPU plan of graph '{}' does not run its layers in topological order",
            g.name
        )));
    }
    Ok(run)
}

/// Per step of `plan`, the graph's layers it runs besides its own (`StepInfo::fused`), whose
/// operations its time also covers.
fn fused_layers(g: &Graph, plan: &Plan) -> Vec<Vec<NodeId>> {
    let by_name: HashMap<&str, NodeId> = g
        .node_ids()
        .map(|id| (g.node(id).name.as_str(), id))
        .collect();
    plan.steps()
        .iter()
        .map(|s| {
            s.fused
                .iter()
                .filter_map(|n| by_name.get(n.as_str()).copied())
                .collect()
        })
        .collect()
}

fn op_types(
    names: &[String],
    per_step: &[Vec<f64>],
    iters: usize,
    total: f64,
    layers: &[LayerTime],
) -> Vec<OpTypeTime> {
    let mut by_type: HashMap<&str, (usize, Vec<f64>)> = HashMap::new();
    for (name, runs) in names.iter().zip(per_step) {
        let (count, sums) = by_type
            .entry(name.as_str())
            .or_insert_with(|| (0, vec![0.0; iters]));
        *count += 1;
        for (sum, t) in sums.iter_mut().zip(runs) {
            *sum += t;
        }
    }
    let mut rows: Vec<OpTypeTime> = by_type
        .into_iter()
        .map(|(op_type, (count, sums))| {
            let (mean_ms, stddev_ms) = mean_stddev(&sums);
            let of_type = || layers.iter().filter(|l| l.op_type == op_type);
            let flops: f64 = of_type().map(|l| l.efficiency.flops).sum();
            let bytes: f64 = of_type().map(|l| l.efficiency.bytes).sum();
            let bound_ms: f64 = of_type()
                .map(|l| l.efficiency.of_roofline * l.mean_ms)
                .sum();
            let seconds = mean_ms / 1e3;
            let rate = |amount: f64| {
                if seconds > 0.0 {
                    amount / seconds / 1e9
                } else {
                    0.0
                }
            };
            OpTypeTime {
                op_type: op_type.to_string(),
                mean_ms,
                stddev_ms,
                count,
                share: share(mean_ms, total),
                gflops_per_s: rate(flops),
                gbytes_per_s: rate(bytes),
                of_roofline: share(bound_ms, mean_ms),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.mean_ms
            .total_cmp(&a.mean_ms)
            .then(a.op_type.cmp(&b.op_type))
    });
    rows
}

fn layer_times(
    g: &Graph,
    (layers, fused): (&[NodeId], &[Vec<NodeId>]),
    names: &[String],
    per_step: &[Vec<f64>],
    stages: &StageMap,
    peak: &Peak,
) -> Vec<LayerTime> {
    let mut rows: Vec<LayerTime> = layers
        .iter()
        .zip(fused)
        .zip(names)
        .zip(per_step)
        .map(|(((&id, with), op_type), runs)| LayerTime {
            layer: g.node(id).name.clone(),
            op_type: op_type.clone(),
            mean_ms: mean(runs),
            median_ms: median(runs),
            min_ms: runs.iter().copied().fold(f64::INFINITY, f64::min),
            stage: stage_name(stages, id),
            efficiency: peak.place(g, &[&[id][..], with].concat(), mean(runs)),
        })
        .collect();
    rows.sort_by(|a, b| b.mean_ms.total_cmp(&a.mean_ms));
    rows
}

/// A layer the map does not know (a map made for another graph) is shown as `other`.
fn stage_name(stages: &StageMap, id: NodeId) -> String {
    stages.stage_of(id).unwrap_or("other").to_string()
}

fn stage_times(
    layers: &[NodeId],
    per_step: &[Vec<f64>],
    stages: &StageMap,
    total: f64,
) -> Vec<StageTime> {
    let mut rows: Vec<StageTime> = stages
        .names()
        .iter()
        .map(|s| StageTime {
            stage: s.clone(),
            mean_ms: 0.0,
            share: 0.0,
            layers: 0,
        })
        .collect();
    for (&id, runs) in layers.iter().zip(per_step) {
        let stage = stage_name(stages, id);
        let row = match rows.iter().position(|r| r.stage == stage) {
            Some(i) => i,
            None => {
                rows.push(StageTime {
                    stage,
                    mean_ms: 0.0,
                    share: 0.0,
                    layers: 0,
                });
                rows.len() - 1
            }
        };
        rows[row].mean_ms += mean(runs);
        rows[row].layers += 1;
    }
    for r in &mut rows {
        r.share = share(r.mean_ms, total);
    }
    rows
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The middle value, or the mean of the two middle values (0 for no values).
fn median(v: &[f64]) -> f64 {
    let mut sorted = v.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Mean and sample standard deviation (0 for a single run).
fn mean_stddev(v: &[f64]) -> (f64, f64) {
    let m = mean(v);
    if v.len() < 2 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64;
    (m, var.sqrt())
}

fn share(part: f64, total: f64) -> f64 {
    if total > 0.0 {
        part / total
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_is_the_middle_run() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[5.0]), 5.0);
        assert_eq!(median(&[3.0, 9.0, 1.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 30.0, 2.0]), 3.0);
    }
}
