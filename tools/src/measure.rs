//! What each optimization did to a model: the layers each pass removed and added, and the CPU
//! runtime's latency before and after it, on the same synthesized inputs and thread count.
//!
//! The driver shows [`PassLog::observe`] the graph after every pass run that applied. Consecutive
//! applications of one pass (rounds in which nothing else applied between them) are one *run*
//! and measured once, from the graph before the first to the graph after the last, so the
//! number of timed graphs stays near the number of passes that did something. The parsed and
//! compiled graphs are timed the same way (the overall speedup), and the compiled graph is
//! profiled per op type and stage ([`crate::profile`]).

use crate::profile::{self, Profile, StageMap};
use crate::verify::synthesize;
use serde::Serialize;
use std::collections::HashSet;
use std::time::Instant;
use temblor_ir::{Error, Graph, MeasureStatus, NodeId, PassStatus, Result};
use temblor_passes::PassRecord;
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor};

/// Untimed runs per measured graph, and the fewest and most timed ones: few, since a compile
/// times the graph after every pass run. A fast model gets more runs, up to about
/// [`BUDGET_MS`] per graph, since its medians are the noisier.
const WARMUP: usize = 1;
const ITERS: usize = 3;
const MAX_ITERS: usize = 10;
const BUDGET_MS: f64 = 100.0;

/// The median latency of `graph` on `inputs`, in milliseconds, over `iters` runs (at least one;
/// the upper median of an even count) after `warmup` untimed ones, on `threads` threads (0 = one
/// per available core).
pub fn latency(
    graph: &Graph,
    inputs: &[(String, Tensor)],
    warmup: usize,
    iters: usize,
    threads: usize,
) -> Result<f64> {
    let options = PrepareOptions {
        threads,
        spin: true,
        ..PrepareOptions::default()
    };
    let plan = prepare(graph, &Device::Cpu, &options)
        .map_err(|e| Error::internal(format!("measuring '{}': {e}", graph.name)))?;
    let mut state = plan.new_state();
    let mut run = || {
        plan.run(&mut state, inputs)
            .map_err(|e| Error::internal(format!("measuring '{}': {e}", graph.name)))
    };
    for _ in 0..warmup {
        run()?;
    }
    let mut times = Vec::with_capacity(iters.max(1));
    for _ in 0..iters.max(1) {
        let start = Instant::now();
        run()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// A layer as the observer tells layers apart. Node ids alone are not enough: the graph reuses
/// the id of a removed node for the next node added.
type LayerKey = (NodeId, String, String);

fn layer_keys(g: &Graph) -> HashSet<LayerKey> {
    g.node_ids()
        .map(|id| (id, g.node(id)))
        .filter(|(_, n)| n.op.is_layer())
        .map(|(id, n)| (id, n.name.clone(), n.op.name().to_string()))
        .collect()
}

/// What one applied pass run changed.
struct Applied {
    pass: &'static str,
    round: usize,
    applied: usize,
    removed: usize,
    added: usize,
}

/// The driver's observer state: every applied run's layer changes and, when measuring, the graph
/// after each run of one pass.
pub struct PassLog {
    layers: HashSet<LayerKey>,
    applied: Vec<Applied>,
    snapshots: Option<Vec<(&'static str, Graph)>>,
}

impl PassLog {
    /// A log starting from the parsed graph; `snapshot` keeps graphs for [`effects`] to time.
    pub fn new(parse: &Graph, snapshot: bool) -> PassLog {
        PassLog {
            layers: layer_keys(parse),
            applied: Vec::new(),
            snapshots: snapshot.then(Vec::new),
        }
    }

    pub fn observe(&mut self, record: &PassRecord, g: &Graph) {
        let layers = layer_keys(g);
        self.applied.push(Applied {
            pass: record.pass,
            round: record.round,
            applied: record.applied,
            removed: self.layers.difference(&layers).count(),
            added: layers.difference(&self.layers).count(),
        });
        self.layers = layers;
        if let Some(snapshots) = &mut self.snapshots {
            match snapshots.last_mut() {
                Some((pass, graph)) if *pass == record.pass => *graph = g.clone(),
                _ => snapshots.push((record.pass, g.clone())),
            }
        }
    }
}

/// One optimization's status and effect.
#[derive(Clone, Debug, Serialize)]
pub struct PassEffect {
    pub pass: &'static str,
    pub status: PassStatus,
    /// Rewrites applied, over all rounds.
    pub rewrites: usize,
    pub layers_removed: usize,
    pub layers_added: usize,
    /// Each run of consecutive applications, timed (empty when not measured or a no-op).
    pub runs: Vec<RunEffect>,
    /// The sum over its runs of latency before minus after (positive: faster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_saved_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunEffect {
    pub first_round: usize,
    pub last_round: usize,
    pub latency_before_ms: f64,
    pub latency_after_ms: f64,
}

/// How the latencies were taken, and the overall speedup of the compiled graph over the parsed.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// Skipped comes with the reason.
    pub status: MeasureStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub threads: usize,
    pub warmup: usize,
    pub iters: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compile_ms: Option<f64>,
    /// parse_ms / compile_ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speedup: Option<f64>,
}

impl Measurement {
    pub fn skipped(reason: impl Into<String>, threads: usize) -> Measurement {
        Measurement {
            status: MeasureStatus::Skipped,
            reason: Some(reason.into()),
            threads,
            warmup: 0,
            iters: 0,
            parse_ms: None,
            compile_ms: None,
            speedup: None,
        }
    }
}

/// The graphs to time and what to time them on.
struct Timed<'a> {
    parse: &'a Graph,
    compile: &'a Graph,
    inputs: &'a [(String, Tensor)],
    threads: usize,
}

/// Everything `compile` measures for its report.
pub struct Measured {
    /// Per pass that ran: its status, the layers it removed and added, its measured latency.
    pub optimizations: Vec<PassEffect>,
    /// The overall latencies and speedup, or why they were not measured.
    pub measurement: Measurement,
    /// Where the compiled graph's time goes, per op type and stage (when measured).
    pub profile: Option<Profile>,
}

/// The pass effects of an optimizer run, and unless `enabled` is false or the model's inputs
/// cannot be synthesized, the latencies and the compiled graph's profile, on every available
/// core.
pub fn measure(
    parse: &Graph,
    compile: &Graph,
    records: &[PassRecord],
    log: PassLog,
    enabled: bool,
) -> Result<Measured> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut optimizations = effects(records, &log);
    let inputs = match enabled.then(|| synthesize(parse)) {
        Some(Ok(inputs)) => inputs,
        Some(Err(reason)) => {
            return Ok(Measured {
                optimizations,
                measurement: Measurement::skipped(reason, threads),
                profile: None,
            })
        }
        None => {
            return Ok(Measured {
                optimizations,
                measurement: Measurement::skipped("not asked for (--no-measure)", threads),
                profile: None,
            })
        }
    };
    let timed = Timed {
        parse,
        compile,
        inputs: &inputs,
        threads,
    };
    let measurement = time(&mut optimizations, log, timed)?;
    let profile = match measurement.status {
        MeasureStatus::Measured => Some(profile::run(
            compile,
            &inputs,
            measurement.warmup,
            measurement.iters,
            threads,
            &StageMap::infer(compile)?,
            &temblor_runtime::Device::Cpu,
        )?),
        MeasureStatus::Skipped => None,
    };
    Ok(Measured {
        optimizations,
        measurement,
        profile,
    })
}

/// Per pass (in the order passes first ran) its status and the layers it removed and added.
fn effects(records: &[PassRecord], log: &PassLog) -> Vec<PassEffect> {
    let mut out: Vec<PassEffect> = Vec::new();
    for r in records {
        if !out.iter().any(|e| e.pass == r.pass) {
            out.push(PassEffect {
                pass: r.pass,
                status: PassStatus::NoOp,
                rewrites: 0,
                layers_removed: 0,
                layers_added: 0,
                runs: Vec::new(),
                latency_saved_ms: None,
            });
        }
    }
    for a in &log.applied {
        if let Some(e) = out.iter_mut().find(|e| e.pass == a.pass) {
            e.status = PassStatus::Applied;
            e.rewrites += a.applied;
            e.layers_removed += a.removed;
            e.layers_added += a.added;
        }
    }
    out
}

/// Times the parsed graph, the graph after each run of the log, and the compiled graph, adding
/// each run's latencies to `effects`. A parsed graph the runtime cannot run is a skipped
/// measurement, not an error: compiling such a model is still useful.
fn time(effects: &mut [PassEffect], log: PassLog, timed: Timed) -> Result<Measurement> {
    let probe = match latency(timed.parse, timed.inputs, 0, 1, timed.threads) {
        Ok(ms) => ms,
        Err(e) => return Ok(Measurement::skipped(e.to_string(), timed.threads)),
    };
    let iters = ((BUDGET_MS / probe) as usize).clamp(ITERS, MAX_ITERS);
    let time = |g: &Graph| latency(g, timed.inputs, WARMUP, iters, timed.threads);
    let parse_ms = time(timed.parse)?;
    let mut before = parse_ms;
    let mut rounds = log.applied.iter().map(|a| (a.pass, a.round)).peekable();
    for (pass, graph) in log.snapshots.iter().flatten() {
        let mut run_rounds = Vec::new();
        while let Some((_, round)) = rounds.next_if(|(p, _)| p == pass) {
            run_rounds.push(round);
        }
        let after = time(graph)?;
        if let Some(e) = effects.iter_mut().find(|e| e.pass == *pass) {
            e.runs.push(RunEffect {
                first_round: run_rounds.first().copied().unwrap_or(0),
                last_round: run_rounds.last().copied().unwrap_or(0),
                latency_before_ms: before,
                latency_after_ms: after,
            });
            *e.latency_saved_ms.get_or_insert(0.0) += before - after;
        }
        before = after;
    }
    let compile_ms = time(timed.compile)?;
    Ok(Measurement {
        status: MeasureStatus::Measured,
        reason: None,
        threads: timed.threads,
        warmup: WARMUP,
        iters,
        parse_ms: Some(parse_ms),
        compile_ms: Some(compile_ms),
        speedup: Some(parse_ms / compile_ms),
    })
}
