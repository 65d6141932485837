//! Pointwise activations: Identity (any dtype), Relu, Sigmoid, HardSigmoid, Clip (f32).

use super::execute::{not_in_family, Args};
use super::f32s;
use crate::{RuntimeError, Tensor};
use temblor_ir::{Op, UnaryOp};

pub(crate) fn execute(op: &Op, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
    let x = args.required(0)?;
    Ok(vec![match op {
        Op::Unary(u) => unary(*u, x)?,
        Op::HardSigmoid { alpha, beta } => hard_sigmoid(x, *alpha, *beta)?,
        Op::Clip { min, max } => clip(x, *min, *max)?,
        Op::LeakyRelu { .. } | Op::Gelu { .. } => {
            return Err(RuntimeError::unsupported(format!(
                "no CPU kernel for {} yet",
                op.name()
            )))
        }
        _ => return Err(not_in_family(op, "activation")),
    }])
}

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
        other => Err(RuntimeError::unsupported(format!(
            "no CPU kernel for {} yet",
            other.name()
        ))),
    }
}

pub(crate) fn hard_sigmoid(x: &Tensor, alpha: f32, beta: f32) -> Result<Tensor, RuntimeError> {
    map(x, |e| (alpha * e + beta).clamp(0.0, 1.0))
}

/// `f32::clamp` panics when `min > max`; ONNX then gives `max` everywhere, as this does.
pub(crate) fn clip(x: &Tensor, min: f32, max: f32) -> Result<Tensor, RuntimeError> {
    map(x, |e| e.max(min).min(max))
}
