//! Pooling on the GPU (stub: issue 23, being written).
use super::params::Layout;
use super::{Cx, Lowering, Unsupported};
use temblor_ir::PoolAttrs;

pub(super) const LAYOUTS: &[Layout] = &[];

pub(super) fn max_pool(_a: &PoolAttrs, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn average_pool(_a: &PoolAttrs, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn global_average_pool(_cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn global_max_pool(_cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
