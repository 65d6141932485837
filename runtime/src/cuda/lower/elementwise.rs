//! Elementwise ops on the GPU (stub: issue 23, being written).
use super::params::Layout;
use super::{Cx, Lowering, Unsupported};
use temblor_ir::{BinaryOp, DType, UnaryOp};

pub(super) const LAYOUTS: &[Layout] = &[];

pub(super) fn unary(_u: UnaryOp, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn leaky_relu(_alpha: f32, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn hard_sigmoid(_alpha: f32, _beta: f32, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn clip(_min: f32, _max: f32, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn gelu(_tanh: bool, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn binary(_b: BinaryOp, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
pub(super) fn cast(_to: DType, _cx: &mut Cx) -> Result<Lowering, Unsupported> { Err(Unsupported::new("todo")) }
