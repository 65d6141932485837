use std::path::{Path, PathBuf};
use temblor_ir::{package, Error, Graph, Result};
use temblor_pipeline::{Options, StaticDims, VerifyMode};
use temblor_runtime::Tensor;
use temblor_runtime::{check_device, prepare, PrepareOptions};
use temblor_tools::npy;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// A package directory written by `compile`, or a model file (compiled in memory).
    pub model: PathBuf,
    /// An input tensor, NAME=FILE.npy. Repeatable.
    #[arg(
        long = "input",
        value_name = "NAME=FILE.npy",
        conflicts_with = "images"
    )]
    pub inputs: Vec<String>,
    /// A photo (JPEG or PNG) to preprocess, run and postprocess: writes OUT/results.json and
    /// OUT/<stem>.png with the answer drawn. Repeatable.
    #[arg(long = "image", value_name = "FILE")]
    pub images: Vec<PathBuf>,
    /// With --image: what the outputs mean, where the package does not record it and the
    /// output shapes do not tell.
    #[arg(long, value_enum, requires = "images")]
    pub postprocess: Option<temblor_postprocess::Kind>,
    /// With --image: the preprocessing (temblor YAML or infer_cfg.yml), instead of the
    /// package's or the kind's default.
    #[arg(long, requires = "images")]
    pub preprocess: Option<PathBuf>,
    /// With --image: class names, one a line, instead of those recorded.
    #[arg(long, requires = "images")]
    pub labels: Option<PathBuf>,
    /// With --image: leave out objects and text regions scoring below this.
    #[arg(long, requires = "images")]
    pub min_score: Option<f32>,
    /// Directory for the outputs, written as <output name>.npy (with --image: results.json and
    /// the drawn photos).
    #[arg(short, long, default_value = ".")]
    pub out: PathBuf,
    /// Threads of the CPU runtime; 0 means one per available core.
    #[arg(long, default_value_t = 0, value_parser = super::parse_threads)]
    pub threads: usize,
    /// Where the model runs: the CPU, or the first NVIDIA GPU (`cuda`, through the CUDA driver).
    #[arg(long, value_enum, default_value_t = super::DeviceArg::Cpu)]
    pub device: super::DeviceArg,
    /// Compile a model file for the given data's shapes, even where the model declares other
    /// static sizes (a placeholder input size); every shape is inferred again.
    #[arg(long)]
    pub override_shapes: bool,
}

/// A package as written, or a model file compiled in memory with its inputs' shapes left as the
/// model declares them.
pub fn load_graph(path: &Path) -> Result<Graph> {
    load_graph_with(path, Options::default())
}

/// [`load_graph`], a model file compiled with `options` (unverified: a run checks nothing).
fn load_graph_with(path: &Path, options: Options) -> Result<Graph> {
    if package::is_package(path) {
        package::load(path)
    } else {
        let options = Options {
            verify: VerifyMode::Off,
            ..options
        };
        Ok(temblor_pipeline::compile(path, &options)?.compile)
    }
}

pub fn run(args: &RunArgs) -> Result<()> {
    check_device(&args.device.device()).map_err(Error::from)?;
    if !args.images.is_empty() {
        if args.override_shapes {
            return Err(Error::usage(
                "--override-shapes applies to --input data; with --image the preprocessing \
                 decides the input size",
            ));
        }
        return super::answer::run_images(args);
    }
    let mut inputs = Vec::with_capacity(args.inputs.len());
    for spec in &args.inputs {
        let (name, file) = spec
            .split_once('=')
            .ok_or_else(|| Error::usage(format!("--input '{spec}': expected NAME=FILE.npy")))?;
        inputs.push((name.to_string(), npy::read(Path::new(file))?));
    }
    let graph = if args.override_shapes {
        if package::is_package(&args.model) {
            return Err(super::inputs::override_of_package(&args.model));
        }
        let options = Options {
            input_dims: data_dims(&inputs),
            static_dims: StaticDims::Override,
            ..Options::default()
        };
        load_graph_with(&args.model, options)?
    } else {
        load_graph(&args.model)?
    };
    let options = PrepareOptions {
        threads: args.threads,
        ..PrepareOptions::default()
    };
    let plan = prepare(&graph, &args.device.device(), &options).map_err(Error::from)?;
    if !args.override_shapes && !package::is_package(&args.model) {
        suggest_override(&plan, &inputs)?;
    }
    let outputs = plan.run_once(&inputs).map_err(Error::from)?;

    std::fs::create_dir_all(&args.out)
        .map_err(|e| Error::internal(format!("{}: {e}", args.out.display())))?;
    // Each output goes to a temporary name first, so an interrupted run leaves no truncated .npy.
    for (name, tensor) in &outputs {
        let path = args.out.join(format!("{}.npy", npy::file_stem(name)));
        let partial = path.with_extension("npy.partial");
        npy::write(&partial, tensor)?;
        std::fs::rename(&partial, &path)
            .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
        println!("{name}: {:?} -> {}", tensor.shape, path.display());
    }
    Ok(())
}

fn data_dims(inputs: &[(String, Tensor)]) -> Vec<(String, Vec<usize>)> {
    inputs
        .iter()
        .map(|(name, t)| (name.clone(), t.shape.clone()))
        .collect()
}

/// A model file whose declared static sizes the data does not have (a placeholder such as
/// 10x3x32x32) fails here, pointing at `--override-shapes`, rather than in the runtime.
fn suggest_override(plan: &temblor_runtime::Plan, inputs: &[(String, Tensor)]) -> Result<()> {
    for (name, tensor) in inputs {
        let Some(spec) = plan.inputs().iter().find(|s| &s.name == name) else {
            continue;
        };
        let fits = spec.dims.len() == tensor.shape.len()
            && spec
                .dims
                .iter()
                .zip(&tensor.shape)
                .all(|(d, &n)| d.known().is_none_or(|k| k == n));
        if !fits {
            let declared: Vec<String> = spec.dims.iter().map(|d| d.to_string()).collect();
            return Err(Error::usage(format!(
                "input '{name}' is {:?}, but the model declares [{}]; give --override-shapes \
                 to compile it for the data's size",
                tensor.shape,
                declared.join(", ")
            )));
        }
    }
    Ok(())
}
