use std::path::{Path, PathBuf};
use temblor_export::Target;
use temblor_ir::{package, Error, Graph, Result, VerifyStatus};
use temblor_pipeline::report;
use temblor_pipeline::{Options, StaticDims, VerifyMode};
use temblor_precision::calibrators::Calibrator;
use temblor_precision::{request::Request, Budget};
use temblor_precision::{AutoBase, PlanMode};
use temblor_tools::preprocess_config::{self, PreprocessConfig};
use temblor_visualize::{render, report_html, View};

#[derive(clap::Args, Debug)]
pub struct CompileArgs {
    /// The model: an ONNX file.
    pub model: PathBuf,
    /// Output directory (default: ./<model stem>.temblor/). It becomes the package.
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// Fix an input's dimensions, NAME:DIMS (e.g. x:1x3x640x640). Repeatable.
    #[arg(long = "input", value_name = "NAME:DIMS")]
    pub inputs: Vec<String>,
    /// Let --input replace sizes the model declares static (a placeholder input size), then
    /// re-infer every shape; a node that cannot take the new size is an error naming it.
    #[arg(long)]
    pub override_shapes: bool,
    /// Stop the optimizer after N applied rewrites, even within a pass (N and N-1 differ by
    /// exactly one rewrite, so bisecting finds the one that breaks a model).
    #[arg(long, value_name = "N")]
    pub pass_steps: Option<usize>,
    /// Check that the optimized graph computes what the parsed one does, on the CPU runtime
    /// with synthesized inputs; an error when inputs cannot be synthesized. Without either
    /// flag, verification runs whenever the input shapes are static.
    #[arg(long, conflicts_with = "no_verify")]
    pub verify: bool,
    /// Skip the verification.
    #[arg(long)]
    pub no_verify: bool,
    /// Let multiclass NMS see only the K boxes with the best score in any class (exact when K
    /// is at least the number of boxes that can pass its score threshold).
    #[arg(long, value_name = "K")]
    pub nms_prefilter: Option<usize>,
    /// Stop a Mask R-CNN at each box's M x M masks instead of pasting them all at the photo's
    /// size; `run --image` pastes each in its box's region.
    #[arg(long)]
    pub raw_masks: bool,
    /// Skip timing the graphs on the CPU runtime (each pass's latency effect and the overall
    /// speedup in report.json).
    #[arg(long)]
    pub no_measure: bool,
    /// Precision: fp32; fp16 wherever a layer can and its values fit; bf16 wherever a layer can
    /// (computed with AVX-512 BF16 on CPUs that have it); int8 wherever a layer can (fp32
    /// elsewhere); auto, the plan with the most FLOPs lowered whose error stays within
    /// --budget. Writes the plan to precision.yml.
    #[arg(long, value_parser = parse_mode, default_value = "fp32", value_name = "MODE")]
    pub precision: PlanMode,
    /// Apply a precision plan (a precision.yml, possibly edited) instead of choosing one.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Calibration images (JPEG or PNG): activation statistics for int8 scales, fp16 ranges and
    /// measuring plans.
    #[arg(long, value_name = "DIR")]
    pub calib: Option<PathBuf>,
    /// The model's preprocessing (temblor YAML or PaddleDetection infer_cfg.yml; default: an
    /// infer_cfg.yml beside the model). The package records it as preprocess.yml.
    #[arg(long, value_name = "FILE")]
    pub preprocess: Option<PathBuf>,
    /// The model's class names, one a line by class id (default: the label_list of the
    /// preprocessing config). The package records them as labels.txt.
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// What the outputs mean, for `run --image` (default: told from the output shapes). The
    /// package records it, with its settings, as postprocess.yml.
    #[arg(long, value_enum, value_name = "KIND")]
    pub postprocess: Option<temblor_postprocess::Kind>,
    /// What auto must keep: rel_l2=X (worst checkpoint relative L2 against fp32) or ap=X
    /// (detection agreement with fp32). Default: ap=0.95 for detectors, rel_l2=0.01 otherwise.
    #[arg(long, value_parser = Budget::parse, value_name = "BUDGET")]
    pub budget: Option<Budget>,
    /// What auto lowers layers to int8 on top of: fp16 wherever values fit (what TensorRT runs
    /// fastest), fp32 (for the CPU runtime, which computes fp16 layers in f32 and only adds
    /// their conversions), or bf16 wherever a layer can (for CPUs with AVX-512 BF16).
    #[arg(long, value_parser = parse_auto_base, default_value = "fp16", value_name = "BASE")]
    pub auto_base: AutoBase,
    /// How activation ranges become int8 scales: entropy, mse, minmax, or percentile=P.
    #[arg(long, value_parser = parse_calibrator, default_value = "entropy", value_name = "METHOD")]
    pub calibrator: Calibrator,
    /// CPU threads for calibration and measuring (0 = one per core).
    #[arg(long, default_value_t = 0, value_parser = super::parse_threads)]
    pub threads: usize,
}

fn parse_mode(text: &str) -> std::result::Result<PlanMode, String> {
    match text {
        "fp32" => Ok(PlanMode::Fp32),
        "fp16" => Ok(PlanMode::Fp16),
        "bf16" => Ok(PlanMode::Bf16),
        "int8" => Ok(PlanMode::Int8),
        "auto" => Ok(PlanMode::Auto),
        _ => Err(format!("'{text}': expected fp32, fp16, bf16, int8 or auto")),
    }
}

fn parse_auto_base(text: &str) -> std::result::Result<AutoBase, String> {
    match text {
        "fp16" => Ok(AutoBase::Fp16),
        "fp32" => Ok(AutoBase::Fp32),
        "bf16" => Ok(AutoBase::Bf16),
        _ => Err(format!("'{text}': expected fp16, fp32 or bf16")),
    }
}

fn parse_calibrator(text: &str) -> std::result::Result<Calibrator, String> {
    match text.split_once('=') {
        None if text == "entropy" => Ok(Calibrator::Entropy),
        None if text == "mse" => Ok(Calibrator::Mse),
        None if text == "minmax" => Ok(Calibrator::MinMax),
        Some(("percentile", p)) => p
            .parse::<f64>()
            .ok()
            .filter(|p| *p > 0.0 && *p <= 100.0)
            .map(Calibrator::Percentile)
            .ok_or_else(|| format!("'{p}' is not a percentage in (0, 100]")),
        _ => Err(format!(
            "'{text}': expected entropy, mse, minmax or percentile=P"
        )),
    }
}

pub fn compile(args: &CompileArgs) -> Result<()> {
    let input_dims = args
        .inputs
        .iter()
        .map(|s| super::parse_input_dims(s))
        .collect::<Result<Vec<_>>>()?;
    let out = match &args.out {
        Some(o) => o.clone(),
        None => default_out(&args.model)?,
    };
    if out.exists() && !package::is_package(&out) {
        return Err(Error::usage(format!(
            "{} exists and is not a temblor package; refusing to replace it",
            out.display()
        )));
    }
    let recorded = Recorded::read(args)?;
    let options = Options {
        input_dims,
        pass_steps: args.pass_steps,
        verify: match (args.verify, args.no_verify) {
            (true, _) => VerifyMode::On,
            (_, true) => VerifyMode::Off,
            _ => VerifyMode::Auto,
        },
        nms_prefilter: args.nms_prefilter,
        raw_masks: args.raw_masks,
        default_batch: true,
        static_dims: if args.override_shapes {
            StaticDims::Override
        } else {
            StaticDims::Keep
        },
        measure: !args.no_measure,
        precision: Request {
            mode: if args.plan.is_some() {
                PlanMode::Manual
            } else {
                args.precision
            },
            plan: args.plan.clone(),
            calib: args.calib.clone(),
            preprocess: args.preprocess.clone(),
            budget: args.budget,
            calibrator: args.calibrator,
            auto_base: args.auto_base,
            cache_dir: calibration_cache_dir(),
            threads: args.threads,
        },
    };
    let compiled = temblor_pipeline::compile(&args.model, &options)?;

    // Everything is written into a sibling temporary directory that replaces `out` only once
    // complete, so a failure never leaves a half-written package.
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| io_error(&parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".temblor-staging-")
        .tempdir_in(&parent)
        .map_err(|e| io_error(&parent, e))?;
    let dir = staging.path();
    let views = [
        ("parse.prototxt", render(&compiled.parse, View::Parse)),
        (
            "optimize.prototxt",
            render(&compiled.optimize, View::Optimize),
        ),
        ("compile.prototxt", render(&compiled.compile, View::Compile)),
    ];
    for (file, text) in views {
        std::fs::write(dir.join(file), text).map_err(|e| io_error(&dir.join(file), e))?;
    }
    package::write(&compiled.compile, dir)?;
    recorded.write(dir, &compiled.compile, &args.model)?;
    std::fs::write(
        dir.join("precision.yml"),
        temblor_precision::plan_file::render(&compiled.plan)?,
    )
    .map_err(|e| io_error(&dir.join("precision.yml"), e))?;
    let graph_only = !compiled.compile.has_values();
    let tensorrt = if graph_only {
        eprintln!(
            "warning: compile.onnx and compile.ort.onnx not written: the model has no parameter \
             values"
        );
        None
    } else {
        Some(write_exports(&compiled.compile, dir)?)
    };
    let report = report::build(&args.model.display().to_string(), &compiled);
    let serialize_error = |e| Error::internal(format!("cannot serialize the report: {e}"));
    let mut report = serde_json::to_value(&report).map_err(serialize_error)?;
    if let Some(t) = tensorrt {
        report["tensorrt"] = serde_json::to_value(t).map_err(serialize_error)?;
    }
    // The compile-time estimate the peak limit checked (unknown dims as 1), for sizing a machine.
    let (peak, at) = temblor_infer::peak_bytes(&compiled.compile)?;
    // Beside the memory plan's fields, which stay as they were.
    report["memory"]["peak_bytes_estimate"] = u64::try_from(peak).unwrap_or(u64::MAX).into();
    report["memory"]["peak_at"] = at.map(|n| compiled.compile.node(n).name.clone()).into();
    let json = serde_json::to_string_pretty(&report).map_err(serialize_error)?;
    std::fs::write(dir.join("report.json"), json + "\n").map_err(|e| io_error(dir, e))?;
    let page = report_html(&report);
    std::fs::write(dir.join("report.html"), page).map_err(|e| io_error(dir, e))?;

    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| io_error(&out, e))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, &out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        io_error(&out, e)
    })?;
    let summary = &compiled.precision;
    let bf16 = if summary.bf16_flop_share > 0.0 {
        format!(", bf16 {:.0}%", summary.bf16_flop_share * 100.0)
    } else {
        String::new()
    };
    println!(
        "precision {}: fp16 {:.0}%{bf16} and int8 {:.0}% of FLOPs{}{}",
        summary.mode,
        summary.fp16_flop_share * 100.0,
        summary.int8_flop_share * 100.0,
        summary
            .output_rel_l2
            .map_or(String::new(), |e| format!("; relative L2 {e:.2e}")),
        summary.agreement_ap.map_or(String::new(), |ap| format!(
            "; detection agreement AP {ap:.3}"
        )),
    );
    if out.join(Target::TensorRt.file_name()).is_file() {
        println!("TensorRT: {}", temblor_export::trtexec_command(&out));
    }
    let verified = match &compiled.verification {
        Some(v) if v.status == VerifyStatus::Passed => "verified".to_string(),
        Some(v) => format!("not verified: {}", v.reason.as_deref().unwrap_or("")),
        None => "not verified (--no-verify)".to_string(),
    };
    println!(
        "{}: layers parse {} -> optimize {} -> compile {}; {verified}; wrote {}",
        args.model.display(),
        compiled.parse.layer_count(),
        compiled.optimize.layer_count(),
        compiled.compile.layer_count(),
        out.display()
    );
    Ok(())
}

/// report.json's `tensorrt`: the TensorRT build input, its check against the parser's rules,
/// and how the onnxruntime twin differs from it.
#[derive(serde::Serialize)]
struct TensorRtSection {
    file: &'static str,
    /// Plugin names of the plugin nodes left (ops without a standard ONNX form).
    plugins: Vec<String>,
    check: temblor_export::trt_check::Report,
    /// The onnxruntime file, when written.
    onnxruntime_file: Option<&'static str>,
    /// How the onnxruntime file differs from the TensorRT one, or why it was not written.
    onnxruntime_differs: Vec<String>,
}

/// Writes compile.onnx and compile.ort.onnx into `dir` and checks the first.
fn write_exports(g: &Graph, dir: &Path) -> Result<TensorRtSection> {
    let trt = temblor_export::write(g, dir, Target::TensorRt)?;
    let check = temblor_export::trt_check::check_file(&trt.path)?;
    for f in check
        .findings
        .iter()
        .filter(|f| f.severity == temblor_export::trt_check::Severity::Error)
    {
        eprintln!("warning: compile.onnx breaks a TensorRT parser rule: {f}");
    }
    let (onnxruntime_file, onnxruntime_differs) =
        match temblor_export::write(g, dir, Target::OnnxRuntime) {
            Ok(_) => (
                Some(Target::OnnxRuntime.file_name()),
                temblor_export::differences(g),
            ),
            Err(e) => {
                eprintln!("warning: compile.ort.onnx not written: {e}");
                (None, vec![format!("not written: {e}")])
            }
        };
    Ok(TensorRtSection {
        file: Target::TensorRt.file_name(),
        plugins: trt.plugins,
        check,
        onnxruntime_file,
        onnxruntime_differs,
    })
}

/// What the package records beside the graph so that commands given it need nothing restated.
struct Recorded {
    /// The preprocessing and the file it came from.
    preprocess: Option<(PreprocessConfig, PathBuf)>,
    labels: Vec<String>,
    postprocess: Option<temblor_postprocess::Kind>,
}

impl Recorded {
    /// Read before compiling, so that a bad file fails at once. An infer_cfg.yml found beside
    /// the model that temblor cannot read is only a warning: compiling never needed it, unless
    /// --calib does (which then fails naming it).
    fn read(args: &CompileArgs) -> Result<Recorded> {
        let preprocess = match (&args.preprocess, PreprocessConfig::beside(&args.model)) {
            (Some(file), _) => Some((PreprocessConfig::load(file)?, file.clone())),
            (None, Some(file)) => match PreprocessConfig::load(&file) {
                Ok(config) => Some((config, file)),
                Err(e) => {
                    eprintln!("warning: the package does not record the preprocessing: {e}");
                    None
                }
            },
            (None, None) => None,
        };
        let labels = match &args.labels {
            Some(file) => preprocess_config::read_labels(file)?,
            None => preprocess
                .as_ref()
                .map_or_else(Vec::new, |(config, _)| config.labels.clone()),
        };
        Ok(Recorded {
            preprocess,
            labels,
            postprocess: args.postprocess,
        })
    }

    /// Writes what was read, with what the compiled `graph` tells: the kind of its outputs
    /// (when not given) and the class names its source model's metadata holds (when none were
    /// given).
    fn write(&self, dir: &Path, graph: &Graph, model: &Path) -> Result<()> {
        if let Some((config, source)) = &self.preprocess {
            config.write_to_package(dir, source)?;
        }
        let labels = if self.labels.is_empty() {
            temblor_postprocess::metadata::labels(&graph.metadata).unwrap_or_default()
        } else {
            self.labels.clone()
        };
        if !labels.is_empty() {
            preprocess_config::write_labels(&labels, dir)?;
        }
        let kind = match self.postprocess {
            Some(kind) => Some(kind),
            None => super::answer::inferred_kind(graph, model).ok(),
        };
        if let Some(kind) = kind {
            kind.defaults().write_to_package(dir)?;
        }
        Ok(())
    }
}

/// Where calibration statistics are cached, by model, preprocessing and images.
fn calibration_cache_dir() -> PathBuf {
    std::env::var_os("TEMBLOR_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/temblor")))
        .unwrap_or_else(std::env::temp_dir)
        .join("calibration")
}

fn default_out(model: &Path) -> Result<PathBuf> {
    let stem = model.file_stem().ok_or_else(|| {
        Error::usage(format!(
            "{}: no file name to name the output after",
            model.display()
        ))
    })?;
    Ok(PathBuf::from(format!("{}.temblor", stem.to_string_lossy())))
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("{}: {e}", path.display()))
}
