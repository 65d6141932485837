//! `temblor bench`: the latency, throughput and peak memory of the CPU runtime on one model, at
//! one batch size or one table row per batch size, on seeded random inputs or given `.npy` files.

use super::inputs::{self, materialize, row_inputs, Model, RowInput};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use temblor_ir::{Error, Graph, Result};
use temblor_pipeline::StaticDims;
use temblor_runtime::{check_device, prepare, Int8Execution, Plan, PrepareOptions};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// A package directory written by `compile`, or a model file (compiled for each batch size).
    pub model: PathBuf,
    /// Threads of the CPU runtime; 0 means one per available core.
    #[arg(long, default_value_t = 0, value_parser = super::parse_threads)]
    pub threads: usize,
    /// Where the model runs: the CPU, or the first NVIDIA GPU (`cuda`, through the CUDA driver).
    #[arg(long, value_enum, default_value_t = super::DeviceArg::Cpu)]
    pub device: super::DeviceArg,
    /// Untimed runs before the timed ones.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// NAME:DIMS fixes an input's dimensions (e.g. x:1x3x640x640); NAME=FILE.npy gives its data
    /// instead of seeded random values. Repeatable.
    #[arg(long = "input", value_name = "NAME:DIMS|NAME=FILE.npy")]
    pub inputs: Vec<String>,
    /// Let --input replace sizes a model file declares static (a placeholder input size); every
    /// shape is inferred again, and a node that cannot take the new size is an error naming it.
    #[arg(long)]
    pub override_shapes: bool,
    /// Batch sizes, one row each (e.g. 1,2,4,8): axis 0 of every input whose batch is dynamic.
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub batch: Vec<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Time the imported graph as parsed, without the optimizer's rewrites (a model file only):
    /// the baseline the passes are measured against.
    #[arg(long)]
    pub unoptimized: bool,
    /// How int8 and bf16 layers run: `native` in integers (VNNI where the CPU has it) and bf16
    /// dot products (AVX-512 BF16 where the CPU has it), or `simulate` (quantize, dequantize
    /// and convolve in f32; widen bf16 to f32 and round back; as the compile graph is written).
    #[arg(long, value_enum, default_value_t = Int8Mode::Native)]
    pub int8: Int8Mode,
}

/// `--int8`: see [`Int8Execution`].
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Int8Mode {
    Native,
    Simulate,
}

impl From<Int8Mode> for Int8Execution {
    fn from(m: Int8Mode) -> Int8Execution {
        match m {
            Int8Mode::Native => Int8Execution::Native,
            Int8Mode::Simulate => Int8Execution::Simulate,
        }
    }
}

#[derive(Serialize)]
struct InputDoc {
    name: String,
    dtype: &'static str,
    shape: Vec<usize>,
    /// The `.npy` file, or `random`.
    source: String,
}

#[derive(Serialize)]
struct Row {
    batch: usize,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    mean_ms: f64,
    min_ms: f64,
    /// Images per second: the batch over the mean latency.
    throughput_per_s: f64,
    /// The process's resident high-water mark, model loading or compiling included; `None` where
    /// the OS does not report it.
    peak_rss_bytes: Option<u64>,
    inputs: Vec<InputDoc>,
}

#[derive(Serialize)]
struct Setup {
    model: String,
    threads: usize,
    /// The instruction set the plan's kernels were chosen for.
    isa: String,
    warmup: usize,
    iters: usize,
}

#[derive(Serialize)]
struct SingleReport<'a> {
    #[serde(flatten)]
    setup: &'a Setup,
    #[serde(flatten)]
    row: &'a Row,
}

#[derive(Serialize)]
struct BatchReport<'a> {
    #[serde(flatten)]
    setup: &'a Setup,
    /// The highest of the rows' marks.
    peak_rss_bytes: Option<u64>,
    rows: &'a [Row],
}

pub fn bench(args: &BenchArgs) -> Result<()> {
    check_device(&args.device.device()).map_err(Error::from)?;
    if args.iters == 0 {
        return Err(Error::usage("--iters must be at least 1"));
    }
    if args.batch.contains(&0) {
        return Err(Error::usage("--batch sizes must be positive"));
    }
    let (
        Model {
            package,
            declared,
            statics,
        },
        given,
    ) = Model::open_with(&args.model, &args.inputs, args.override_shapes)?;
    let batches: Vec<Option<usize>> = match args.batch.as_slice() {
        [] => vec![None],
        sizes => sizes.iter().copied().map(Some).collect(),
    };
    // Every row's inputs are resolved before any runs, so a bad batch size fails at once.
    let rows_inputs = batches
        .iter()
        .map(|&b| row_inputs(&args.model, &declared, &given, b, statics))
        .collect::<Result<Vec<_>>>()?;

    let (mut threads, mut isa) = (0, String::new());
    let mut rows = Vec::with_capacity(rows_inputs.len());
    for (i, (inputs, batch)) in rows_inputs.iter().zip(&batches).enumerate() {
        if i > 0 {
            reset_peak_rss();
        }
        let plan = row_plan(args, package.as_ref(), inputs, statics)?;
        (threads, isa) = (plan.threads(), plan.isa().to_string());
        let batch = batch.unwrap_or_else(|| leading_extent(inputs));
        rows.push(measure(&plan, inputs, batch, args)?);
    }
    let setup = Setup {
        model: args.model.display().to_string(),
        threads,
        isa,
        warmup: args.warmup,
        iters: args.iters,
    };
    print_report(&setup, &rows, !args.batch.is_empty(), args.json)
}

/// The batch of a row run without `--batch`: axis 0 of the first input that has one.
fn leading_extent(inputs: &[RowInput]) -> usize {
    inputs
        .iter()
        .find_map(|i| i.shape.first().copied())
        .unwrap_or(1)
}

/// The plan of one row: the package's graph as it is, or the model compiled for the row's
/// input shapes (the compile graphs are dropped once the plan holds what it needs).
fn row_plan(
    args: &BenchArgs,
    package: Option<&Graph>,
    inputs: &[RowInput],
    statics: StaticDims,
) -> Result<Plan> {
    if let Some(g) = package {
        if args.unoptimized {
            return Err(Error::usage(
                "--unoptimized needs a model file: a package holds only the optimized graph",
            ));
        }
        return plan_for(g, args);
    }
    let compiled = inputs::compile(&args.model, inputs, statics)?;
    let graph = if args.unoptimized {
        &compiled.parse
    } else {
        &compiled.compile
    };
    plan_for(graph, args)
}

/// A plan with spinning workers: bench measures latency, which sleeping workers add to.
fn plan_for(g: &Graph, args: &BenchArgs) -> Result<Plan> {
    let options = PrepareOptions {
        threads: args.threads,
        spin: true,
        int8: args.int8.into(),
        ..PrepareOptions::default()
    };
    prepare(g, &args.device.device(), &options).map_err(Error::from)
}

fn measure(plan: &Plan, inputs: &[RowInput], batch: usize, args: &BenchArgs) -> Result<Row> {
    let tensors = materialize(inputs)?;
    let mut state = plan.new_state();
    for _ in 0..args.warmup {
        plan.run(&mut state, &tensors).map_err(Error::from)?;
    }
    let mut ms = Vec::with_capacity(args.iters);
    let bar = temblor_tools::progress::bar(args.iters, &format!("bench b={batch}"));
    for _ in 0..args.iters {
        let start = Instant::now();
        let outputs = plan.run(&mut state, &tensors).map_err(Error::from)?;
        ms.push(start.elapsed().as_secs_f64() * 1e3);
        drop(outputs);
        bar.inc(1);
    }
    bar.finish_and_clear();
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    Ok(Row {
        batch,
        p50_ms: percentile(&ms, 50.0),
        p90_ms: percentile(&ms, 90.0),
        p99_ms: percentile(&ms, 99.0),
        mean_ms: mean,
        min_ms: ms[0],
        throughput_per_s: batch as f64 / (mean / 1e3),
        peak_rss_bytes: peak_rss_bytes(),
        inputs: inputs
            .iter()
            .map(|i| InputDoc {
                name: i.name.to_string(),
                dtype: i.dtype.name(),
                shape: i.shape.clone(),
                source: i
                    .data
                    .map_or("random".into(), |(f, _)| f.display().to_string()),
            })
            .collect(),
    })
}

/// Nearest-rank percentile of sorted, non-empty samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// VmHWM of /proc/self/status: the most resident memory the process has held.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Lowers the high-water mark to the current resident size, so each row reports its own peak.
/// Where the kernel refuses, the marks stay cumulative: still true upper bounds.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn print_report(setup: &Setup, rows: &[Row], table: bool, json: bool) -> Result<()> {
    if json {
        let peak = rows.iter().filter_map(|r| r.peak_rss_bytes).max();
        let text = match rows {
            [row] if !table => serde_json::to_string_pretty(&SingleReport { setup, row }),
            _ => serde_json::to_string_pretty(&BatchReport {
                setup,
                peak_rss_bytes: peak,
                rows,
            }),
        }
        .map_err(|e| Error::internal(format!("cannot serialize the results: {e}")))?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "model: {} (threads {}, {}, warmup {}, iters {})",
        setup.model, setup.threads, setup.isa, setup.warmup, setup.iters
    );
    if let Some(first) = rows.first() {
        let at = if table {
            " at the first batch size"
        } else {
            ""
        };
        for i in &first.inputs {
            println!(
                "input {}: {} {:?}{at} ({})",
                i.name, i.dtype, i.shape, i.source
            );
        }
    }
    match rows {
        [row] if !table => {
            println!(
                "latency (ms): p50 {:.3}  p90 {:.3}  p99 {:.3}  mean {:.3}  min {:.3}",
                row.p50_ms, row.p90_ms, row.p99_ms, row.mean_ms, row.min_ms
            );
            println!("throughput: {:.2} images/s", row.throughput_per_s);
            println!("peak RSS: {}", show_rss(row.peak_rss_bytes));
        }
        _ => {
            println!("| batch | p50 ms | p90 ms | p99 ms | images/s | peak RSS |");
            println!("|---:|---:|---:|---:|---:|---:|");
            for r in rows {
                println!(
                    "| {} | {:.3} | {:.3} | {:.3} | {:.2} | {} |",
                    r.batch,
                    r.p50_ms,
                    r.p90_ms,
                    r.p99_ms,
                    r.throughput_per_s,
                    show_rss(r.peak_rss_bytes)
                );
            }
        }
    }
    Ok(())
}

fn show_rss(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".into(), |b| {
        format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
    })
}
