//! Convolutions on the GPU (stub: issue 23, being written).
use super::params::Layout;
use super::{Cx, Lowering, Unsupported};
use temblor_ir::{ConvAttrs, ConvTransposeAttrs};

pub(super) const LAYOUTS: &[Layout] = &[];

pub(super) fn conv(_a: &ConvAttrs, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn conv_transpose(_a: &ConvTransposeAttrs, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
