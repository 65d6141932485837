//! `temblor compare`: layer-by-layer error of one graph of a model against another (two stages
//! of one model, or two packages compiled with different precision plans), on the values both
//! graphs compute. Exit 1 when a layer exceeds the tolerance, like `compile --verify` on a
//! divergence; the report is printed first either way.

use serde::Serialize;
use std::path::{Path, PathBuf};
use temblor_ir::{package, Error, Graph, Result};
use temblor_pipeline::{Options, VerifyMode};
use temblor_runtime::Tensor;
use temblor_tools::compare::{compare as compare_graphs, Comparison, Mode, Pair};
use temblor_tools::npy;
use temblor_tools::verify::synthesize;

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// A, the reference: a package directory, or a model file (compiled in memory).
    pub a: PathBuf,
    /// B, compared with A: a package or a model file. Left out, two stages of model A are
    /// compared (--stages).
    pub b: Option<PathBuf>,
    /// The two stages of model A to compare, reference first (default parse,optimize).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "A,B")]
    pub stages: Vec<Stage>,
    /// NAME:DIMS fixes an input's dimensions; NAME=FILE.npy gives its values instead of seeded
    /// random ones. Repeatable.
    #[arg(long = "input", value_name = "NAME:DIMS|NAME=FILE.npy")]
    pub inputs: Vec<String>,
    /// cumulative: each graph runs on its own; isolated: each layer of B reads A's values for
    /// its inputs, so its error is the error it adds alone.
    #[arg(long, value_enum, default_value_t = Mode::Cumulative)]
    pub mode: Mode,
    /// Relative L2 error above which a layer fails (exit 1).
    #[arg(long, default_value_t = 1e-3)]
    pub tolerance: f64,
    /// How many of the worst layers to list.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    Parse,
    Optimize,
    Compile,
}

#[derive(Serialize)]
struct InputDoc {
    name: String,
    shape: Vec<usize>,
    /// The `.npy` file, or `random`.
    source: String,
}

#[derive(Serialize)]
struct Report<'a> {
    a: &'a str,
    b: &'a str,
    tolerance: f64,
    inputs: Vec<InputDoc>,
    matched: usize,
    #[serde(flatten)]
    comparison: &'a Comparison,
    /// The first pair in B's topological order over the tolerance.
    first: Option<&'a Pair>,
    worst: Vec<&'a Pair>,
}

pub fn compare(args: &CompareArgs) -> Result<()> {
    if args.tolerance.is_nan() || args.tolerance < 0.0 || args.tolerance.is_infinite() {
        return Err(Error::usage(format!(
            "--tolerance {}: expected a finite number at least 0",
            args.tolerance
        )));
    }
    let mut dims = Vec::new();
    let mut files: Vec<(String, PathBuf, Tensor)> = Vec::new();
    for spec in &args.inputs {
        match spec.split_once('=') {
            Some((name, file)) if !name.is_empty() && !file.is_empty() => {
                let tensor = npy::read(Path::new(file))?;
                dims.push((name.to_string(), tensor.shape.clone()));
                files.push((name.to_string(), PathBuf::from(file), tensor));
            }
            Some(_) => {
                return Err(Error::usage(format!(
                    "--input '{spec}': expected NAME=FILE.npy or NAME:DIMS"
                )))
            }
            None => dims.push(super::parse_input_dims(spec)?),
        }
    }
    let ((a, a_label), (b, b_label)) = graphs(args, &dims)?;
    let inputs = inputs(&a, &a_label, files)?;
    same_inputs(&a, &b, [&a_label, &b_label])?;
    let comparison = compare_graphs(&a, &b, &inputs.0, args.mode, [&a_label, &b_label])?;
    let first = comparison.first_over(args.tolerance);
    let report = Report {
        a: &a_label,
        b: &b_label,
        tolerance: args.tolerance,
        inputs: inputs.1,
        matched: comparison.pairs.len(),
        comparison: &comparison,
        first,
        worst: comparison.worst(args.top),
    };
    if args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::internal(format!("cannot serialize the comparison: {e}")))?;
        println!("{json}");
    } else {
        print_text(&report);
    }
    match first {
        Some(p) => Err(Error::internal(format!(
            "{} ({}) of {b_label} exceeds the tolerance: relative L2 {:.3e} > {:e} against {a_label}",
            p.layer,
            p.value,
            p.metrics.map_or(f64::NAN, |m| m.rel_l2),
            args.tolerance
        ))),
        None => Ok(()),
    }
}

type Labelled = (Graph, String);

/// Graphs A and B with the names the report gives them.
fn graphs(args: &CompareArgs, dims: &[(String, Vec<usize>)]) -> Result<(Labelled, Labelled)> {
    let Some(b) = &args.b else {
        let stages = match args.stages.as_slice() {
            [] => [Stage::Parse, Stage::Optimize],
            &[x, y] => [x, y],
            _ => {
                return Err(Error::usage(
                    "--stages takes two stages, e.g. parse,optimize",
                ))
            }
        };
        if package::is_package(&args.a) {
            return Err(Error::usage(format!(
                "{} is a package, which holds only its compile graph; give a second graph to \
                 compare it with, or a model file to compare its stages",
                args.a.display()
            )));
        }
        let mut c = temblor_pipeline::compile(&args.a, &options(dims))?;
        let mut take = |s: Stage| {
            let (g, name) = match s {
                Stage::Parse => (&mut c.parse, "parse"),
                Stage::Optimize => (&mut c.optimize, "optimize"),
                Stage::Compile => (&mut c.compile, "compile"),
            };
            (std::mem::take(g), format!("{} ({name})", args.a.display()))
        };
        return Ok((take(stages[0]), take(stages[1])));
    };
    if !args.stages.is_empty() {
        return Err(Error::usage(
            "--stages compares two stages of one model; give either B or --stages",
        ));
    }
    Ok((
        (load(&args.a, dims)?, args.a.display().to_string()),
        (load(b, dims)?, b.display().to_string()),
    ))
}

fn options(dims: &[(String, Vec<usize>)]) -> Options {
    Options {
        input_dims: dims.to_vec(),
        verify: VerifyMode::Off,
        default_batch: true,
        ..Options::default()
    }
}

/// A package as written (its inputs fixed to `dims`), or a model file's compile graph. Errors
/// name the file, since two are given.
fn load(path: &Path, dims: &[(String, Vec<usize>)]) -> Result<Graph> {
    let within = |e: Error| {
        let at = |m: String| {
            let p = path.display().to_string();
            if m.contains(&p) {
                m
            } else {
                format!("{p}: {m}")
            }
        };
        match e {
            Error::Usage(m) => Error::Usage(at(m)),
            Error::BadInput(m) => Error::BadInput(at(m)),
            Error::Internal(m) => Error::Internal(at(m)),
        }
    };
    read(path, dims).map_err(within)
}

fn read(path: &Path, dims: &[(String, Vec<usize>)]) -> Result<Graph> {
    if package::is_package(path) {
        let mut g = package::load(path)?;
        temblor_infer::fix_inputs(&mut g, dims, temblor_infer::StaticDims::Keep)?;
        temblor_pipeline::default_batch(&mut g, path);
        Ok(g)
    } else {
        Ok(temblor_pipeline::compile(path, &options(dims))?.compile)
    }
}

/// The inputs both graphs run on, and what the report says of them.
type Inputs = (Vec<(String, Tensor)>, Vec<InputDoc>);

/// Seeded inputs for `a`, replaced by the given files where there are some.
fn inputs(a: &Graph, label: &str, files: Vec<(String, PathBuf, Tensor)>) -> Result<Inputs> {
    let mut inputs = synthesize(a)
        .map_err(|reason| Error::usage(format!("{label}: cannot make inputs: {reason}")))?;
    let mut docs: Vec<InputDoc> = inputs
        .iter()
        .map(|(name, t)| InputDoc {
            name: name.clone(),
            shape: t.shape.clone(),
            source: "random".into(),
        })
        .collect();
    for (name, file, tensor) in files {
        let i = inputs
            .iter()
            .position(|(n, _)| *n == name)
            .ok_or_else(|| Error::usage(format!("{label} has no input named '{name}'")))?;
        docs[i].source = file.display().to_string();
        inputs[i].1 = tensor;
    }
    Ok((inputs, docs))
}

/// A usage error unless B's inputs are A's (names, dtypes and shapes).
fn same_inputs(a: &Graph, b: &Graph, labels: [&str; 2]) -> Result<()> {
    let signature = |g: &Graph| -> Vec<String> {
        g.inputs
            .iter()
            .filter_map(|&id| g.node(id).outputs.first())
            .map(|o| format!("{} {}[{}]", o.name, o.ty.dtype, o.ty.shape))
            .collect()
    };
    let (sa, sb) = (signature(a), signature(b));
    if sa != sb {
        return Err(Error::usage(format!(
            "{} is not a graph of the model of {}: its inputs are [{}], A's are [{}]",
            labels[1],
            labels[0],
            sb.join(", "),
            sa.join(", ")
        )));
    }
    Ok(())
}

fn print_text(r: &Report) {
    let c = r.comparison;
    println!("A: {}\nB: {}", r.a, r.b);
    let mode = match c.mode {
        Mode::Cumulative => "cumulative",
        Mode::Isolated => "isolated",
    };
    println!(
        "{} values matched (A {} layers, B {} layers), {mode}, tolerance {:e} (relative L2)",
        r.matched, c.layers_a, c.layers_b, r.tolerance
    );
    match r.first {
        Some(p) => println!(
            "first layer over the tolerance: {}: relative L2 {:.3e}",
            describe(p),
            p.metrics.map_or(f64::NAN, |m| m.rel_l2)
        ),
        None => println!("every matched layer is within the tolerance"),
    }
    let different: Vec<&Pair> = c.pairs.iter().filter(|p| p.metrics.is_none()).collect();
    if !different.is_empty() {
        println!(
            "{} value(s) not compared, their shapes differ (after a data-dependent selection):",
            different.len()
        );
        for p in different {
            println!("  {} {:?} vs {:?}", p.value, p.shape, p.reference_shape);
        }
    }
    println!(
        "{:>4}  {:>10}  {:>10}  {:>9}  layer",
        "rank", "rel_l2", "max_abs", "cosine"
    );
    for (i, p) in r.worst.iter().enumerate() {
        if let Some(m) = p.metrics {
            println!(
                "{:>4}  {:>10.3e}  {:>10.3e}  {:>9.6}  {}",
                i + 1,
                m.rel_l2,
                m.max_abs,
                m.cosine,
                describe(p)
            );
        }
    }
}

/// `layer (op, precision) -> value`, and A's layer when its value has another name.
fn describe(p: &Pair) -> String {
    let precision = p
        .precision
        .map(|x| format!(", {}", format!("{x:?}").to_lowercase()))
        .unwrap_or_default();
    let reference = if p.reference_value != p.value {
        format!(" (A: {} -> {})", p.reference_layer, p.reference_value)
    } else {
        String::new()
    };
    format!(
        "{} ({}{precision}) -> {}{reference}",
        p.layer, p.op, p.value
    )
}
