//! Data movement on the GPU (stub: issue 23, being written).
use super::params::Layout;
use super::{Cx, Lowering, Unsupported};
use temblor_ir::PadMode;

pub(super) const LAYOUTS: &[Layout] = &[];

pub(super) fn concat(_axis: i64, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn split(_axis: i64, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn transpose(_perm: &[usize], _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn slice(_cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn expand(_cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn gather(_axis: i64, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn pad(_mode: PadMode, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
