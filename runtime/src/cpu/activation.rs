//! Pointwise activations: Identity (any dtype), Relu, Sigmoid, HardSigmoid, Clip (f32).

use super::f32s;
use crate::{RuntimeError, Tensor};
use temblor_ir::UnaryOp;

fn map(x: &Tensor, f: impl Fn(f32) -> f32) -> Result<Tensor, RuntimeError> {
    let v = f32s(x, "input")?;
    Ok(Tensor::f32(
        x.shape.clone(),
        v.iter().map(|&e| f(e)).collect(),
    ))
}

/// Split by sign so that `exp` never overflows to infinity for large |x|.
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

pub(crate) fn unary(op: UnaryOp, x: &Tensor) -> Result<Tensor, RuntimeError> {
    match op {
        UnaryOp::Identity => Ok(x.clone()),
        UnaryOp::Relu => map(x, |e| if e > 0.0 { e } else { 0.0 }),
        UnaryOp::Sigmoid => map(x, sigmoid),
    }
}

pub(crate) fn hard_sigmoid(x: &Tensor, alpha: f32, beta: f32) -> Result<Tensor, RuntimeError> {
    map(x, |e| (alpha * e + beta).clamp(0.0, 1.0))
}

/// `f32::clamp` panics when `min > max`; ONNX then gives `max` everywhere, as this does.
pub(crate) fn clip(x: &Tensor, min: f32, max: f32) -> Result<Tensor, RuntimeError> {
    map(x, |e| e.max(min).min(max))
}
