//! Reading an ONNX file: map it, decode the ModelProto without copying its weights, and check
//! the opset of the default domain.

use super::proto::{ModelProto, TensorProto};
use bytes::Bytes;
use prost::Message;
use std::path::Path;
use temblor_ir::{Error, Result};

/// Every op mapping checks the forms its opsets define (attributes that became inputs, new
/// attributes it refuses), so a model is accepted from the oldest opset the suite still uses.
const OPSETS: std::ops::RangeInclusive<i64> = 7..=27;

/// Ops whose opset 1 to 6 definitions compute what their opset 7 ones do, so a model of an older
/// opset that uses only these imports as if it were opset 7. Opset 7 changed broadcasting
/// (the `broadcast` and `axis` attributes of the arithmetic and logic ops) and BatchNorm's and
/// Dropout's training attributes; the unary ops here dropped only `consumed_inputs`, a hint
/// for in-place buffers.
const SAME_SINCE_OPSET_1: [&str; 19] = [
    "Not",
    "Identity",
    "Transpose",
    "Shape",
    "Size",
    "Flatten",
    "Softmax",
    "LogSoftmax",
    "Sigmoid",
    "Relu",
    "Tanh",
    "Exp",
    "Log",
    "Sqrt",
    "Neg",
    "Abs",
    "Floor",
    "Ceil",
    "Reciprocal",
];

pub(super) fn model(path: &Path, file: &str) -> Result<ModelProto> {
    let f = std::fs::File::open(path)
        .map_err(|e| Error::bad_input(format!("{file}: cannot open the model: {e}")))?;
    let size = f
        .metadata()
        .map_err(|e| Error::bad_input(format!("{file}: cannot read the model: {e}")))?
        .len();
    if size == 0 {
        return Err(Error::bad_input(format!("{file}: the model file is empty")));
    }
    // SAFETY: read-only map; weights keep slices of it, so the file must not be truncated by
    // another process while the compiler runs, which holds for any mmap-based loader.
    let map = unsafe { memmap2::Mmap::map(&f) }
        .map_err(|e| Error::bad_input(format!("{file}: cannot map the model: {e}")))?;
    ModelProto::decode(Bytes::from_owner(map)).map_err(|e| {
        Error::bad_input(format!(
            "{file}: not an ONNX model (corrupt or truncated protobuf: {e})"
        ))
    })
}

pub(super) fn default_opset(model: &ModelProto, file: &str) -> Result<i64> {
    let versions: Vec<i64> = model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .collect();
    match versions[..] {
        [v] if OPSETS.contains(&v) => Ok(v),
        [v @ 1..7] => {
            let graph = model.graph.as_ref().map_or(&[][..], |g| &g.node[..]);
            let mut newer: Vec<&str> = graph
                .iter()
                .map(|n| n.op_type.as_str())
                .filter(|op| !SAME_SINCE_OPSET_1.contains(op))
                .collect();
            newer.sort_unstable();
            newer.dedup();
            if newer.is_empty() {
                return Ok(*OPSETS.start());
            }
            Err(Error::bad_input(format!(
                "{file}: ONNX opset {v} is not supported (supported: {} to {}, or older when \
                 every op means what it does in opset 7; these do not: {})",
                OPSETS.start(),
                OPSETS.end(),
                newer.join(", ")
            )))
        }
        [v] => Err(Error::bad_input(format!(
            "{file}: ONNX opset {v} is not supported (supported: {} to {})",
            OPSETS.start(),
            OPSETS.end()
        ))),
        [] => Err(Error::bad_input(format!(
            "{file}: the model declares no opset for the default ONNX domain"
        ))),
        _ => Err(Error::bad_input(format!(
            "{file}: the model declares the default ONNX opset twice"
        ))),
    }
}

/// A serialized TensorProto file (the backend test suite's `input_N.pb`); `None` when absent.
pub(super) fn tensor_file(path: &Path) -> Result<Option<TensorProto>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::bad_input(format!(
                "{}: cannot read: {e}",
                path.display()
            )))
        }
    };
    TensorProto::decode(Bytes::from(bytes))
        .map(Some)
        .map_err(|e| Error::bad_input(format!("{}: not a TensorProto: {e}", path.display())))
}
