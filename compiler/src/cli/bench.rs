//! `temblor bench`: the latency, throughput and peak memory of the CPU runtime on one model, at
//! one batch size or one table row per batch size, on seeded random inputs or given `.npy` files.

use super::run::runtime_error;
use crate::pipeline::{self, Options, VerifyMode};
use crate::{npy, package, Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use temblor_ir::{DType, Dim, Graph};
use temblor_runtime::{f16, CpuPlan, Tensor, TensorData};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// A package directory written by `compile`, or a model file (compiled for each batch size).
    pub model: PathBuf,
    /// Threads of the CPU runtime; 0 means one per available core.
    #[arg(long, default_value_t = 0, value_parser = super::parse_threads)]
    pub threads: usize,
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
}

/// What `--input` says about one input.
enum Given {
    Dims(Vec<usize>),
    Data { file: PathBuf, tensor: Tensor },
}

/// A graph input as the model (or package) declares it.
struct Declared {
    name: String,
    dtype: DType,
    dims: Vec<Dim>,
}

/// One input of one row: its final shape and where its values come from.
struct RowInput<'a> {
    name: &'a str,
    dtype: DType,
    shape: Vec<usize>,
    data: Option<(&'a Path, &'a Tensor)>,
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
    if args.iters == 0 {
        return Err(Error::usage("--iters must be at least 1"));
    }
    if args.batch.contains(&0) {
        return Err(Error::usage("--batch sizes must be positive"));
    }
    let given = args
        .inputs
        .iter()
        .map(|s| parse_given(s))
        .collect::<Result<Vec<_>>>()?;
    let package = package::is_package(&args.model)
        .then(|| package::load(&args.model))
        .transpose()?;
    let declared = match &package {
        Some(g) => declared_inputs(g),
        None => declared_inputs(&pipeline::import(&args.model, &[])?),
    };
    check_names(&declared, &given)?;
    let batches: Vec<Option<usize>> = match args.batch.as_slice() {
        [] => vec![None],
        sizes => sizes.iter().copied().map(Some).collect(),
    };
    // Every row's inputs are resolved before any runs, so a bad batch size fails at once.
    let rows_inputs = batches
        .iter()
        .map(|&b| row_inputs(&declared, &given, b))
        .collect::<Result<Vec<_>>>()?;

    let mut threads = 0;
    let mut rows = Vec::with_capacity(rows_inputs.len());
    for (i, (inputs, batch)) in rows_inputs.iter().zip(&batches).enumerate() {
        if i > 0 {
            reset_peak_rss();
        }
        let plan = row_plan(args, package.as_ref(), inputs)?;
        threads = plan.threads();
        let batch = batch.unwrap_or_else(|| leading_extent(inputs));
        rows.push(measure(&plan, inputs, batch, args)?);
    }
    let setup = Setup {
        model: args.model.display().to_string(),
        threads,
        warmup: args.warmup,
        iters: args.iters,
    };
    print_report(&setup, &rows, !args.batch.is_empty(), args.json)
}

fn parse_given(spec: &str) -> Result<(String, Given)> {
    let Some((name, file)) = spec.split_once('=') else {
        let (name, dims) = super::parse_input_dims(spec)?;
        return Ok((name, Given::Dims(dims)));
    };
    if name.is_empty() || file.is_empty() {
        return Err(Error::usage(format!(
            "--input '{spec}': expected NAME=FILE.npy or NAME:DIMS"
        )));
    }
    let file = PathBuf::from(file);
    let tensor = npy::read(&file)?;
    Ok((name.to_string(), Given::Data { file, tensor }))
}

fn declared_inputs(g: &Graph) -> Vec<Declared> {
    g.inputs
        .iter()
        .filter_map(|&id| g.node(id).outputs.first())
        .map(|o| Declared {
            name: o.name.clone(),
            dtype: o.ty.dtype,
            dims: o.ty.shape.dims().to_vec(),
        })
        .collect()
}

fn check_names(declared: &[Declared], given: &[(String, Given)]) -> Result<()> {
    for (i, (name, _)) in given.iter().enumerate() {
        if !declared.iter().any(|d| &d.name == name) {
            let names: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
            return Err(Error::usage(format!(
                "the model has no input named '{name}'; its inputs are: {}",
                names.join(", ")
            )));
        }
        if given[..i].iter().any(|(other, _)| other == name) {
            return Err(Error::usage(format!(
                "input '{name}' is given twice; give NAME:DIMS or NAME=FILE.npy once"
            )));
        }
    }
    Ok(())
}

fn show_dims(dims: &[Dim]) -> String {
    let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// Every input's shape and data for one row: the model's dims, overridden by `--input`, with the
/// batch axis set when `batch` is given.
fn row_inputs<'a>(
    declared: &'a [Declared],
    given: &'a [(String, Given)],
    batch: Option<usize>,
) -> Result<Vec<RowInput<'a>>> {
    let mut row = Vec::with_capacity(declared.len());
    for d in declared {
        let given = given.iter().find(|(n, _)| n == &d.name).map(|(_, g)| g);
        let mut dims: Vec<Option<usize>> = match given {
            Some(Given::Dims(dims)) => dims.iter().copied().map(Some).collect(),
            Some(Given::Data { tensor, .. }) => tensor.shape.iter().copied().map(Some).collect(),
            None => d.dims.iter().map(Dim::known).collect(),
        };
        if dims.len() != d.dims.len() {
            return Err(Error::usage(format!(
                "input '{}' has rank {} {}, but --input gives {} dims",
                d.name,
                d.dims.len(),
                show_dims(&d.dims),
                dims.len()
            )));
        }
        for (axis, (want, declared)) in dims.iter().zip(&d.dims).enumerate() {
            if let (Some(w), Some(k)) = (want, declared.known()) {
                if *w != k {
                    return Err(Error::usage(format!(
                        "input '{}' {} has a fixed size {k} on axis {axis}, but {w} was given",
                        d.name,
                        show_dims(&d.dims)
                    )));
                }
            }
        }
        if let (Some(b), Some(first)) = (batch, dims.first_mut()) {
            match d.dims[0] {
                Dim::Known(1) if b > 1 => {
                    return Err(Error::usage(format!(
                        "--batch {b}: input '{}' {} fixes its batch (axis 0) to 1, so this \
                         model runs at batch 1 only",
                        d.name,
                        show_dims(&d.dims)
                    )))
                }
                Dim::Known(_) => {}
                _ => *first = Some(b),
            }
        }
        let Some(shape) = dims.iter().copied().collect::<Option<Vec<usize>>>() else {
            return Err(Error::usage(format!(
                "input '{}' has dynamic dims {}: fix them with --input {}:DIMS (e.g. {}:{})",
                d.name,
                show_dims(&d.dims),
                d.name,
                d.name,
                example_dims(&d.dims)
            )));
        };
        let data = match given {
            Some(Given::Data { file, tensor }) => {
                if tensor.dtype() != d.dtype {
                    return Err(Error::usage(format!(
                        "{}: {} data for input '{}', which is {}",
                        file.display(),
                        tensor.dtype(),
                        d.name,
                        d.dtype
                    )));
                }
                Some((file.as_path(), tensor))
            }
            _ => None,
        };
        row.push(RowInput {
            name: &d.name,
            dtype: d.dtype,
            shape,
            data,
        });
    }
    Ok(row)
}

/// The declared dims with every unknown one shown as 1 (a batch) or 640 (a spatial extent).
fn example_dims(dims: &[Dim]) -> String {
    let dims: Vec<String> = dims
        .iter()
        .enumerate()
        .map(|(axis, d)| match (d.known(), axis) {
            (Some(k), _) => k.to_string(),
            (None, 0) => "1".into(),
            (None, _) => "640".into(),
        })
        .collect();
    dims.join("x")
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
fn row_plan(args: &BenchArgs, package: Option<&Graph>, inputs: &[RowInput]) -> Result<CpuPlan> {
    if let Some(g) = package {
        if args.unoptimized {
            return Err(Error::usage(
                "--unoptimized needs a model file: a package holds only the optimized graph",
            ));
        }
        return plan_for(g, args.threads);
    }
    let options = Options {
        input_dims: inputs
            .iter()
            .map(|i| (i.name.to_string(), i.shape.clone()))
            .collect(),
        verify: VerifyMode::Off,
        ..Options::default()
    };
    let compiled = pipeline::compile(&args.model, &options)?;
    let graph = if args.unoptimized {
        &compiled.parse
    } else {
        &compiled.compile
    };
    plan_for(graph, args.threads)
}

fn plan_for(g: &Graph, threads: usize) -> Result<CpuPlan> {
    CpuPlan::new(g)
        .and_then(|p| p.with_threads(threads))
        .map_err(runtime_error)
}

/// The row's tensors: given data (repeated along axis 0 when it holds one item of a larger
/// batch) or seeded random values.
fn materialize(inputs: &[RowInput]) -> Result<Vec<(String, Tensor)>> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    inputs
        .iter()
        .map(|i| {
            let tensor = match i.data {
                Some((file, t)) => fit_batch(file, i.name, t, &i.shape)?,
                None => random_tensor(i.dtype, &i.shape, &mut rng),
            };
            Ok((i.name.to_string(), tensor))
        })
        .collect()
}

fn fit_batch(file: &Path, name: &str, t: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if t.shape == shape {
        return Ok(t.clone());
    }
    let one_item = t.shape.first() == Some(&1) && t.shape[1..] == shape[1..];
    if !one_item {
        return Err(Error::usage(format!(
            "{}: input '{name}' has shape {:?}, the row needs {shape:?}",
            file.display(),
            t.shape
        )));
    }
    let n = shape[0];
    macro_rules! repeat {
        ($($v:ident),*) => {
            match &t.data {
                $(TensorData::$v(d) => TensorData::$v(d.repeat(n)),)*
            }
        };
    }
    Ok(Tensor {
        shape: shape.to_vec(),
        data: repeat!(F32, F16, F64, I8, U8, I16, U16, I32, U32, I64, U64, Bool),
    })
}

/// The xorshift generator the tests use: the same inputs on every run and machine.
struct Rng(u64);

impl Rng {
    /// A value in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Values that any model accepts without a domain error: images (rank 3 and up) in [-1, 1),
/// small float inputs such as scale factors in [0.5, 2), integers (sizes, counts) in 1..=4.
fn random_tensor(dtype: DType, shape: &[usize], rng: &mut Rng) -> Tensor {
    let (lo, hi) = match dtype {
        DType::F32 | DType::F16 | DType::F64 if shape.len() >= 3 => (-1.0, 1.0),
        DType::F32 | DType::F16 | DType::F64 => (0.5, 2.0),
        DType::Bool => (0.0, 2.0),
        _ => (1.0, 5.0),
    };
    let count: usize = shape.iter().product();
    let v: Vec<f64> = (0..count).map(|_| lo + (hi - lo) * rng.unit()).collect();
    let ints = |v: &[f64]| v.iter().map(|x| x.floor() as i64).collect::<Vec<i64>>();
    let data = match dtype {
        DType::F32 => TensorData::F32(v.iter().map(|&x| x as f32).collect()),
        DType::F16 => TensorData::F16(v.iter().map(|&x| f16::from_f64(x)).collect()),
        DType::F64 => TensorData::F64(v),
        DType::I8 => TensorData::I8(ints(&v).iter().map(|&x| x as i8).collect()),
        DType::U8 => TensorData::U8(ints(&v).iter().map(|&x| x as u8).collect()),
        DType::I16 => TensorData::I16(ints(&v).iter().map(|&x| x as i16).collect()),
        DType::U16 => TensorData::U16(ints(&v).iter().map(|&x| x as u16).collect()),
        DType::I32 => TensorData::I32(ints(&v).iter().map(|&x| x as i32).collect()),
        DType::U32 => TensorData::U32(ints(&v).iter().map(|&x| x as u32).collect()),
        DType::I64 => TensorData::I64(ints(&v)),
        DType::U64 => TensorData::U64(ints(&v).iter().map(|&x| x as u64).collect()),
        DType::Bool => TensorData::Bool(ints(&v).iter().map(|&x| x == 1).collect()),
    };
    Tensor {
        shape: shape.to_vec(),
        data,
    }
}

fn measure(plan: &CpuPlan, inputs: &[RowInput], batch: usize, args: &BenchArgs) -> Result<Row> {
    let tensors = materialize(inputs)?;
    for _ in 0..args.warmup {
        plan.run(&tensors).map_err(runtime_error)?;
    }
    let mut ms = Vec::with_capacity(args.iters);
    for _ in 0..args.iters {
        let start = Instant::now();
        let outputs = plan.run(&tensors).map_err(runtime_error)?;
        ms.push(start.elapsed().as_secs_f64() * 1e3);
        drop(outputs);
    }
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
        "model: {} (threads {}, warmup {}, iters {})",
        setup.model, setup.threads, setup.warmup, setup.iters
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
