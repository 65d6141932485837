//! QuantizeLinear and DequantizeLinear on the GPU (stub: issue 23, being written).
use super::params::Layout;
use super::{Cx, Lowering, Unsupported};

pub(super) const LAYOUTS: &[Layout] = &[];

pub(super) fn quantize(_axis: i64, _saturate: bool, _cx: &mut Cx) -> Result<Lowering, Unsupported> {
    Err(Unsupported::new("todo"))
}

pub(super) fn dequantize(_axis: i64, _cx: &mut Cx) -> Result<Lowering, Unsupported> {
    Err(Unsupported::new("todo"))
}
