//! The compile pipeline, stage by stage: import (frontend, input dims, shape inference), optimize
//! (the pass driver, then verification), compile (the precision plan and placement). Each stage's
//! graph is kept, since each is a view.
//! Import accepts ops temblor cannot map (as opaque nodes, so any model can be inspected and its
//! parse view written); optimize refuses them, listing every one.

#![forbid(unsafe_code)]

pub mod conformance;
pub mod report;

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;
pub use temblor_infer::StaticDims;
use temblor_ir::{validate, Error, Graph, Result, VerifyStatus};
use temblor_passes::{
    optimize_passes, place, DeadNodes, Driver, PassRecord, PrefilterNms, RawMasks,
};
use temblor_precision::request::{assign, Assigned, Request};
use temblor_precision::{LayerError, PrecisionPlan, Summary};
use temblor_tools::measure::{measure, Measured, PassLog};
use temblor_tools::verify::{verify, Verification};

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Input dimensions that fix dynamic ones (`--input NAME:DIMS`).
    pub input_dims: Vec<(String, Vec<usize>)>,
    /// Whether `input_dims` may replace sizes the model declares (`--override-shapes`).
    pub static_dims: StaticDims,
    /// Set an open batch (axis 0) of the inputs to 1, with a warning, so that verification,
    /// measurement and calibration have shapes to run: every command but `run` of a model file,
    /// which keeps the model's dims and takes its inputs' shapes at run time.
    pub default_batch: bool,
    /// Stop the optimizer after this many applied rewrites (bisecting to the bad one).
    pub pass_steps: Option<usize>,
    pub verify: VerifyMode,
    /// Pre-filter multiclass NMS to the k best-scoring boxes (`--nms-prefilter K`).
    pub nms_prefilter: Option<usize>,
    /// Stop a Mask R-CNN at its per-box masks instead of pasting them at the photo's size
    /// (`--raw-masks`); every stage, the parse view included, sees the graph so cut.
    pub raw_masks: bool,
    /// Time the parsed and compiled graphs and the graph after each pass on the CPU runtime.
    pub measure: bool,
    /// The precision plan to make or apply (`--precision`, `--plan`, `--calib`, ...).
    pub precision: Request,
}

/// Whether `compile` checks the optimized graph against the parsed one on the CPU runtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VerifyMode {
    /// When inputs can be synthesized from the input shapes (the default).
    #[default]
    Auto,
    /// Always; a model whose inputs cannot be synthesized is an error.
    On,
    Off,
}

/// Wall time of each stage, in milliseconds.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Timings {
    pub import_ms: f64,
    pub optimize_ms: f64,
    pub compile_ms: f64,
    pub verify_ms: f64,
    pub measure_ms: f64,
}

pub struct Compiled {
    pub parse: Graph,
    pub optimize: Graph,
    /// The optimize graph with its precision plan legalized and every layer placed.
    pub compile: Graph,
    /// The precision plan `compile` legalizes.
    pub plan: PrecisionPlan,
    /// The report's `precision` object.
    pub precision: Summary,
    /// The error each lowered layer adds on its own, in the compile graph's order.
    pub per_layer_error: Vec<LayerError>,
    pub passes: Vec<PassRecord>,
    pub timings: Timings,
    pub verification: Option<Verification>,
    /// What each pass did, the latencies, and where the compiled graph's time goes.
    pub measured: Measured,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Reads a model and types every value. The result is the parse stage.
pub fn import(model: &Path, input_dims: &[(String, Vec<usize>)]) -> Result<Graph> {
    import_with(model, input_dims, StaticDims::Keep)
}

/// [`import`], with `statics` saying whether `input_dims` may replace declared sizes.
pub fn import_with(
    model: &Path,
    input_dims: &[(String, Vec<usize>)],
    statics: StaticDims,
) -> Result<Graph> {
    import_batch(model, input_dims, statics, false)
}

fn import_batch(
    model: &Path,
    input_dims: &[(String, Vec<usize>)],
    statics: StaticDims,
    batch_one: bool,
) -> Result<Graph> {
    let mut g = temblor_frontend::load(model, input_dims)?;
    temblor_infer::fix_inputs(&mut g, input_dims, statics)?;
    // The warning waits until the import has succeeded, so that a model that fails says
    // `error:` on its first stderr line.
    let defaulted = if batch_one {
        temblor_ir::check_supported(&g)?;
        temblor_infer::default_batch(&mut g)
    } else {
        Vec::new()
    };
    temblor_infer::infer(&mut g)?;
    validate(&g).map_err(|e| Error::internal(format!("import of {}: {e}", model.display())))?;
    if !defaulted.is_empty() {
        eprintln!("{}", batch_warning(model, &defaulted));
    }
    Ok(g)
}

/// Sets an open batch of `g`'s inputs to 1 (see [`Options::default_batch`]) and says so on
/// stderr, once, naming the inputs; `source` is the model or package they belong to.
pub fn default_batch(g: &mut Graph, source: &Path) {
    let changed = temblor_infer::default_batch(g);
    if !changed.is_empty() {
        eprintln!("{}", batch_warning(source, &changed));
    }
}

/// The warning for inputs whose open batch was set to 1, each given as `'name' dims`.
pub fn batch_warning(source: &Path, inputs: &[String]) -> String {
    format!(
        "warning: {}: the dynamic batch (axis 0) of input {} is set to 1; give --input \
         NAME:DIMS for another batch size",
        source.display(),
        inputs.join(", ")
    )
}

/// [`Options::raw_masks`]: an error when the model pastes no masks.
fn cut_at_raw_masks(g: &mut Graph, model: &Path) -> Result<()> {
    let before: Vec<_> = g.outputs.iter().map(|o| o.value).collect();
    Driver::new(vec![Box::new(RawMasks), Box::new(DeadNodes)]).run(g)?;
    if g.outputs.iter().map(|o| o.value).eq(before) {
        return Err(Error::usage(format!(
            "--raw-masks: {} has no output of masks pasted at the image's size (a GridSample \
             followed by a threshold, as PaddleDetection's Mask R-CNN exports)",
            model.display()
        )));
    }
    Ok(())
}

pub fn compile(model: &Path, options: &Options) -> Result<Compiled> {
    let start = Instant::now();
    let mut parse = import_batch(
        model,
        &options.input_dims,
        options.static_dims,
        options.default_batch,
    )?;
    if options.raw_masks {
        cut_at_raw_masks(&mut parse, model)?;
    }
    let import_ms = ms(start);

    let start = Instant::now();
    temblor_ir::check_supported(&parse)?;
    let mut optimize = parse.clone();
    let mut list = optimize_passes();
    if let Some(k) = options.nms_prefilter {
        list.insert(0, Box::new(PrefilterNms { k }));
    }
    let log = Rc::new(RefCell::new(PassLog::new(&parse, options.measure)));
    let observer = Rc::clone(&log);
    let passes = Driver::new(list)
        .with_step_limit(options.pass_steps)
        .with_on_applied(Box::new(move |r, g| observer.borrow_mut().observe(r, g)))
        .run(&mut optimize)?;
    let optimize_ms = ms(start);

    let start = Instant::now();
    let verification = match options.verify {
        VerifyMode::Off => None,
        mode => {
            let v = verify(&parse, &optimize)?;
            if mode == VerifyMode::On && v.status != VerifyStatus::Passed {
                return Err(Error::usage(format!(
                    "--verify: cannot verify {}: {}",
                    model.display(),
                    v.reason.as_deref().unwrap_or("no reason given")
                )));
            }
            Some(v)
        }
    };
    let verify_ms = ms(start);

    // The compile stage: the precision plan (calibrated and searched, or given) legalized into
    // the strongly typed graph, every layer placed.
    let start = Instant::now();
    let dims: Vec<String> = options
        .input_dims
        .iter()
        .map(|(name, dims)| {
            let dims: Vec<String> = dims.iter().map(usize::to_string).collect();
            format!("{name}:{}", dims.join("x"))
        })
        .collect();
    let Assigned {
        graph: compile,
        plan,
        summary: precision,
        per_layer_error,
    } = assign(&optimize, model, &dims.join(","), &options.precision)?;
    validate(&compile).map_err(|e| Error::internal(format!("compile stage: {e}")))?;
    let compile_ms = ms(start);

    // Latency is measured on the fp32 compile graph: fp16 and int8 layers are simulated on the
    // CPU runtime, so their speed there says nothing about a GPU's.
    let start = Instant::now();
    let mut fp32 = optimize.clone();
    place(&mut fp32);
    let log = Rc::try_unwrap(log)
        .map_err(|_| Error::internal("the optimizer's pass log is still shared"))?
        .into_inner();
    let measured = measure(&parse, &fp32, &passes, log, options.measure)?;
    let measure_ms = ms(start);

    Ok(Compiled {
        parse,
        optimize,
        compile,
        plan,
        precision,
        per_layer_error,
        passes,
        timings: Timings {
            import_ms,
            optimize_ms,
            compile_ms,
            verify_ms,
            measure_ms,
        },
        verification,
        measured,
    })
}
