//! `temblor profile`: where one model's time goes on the CPU runtime, per op type, per layer and
//! per stage of the detector.

use super::inputs::{self, materialize, row_inputs, Model};
use serde::Serialize;
use std::path::PathBuf;
use temblor_ir::{Error, Result};
use temblor_tools::profile::{self, Profile, StageMap};

#[derive(clap::Args, Debug)]
pub struct ProfileArgs {
    /// A package directory written by `compile`, or a model file (compiled for its inputs).
    pub model: PathBuf,
    /// Timed runs.
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    /// Untimed runs before the timed ones.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Threads of the CPU runtime; 0 means one per available core.
    #[arg(long, default_value_t = 0, value_parser = super::parse_threads)]
    pub threads: usize,
    /// Where the model runs: the CPU, or the first NVIDIA GPU (`cuda`, through the CUDA driver).
    #[arg(long, value_enum, default_value_t = super::DeviceArg::Cpu)]
    pub device: super::DeviceArg,
    /// NAME:DIMS fixes an input's dimensions (e.g. x:1x3x640x640); NAME=FILE.npy gives its data
    /// instead of seeded random values. Repeatable.
    #[arg(long = "input", value_name = "NAME:DIMS|NAME=FILE.npy")]
    pub inputs: Vec<String>,
    /// Let --input replace sizes a model file declares static (a placeholder input size); every
    /// shape is inferred again, and a node that cannot take the new size is an error naming it.
    #[arg(long)]
    pub override_shapes: bool,
    /// How many of the slowest layers to list.
    #[arg(long, default_value_t = 15)]
    pub top: usize,
    /// A YAML stage map replacing the inferred one (`stages: [{name, until}, ...]`).
    #[arg(long, value_name = "FILE")]
    pub stages: Option<PathBuf>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    model: String,
    #[serde(flatten)]
    profile: &'a Profile,
}

pub fn profile(args: &ProfileArgs) -> Result<()> {
    let device = args.device.device();
    temblor_runtime::check_device(&device).map_err(Error::from)?;
    if args.iters == 0 {
        return Err(Error::usage("--iters must be at least 1"));
    }
    let (
        Model {
            package,
            declared,
            statics,
        },
        given,
    ) = Model::open_with(&args.model, &args.inputs, args.override_shapes)?;
    let row = row_inputs(&args.model, &declared, &given, None, statics)?;
    let graph = match package {
        Some(g) => g,
        None => inputs::compile(&args.model, &row, statics)?.compile,
    };
    let stages = match &args.stages {
        Some(file) => StageMap::read(&graph, file)?,
        None => StageMap::infer(&graph)?,
    };
    let tensors = materialize(&row)?;
    let p = profile::run(
        &graph,
        &tensors,
        args.warmup,
        args.iters,
        args.threads,
        &stages,
        &device,
    )?;
    let model = args.model.display().to_string();
    if args.json {
        let text = serde_json::to_string_pretty(&Report { model, profile: &p })
            .map_err(|e| Error::internal(format!("cannot serialize the profile: {e}")))?;
        println!("{text}");
    } else {
        print_tables(&model, &p, args.top);
    }
    Ok(())
}

fn print_tables(model: &str, p: &Profile, top: usize) {
    println!(
        "model: {model} (threads {}, warmup {}, iters {})",
        p.threads, p.warmup, p.iters
    );
    println!();
    println!(
        "peaks measured here: {:.1} GFLOP/s ({}), {:.1} GB/s (streaming Add)",
        p.peak.gflops_per_s, p.peak.compute, p.peak.gbytes_per_s
    );
    println!();
    println!(
        "| op type | mean ms | stddev ms | count/run | share | GFLOP/s | GB/s | of roofline |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for t in &p.op_types {
        println!(
            "| {} | {:.3} | {:.3} | {} | {} | {:.1} | {:.1} | {} |",
            t.op_type,
            t.mean_ms,
            t.stddev_ms,
            t.count,
            percent(t.share),
            t.gflops_per_s,
            t.gbytes_per_s,
            percent(t.of_roofline)
        );
    }
    println!();
    let shown = top.min(p.layers.len());
    println!("slowest {shown} of {} layers:", p.layers.len());
    println!(
        "| layer | op type | stage | mean ms | median ms | min ms | GFLOP/s | GB/s | of roofline | bound |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---|");
    for l in &p.layers[..shown] {
        let e = &l.efficiency;
        println!(
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} | {} | {} |",
            l.layer,
            l.op_type,
            l.stage,
            l.mean_ms,
            l.median_ms,
            l.min_ms,
            e.gflops_per_s,
            e.gbytes_per_s,
            percent(e.of_roofline),
            if e.compute_bound { "compute" } else { "memory" }
        );
    }
    println!();
    println!("| stage | layers | mean ms | share |");
    println!("|---|---:|---:|---:|");
    for s in &p.stages {
        println!(
            "| {} | {} | {:.3} | {} |",
            s.stage,
            s.layers,
            s.mean_ms,
            percent(s.share)
        );
    }
    println!();
    println!(
        "per-op sum {:.3} ms of end-to-end {:.3} ms (stddev {:.3} ms)",
        p.steps_ms, p.total_ms, p.total_stddev_ms
    );
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}
