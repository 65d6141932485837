//! Reductions and normalizations on the GPU (stub: issue 23, being written).
use super::params::Layout;
use super::{Cx, Lowering, Unsupported};
use temblor_ir::ReduceOp;

pub(super) const LAYOUTS: &[Layout] = &[];

pub(super) fn reduce(_op: ReduceOp, _keepdims: bool, _noop: bool, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn softmax(_axis: i64, _log: bool, _flatten: bool, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn layer_norm(_axis: i64, _epsilon: f32, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn batch_norm(_epsilon: f32, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
