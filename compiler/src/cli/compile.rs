use crate::pipeline::{self, Options, VerifyMode};
use crate::{package, report, Error, Result};
use std::path::{Path, PathBuf};
use temblor_visualize::{render, View};

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
    /// Stop the optimizer after N applied passes (to bisect a rewrite).
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
    let options = Options {
        input_dims,
        pass_steps: args.pass_steps,
        verify: match (args.verify, args.no_verify) {
            (true, _) => VerifyMode::On,
            (_, true) => VerifyMode::Off,
            _ => VerifyMode::Auto,
        },
        nms_prefilter: args.nms_prefilter,
    };
    let compiled = pipeline::compile(&args.model, &options)?;

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
    let report = report::build(&args.model.display().to_string(), &compiled);
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| Error::internal(format!("cannot serialize the report: {e}")))?;
    std::fs::write(dir.join("report.json"), json + "\n").map_err(|e| io_error(dir, e))?;

    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| io_error(&out, e))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, &out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        io_error(&out, e)
    })?;
    let verified = match &compiled.verification {
        Some(v) if v.status == "passed" => "verified".to_string(),
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
