//! QuantizeLinear and DequantizeLinear.

use super::execute::Args;
use crate::{RuntimeError, Tensor};
use temblor_ir::Op;

pub(crate) fn execute(op: &Op, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
    let _ = args;
    Err(RuntimeError::unsupported(format!(
        "no CPU kernel for {} yet",
        op.name()
    )))
}
