//! ops_lib and the detection ops on the GPU (stub: issue 23, being written).
use super::params::Layout;
use super::{Cx, Lowering, Unsupported};
use temblor_ir::Op;

pub(super) const LAYOUTS: &[Layout] = &[];

/// Whether an op's output shapes can change between runs with the same input shapes: such a
/// node runs on the host, and everything after it.
pub(crate) fn ragged(op: &Op) -> bool {
    matches!(
        op,
        Op::NonZero | Op::NonMaxSuppression { .. } | Op::Lib(_) | Op::Loop(_) | Op::If { .. }
    )
}

pub(super) fn lower(_op: &Op, _cx: &mut Cx) -> Result<Lowering, Unsupported> {
    Err(Unsupported::new("todo"))
}
