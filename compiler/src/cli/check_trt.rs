//! `temblor check-trt`: TensorRT's ONNX parser rules, checked on an ONNX file or a package's
//! `compile.onnx` without TensorRT. Exit 1 when a rule is broken, 2 when the file is unreadable.

use std::path::PathBuf;
use temblor_export::{trt_check, Target};
use temblor_ir::{package, Error, Result};

#[derive(clap::Args, Debug)]
pub struct CheckTrtArgs {
    /// An ONNX file, or a package directory (its compile.onnx is checked).
    pub file: PathBuf,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn check_trt(args: &CheckTrtArgs) -> Result<()> {
    let path = if package::is_package(&args.file) {
        args.file.join(Target::TensorRt.file_name())
    } else {
        args.file.clone()
    };
    let report = trt_check::check_file(&path)?;
    if args.json {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::internal(format!("cannot serialize the findings: {e}")))?;
        println!("{json}");
    } else {
        for f in &report.findings {
            println!("{f}");
        }
        println!(
            "{}: {} error(s), {} note(s)",
            path.display(),
            report.errors,
            report.notes
        );
    }
    match report.errors {
        0 => Ok(()),
        n => Err(Error::internal(format!(
            "{}: {n} TensorRT parser rule(s) broken",
            path.display()
        ))),
    }
}
