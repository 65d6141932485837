//! Rules of the detection and quantization ops.

use super::{Inferred, Ins};
use temblor_ir::Op;

pub(super) fn infer(op: &Op, ins: &Ins) -> Result<Inferred, String> {
    let _ = ins;
    Err(format!("no shape rule for {} yet", op.name()))
}
