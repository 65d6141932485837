//! MatMul and Gemm on the GPU (stub: issue 23, being written).
use super::{Cx, Lowering, Unsupported};

pub(super) fn matmul(_cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn gemm(_alpha: f32, _beta: f32, _ta: bool, _tb: bool, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
