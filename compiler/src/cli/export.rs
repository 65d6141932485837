use std::path::PathBuf;
use temblor_export::Target;
use temblor_ir::{package, Error, Result};

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// A package directory written by `temblor compile`.
    pub package: PathBuf,
    /// Directory for compile.onnx and compile.ort.onnx (default: the package directory).
    #[arg(short, long)]
    pub out: Option<PathBuf>,
}

/// Writes the package's graph as `compile.onnx` (TensorRT) and `compile.ort.onnx`
/// (onnxruntime). A graph that only TensorRT's plugins can hold gets the first and a warning.
pub fn export(args: &ExportArgs) -> Result<()> {
    if !package::is_package(&args.package) {
        return Err(Error::usage(format!(
            "{}: not a package directory (no {})",
            args.package.display(),
            package::MANIFEST
        )));
    }
    let g = package::load(&args.package)?;
    let dir = args.out.clone().unwrap_or_else(|| args.package.clone());
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::usage(format!("cannot create {}: {e}", dir.display())))?;
    let trt = temblor_export::write(&g, &dir, Target::TensorRt)?;
    println!(
        "{}: {} nodes, {} initializers, plugins [{}]",
        trt.path.display(),
        trt.nodes,
        trt.initializers,
        trt.plugins.join(", ")
    );
    println!(
        "build the engine with: {}",
        temblor_export::trtexec_command(&dir)
    );
    match temblor_export::write(&g, &dir, Target::OnnxRuntime) {
        Ok(ort) => println!(
            "{}: {} nodes, {} initializers",
            ort.path.display(),
            ort.nodes,
            ort.initializers
        ),
        Err(e) => eprintln!(
            "warning: {} not written: {e}",
            Target::OnnxRuntime.file_name()
        ),
    }
    Ok(())
}
