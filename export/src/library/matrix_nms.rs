//! matrix_nms as dense ONNX (written by the matrix_nms helper).

use super::super::lower::Lower;
use super::Sub;
use temblor_ir::MatrixNmsAttrs;

pub(super) fn lower(_s: &mut Sub, _cx: &Lower, _a: &MatrixNmsAttrs) -> Result<(), String> {
    Err("no decomposition is written for it yet (issue 19)".into())
}
