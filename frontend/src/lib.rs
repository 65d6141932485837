//! Frontends: read a model file into the IR. Each frontend lives in its own folder and shares
//! nothing with the others but the IR; [`load`] picks one by the file's format.

mod names;
mod onnx;
mod paddle;

/// The ONNX protobuf messages, which the ONNX export writes.
pub use onnx::proto as onnx_proto;
pub use onnx::{Binding, Case};

use std::path::Path;
use temblor_ir::{Error, Graph, Result};

/// Reads the model at `path` into a graph. Node outputs carry placeholder types until
/// [`temblor_infer::infer`] runs; graph inputs carry the types the model declares, with
/// `input_dims` applied (both frontends need them to unroll loops whose trip count is an input
/// extent).
pub fn load(path: &Path, input_dims: &[(String, Vec<usize>)]) -> Result<Graph> {
    if !path.exists() {
        return Err(Error::bad_input(format!(
            "{}: cannot open the model: no such file or directory",
            path.display()
        )));
    }
    if is_paddle(path) {
        return paddle::load(path, input_dims);
    }
    onnx::load(path, input_dims)
}

/// A Paddle inference model is a directory, a `.pdmodel` / `__model__` program file, or a PIR
/// program (`inference.json`).
fn is_paddle(path: &Path) -> bool {
    path.is_dir()
        || path
            .extension()
            .is_some_and(|e| e == "pdmodel" || e == "json")
        || path.file_name().is_some_and(|n| n == "__model__")
}

/// Reads one case of the ONNX backend test suite (a directory holding `model.onnx` and
/// `data_set`), its inputs bound as `binding` says.
pub fn load_onnx_case(dir: &Path, data_set: &str, binding: Binding) -> Result<Case> {
    onnx::load_case(dir, data_set, binding)
}

/// Whether every graph input and output of an ONNX model is a tensor a `.npy` file can hold.
pub fn onnx_npy_io(path: &Path) -> Result<bool> {
    onnx::npy_io(path)
}

/// The distinct op types of an ONNX model, in node order.
pub fn onnx_op_types(path: &Path) -> Result<Vec<String>> {
    onnx::op_types(path)
}
