//! The CLI's commands. Each returns [`crate::Error`]; `main` prints it and picks the exit code.

pub mod answer;
mod bench;
mod check_trt;
mod compare;
mod compile;
mod conformance;
pub mod device;
mod eval;
mod export;
mod inputs;
mod inspect;
mod ocr;
mod preprocess;
mod profile;
pub mod run;

pub use bench::{bench, BenchArgs};
pub use check_trt::{check_trt, CheckTrtArgs};
pub use compare::{compare, CompareArgs};
pub use compile::{compile, CompileArgs};
pub use conformance::{conformance, ConformanceArgs};
pub use device::DeviceArg;
pub use eval::{eval, EvalArgs};
pub use export::{export, ExportArgs};
pub use inspect::{inspect, InspectArgs};
pub use ocr::{ocr, OcrArgs};
pub use preprocess::{preprocess, PreprocessArgs};
pub use profile::{profile, ProfileArgs};
pub use run::{run, RunArgs};

use temblor_ir::{Error, Result};

/// Parses `NAME:DIMS` with DIMS like `1x3x640x640`.
pub fn parse_input_dims(spec: &str) -> Result<(String, Vec<usize>)> {
    let bad = || {
        Error::usage(format!(
            "--input '{spec}': expected NAME:DIMS, e.g. x:1x3x640x640"
        ))
    };
    let (name, dims) = spec.rsplit_once(':').ok_or_else(bad)?;
    let dims = parse_dims(dims).ok_or_else(bad)?;
    if name.is_empty() {
        return Err(bad());
    }
    Ok((name.to_string(), dims))
}

/// `1x3x640x640` -> `[1, 3, 640, 640]`; every extent positive.
pub fn parse_dims(text: &str) -> Option<Vec<usize>> {
    text.split('x')
        .map(|d| d.parse::<usize>().ok().filter(|&d| d > 0))
        .collect()
}

/// The most CPU threads a command accepts; beyond it the OS runs out of thread stacks long before
/// any model gets faster.
const MAX_THREADS: usize = 1024;

/// `--threads N` (clap value parser): 0 (one per core) up to [`MAX_THREADS`].
pub fn parse_threads(text: &str) -> std::result::Result<usize, String> {
    let n: usize = text
        .parse()
        .map_err(|_| format!("'{text}' is not a thread count"))?;
    if n > MAX_THREADS {
        return Err(format!("at most {MAX_THREADS} threads"));
    }
    Ok(n)
}
