//! Resize on the GPU (stub: issue 23, being written).
use super::params::Layout;
use super::{Cx, Lowering, Unsupported};
use temblor_ir::ResizeAttrs;

pub(super) const LAYOUTS: &[Layout] = &[];

pub(super) fn resize(_a: &ResizeAttrs, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
