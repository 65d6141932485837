//! `temblor._temblor`, the native half of the `temblor` Python package: [`compile`] runs the
//! CLI's `compile` on arguments the Python wrapper spells as flags, and [`Session`] loads a
//! package (or compiles a model in memory) as `temblor run` does and runs it on numpy arrays,
//! or on photos as `run --image` does. The Python side (`python/temblor/__init__.py`) gives
//! them onnxruntime's idiom.

#![forbid(unsafe_code)]

mod arrays;
mod session;

use clap::{Args, FromArgMatches};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use temblor::cli::{self, CompileArgs};
use temblor_ir::Error;

pub use session::Session;

/// A temblor error as Python's: a usage mistake or a bad file is the caller's (`ValueError`),
/// anything else temblor's own (`RuntimeError`); the message is the CLI's `error:` line.
pub(crate) fn py_error(e: Error) -> PyErr {
    match e {
        Error::Usage(m) | Error::BadInput(m) => PyValueError::new_err(m),
        Error::Internal(m) => PyRuntimeError::new_err(m),
    }
}

/// `temblor compile ARGS...`, with ARGS as the CLI takes them (the Python wrapper turns keyword
/// arguments into them), so that a package made from Python is the one the CLI makes. The GIL
/// is released while it compiles.
#[pyfunction]
fn compile(py: Python<'_>, args: Vec<String>) -> PyResult<()> {
    let command = CompileArgs::augment_args(
        clap::Command::new("temblor.compile")
            .no_binary_name(true)
            .disable_help_flag(true),
    );
    let matches = command
        .try_get_matches_from(&args)
        .map_err(|e| PyValueError::new_err(e.to_string().trim_end().to_string()))?;
    let args = CompileArgs::from_arg_matches(&matches)
        .map_err(|e| PyValueError::new_err(e.to_string().trim_end().to_string()))?;
    py.detach(|| cli::compile(&args)).map_err(py_error)
}

#[pymodule]
fn _temblor(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(compile, m)?)?;
    m.add_class::<Session>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
