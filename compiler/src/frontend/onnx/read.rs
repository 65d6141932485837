//! Reading an ONNX file: map it, decode the ModelProto without copying its weights, and check
//! the opset of the default domain.

use super::proto::ModelProto;
use crate::{Error, Result};
use bytes::Bytes;
use prost::Message;
use std::path::Path;

const OPSETS: std::ops::RangeInclusive<i64> = 11..=17;

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
