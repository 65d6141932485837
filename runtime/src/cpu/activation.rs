//! Functions of one tensor: the float activations and math functions (f32 and f64 natively, f16
//! through f32), the sign functions and Clip on every numeric dtype, Not on bool, Identity on
//! anything.

use super::cast::Scalar;
use super::dispatch;
use super::execute::{not_in_family, Args};
use crate::{f16, RuntimeError, Tensor, TensorData};
use std::ops::{Add, Div, Mul, Neg, Sub};
use temblor_ir::{DType, Op, UnaryOp};

pub(crate) fn execute(op: &Op, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
    let x = args.required(0)?;
    let data = match op {
        Op::Unary(UnaryOp::Identity) => return Ok(vec![x.clone()]),
        Op::Unary(UnaryOp::Not) => match &x.data {
            TensorData::Bool(v) => TensorData::Bool(v.iter().map(|b| !b).collect()),
            _ => return Err(unsupported(op, x)),
        },
        Op::Clip { min, max } => dispatch!(x.dtype(), T => clip::<T>(x, *min, *max)?),
        Op::Unary(u @ (UnaryOp::Relu | UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign))
            if !x.dtype().is_float() =>
        {
            integer(*u, x).ok_or_else(|| unsupported(op, x))?
        }
        Op::Unary(_) | Op::LeakyRelu { .. } | Op::HardSigmoid { .. } | Op::Gelu { .. } => {
            float(op, x)?
        }
        _ => return Err(not_in_family(op, "activation")),
    };
    Ok(vec![Tensor {
        shape: x.shape.clone(),
        data,
    }])
}

fn float(op: &Op, x: &Tensor) -> Result<TensorData, RuntimeError> {
    let out = match &x.data {
        TensorData::F32(v) => floats(op, v).map(TensorData::F32),
        TensorData::F64(v) => floats(op, v).map(TensorData::F64),
        TensorData::F16(v) => {
            let wide: Vec<f32> = v.iter().map(|e| e.to_f32()).collect();
            floats(op, &wide).map(|r| TensorData::F16(r.into_iter().map(f16::from_f32).collect()))
        }
        _ => None,
    };
    out.ok_or_else(|| unsupported(op, x))
}

fn unsupported(op: &Op, x: &Tensor) -> RuntimeError {
    RuntimeError::unsupported(format!("{} of {} tensors", op.name(), x.dtype()))
}

/// `min(max(x, min), max)` with the bounds converted to the element type; the IR's `f32::MIN`
/// and `f32::MAX` stand for absent bounds, so they clip nothing (infinities and f64 values past
/// the f32 range pass). With `min > max` every element becomes `max`, as ONNX specifies.
fn clip<T: Scalar>(x: &Tensor, min: f32, max: f32) -> Result<TensorData, RuntimeError> {
    let v = T::slice(&x.data).ok_or_else(|| unsupported(&Op::Clip { min, max }, x))?;
    if x.dtype() == DType::Bool {
        return Err(unsupported(&Op::Clip { min, max }, x));
    }
    let lo = (min != f32::MIN).then(|| T::from_f64(min as f64));
    let hi = (max != f32::MAX).then(|| T::from_f64(max as f64));
    Ok(T::wrap(
        v.iter()
            .map(|&e| {
                let e = match lo {
                    Some(l) if e < l => l,
                    _ => e,
                };
                match hi {
                    Some(h) if e > h => h,
                    _ => e,
                }
            })
            .collect(),
    ))
}

/// Relu, Neg, Abs and Sign on integers; Neg and Abs wrap at the type's minimum as numpy's do.
fn integer(op: UnaryOp, x: &Tensor) -> Option<TensorData> {
    macro_rules! signed {
        ($v:expr, $variant:ident) => {
            TensorData::$variant(match op {
                UnaryOp::Relu => $v.iter().map(|&e| e.max(0)).collect(),
                UnaryOp::Neg => $v.iter().map(|&e| e.wrapping_neg()).collect(),
                UnaryOp::Abs => $v.iter().map(|&e| e.wrapping_abs()).collect(),
                _ => $v.iter().map(|&e| e.signum()).collect(),
            })
        };
    }
    macro_rules! unsigned {
        ($v:expr, $variant:ident) => {
            TensorData::$variant(match op {
                UnaryOp::Relu | UnaryOp::Abs => $v.clone(),
                UnaryOp::Neg => $v.iter().map(|&e| e.wrapping_neg()).collect(),
                _ => $v.iter().map(|&e| e.min(1)).collect(),
            })
        };
    }
    Some(match &x.data {
        TensorData::I8(v) => signed!(v, I8),
        TensorData::I16(v) => signed!(v, I16),
        TensorData::I32(v) => signed!(v, I32),
        TensorData::I64(v) => signed!(v, I64),
        TensorData::U8(v) => unsigned!(v, U8),
        TensorData::U16(v) => unsigned!(v, U16),
        TensorData::U32(v) => unsigned!(v, U32),
        TensorData::U64(v) => unsigned!(v, U64),
        _ => return None,
    })
}

/// A float op over `v`, one monomorphic loop per op; `None` for an op that is not a float
/// function.
fn floats<F: Float>(op: &Op, v: &[F]) -> Option<Vec<F>> {
    fn map<F: Copy>(v: &[F], f: impl Fn(F) -> F) -> Vec<F> {
        v.iter().map(|&e| f(e)).collect()
    }
    let sign = |x: F| {
        if x > F::ZERO {
            F::ONE
        } else if x < F::ZERO {
            -F::ONE
        } else {
            x
        }
    };
    Some(match *op {
        Op::Unary(u) => match u {
            UnaryOp::Relu => map(v, |x| if x < F::ZERO { F::ZERO } else { x }),
            UnaryOp::Sigmoid => map(v, sigmoid),
            UnaryOp::Tanh => map(v, F::tanh),
            UnaryOp::Erf => map(v, F::erf),
            UnaryOp::Sqrt => map(v, F::sqrt),
            UnaryOp::Exp => map(v, F::exp),
            UnaryOp::Log => map(v, F::ln),
            UnaryOp::Neg => map(v, |x| -x),
            UnaryOp::Abs => map(v, F::abs),
            UnaryOp::Reciprocal => map(v, |x| F::ONE / x),
            UnaryOp::Floor => map(v, F::floor),
            UnaryOp::Ceil => map(v, F::ceil),
            UnaryOp::Round => map(v, F::round_ties_even),
            UnaryOp::Sign => map(v, sign),
            UnaryOp::Softplus => map(v, softplus),
            UnaryOp::Mish => map(v, |x| x * softplus(x).tanh()),
            UnaryOp::HardSwish => map(v, |x| x * clamp01(x / F::of(6.0) + F::of(0.5))),
            UnaryOp::Identity | UnaryOp::Not => return None,
        },
        Op::LeakyRelu { alpha } => {
            let alpha = F::of(alpha);
            map(v, |x| if x < F::ZERO { alpha * x } else { x })
        }
        Op::HardSigmoid { alpha, beta } => {
            let (alpha, beta) = (F::of(alpha), F::of(beta));
            map(v, |x| clamp01(alpha * x + beta))
        }
        Op::Gelu { tanh: false } => map(v, |x| {
            F::of(0.5) * x * (F::ONE + (x * F::FRAC_1_SQRT_2).erf())
        }),
        Op::Gelu { tanh: true } => map(v, |x| {
            let inner = F::SQRT_2_OVER_PI * (x + F::of(0.044715) * x * x * x);
            F::of(0.5) * x * (F::ONE + inner.tanh())
        }),
        _ => return None,
    })
}

/// Clamps to [0, 1], NaN passing through.
#[inline]
fn clamp01<F: Float>(x: F) -> F {
    if x < F::ZERO {
        F::ZERO
    } else if x > F::ONE {
        F::ONE
    } else {
        x
    }
}

/// Split by sign so that `exp` never overflows to infinity for large |x|.
#[inline]
fn sigmoid<F: Float>(x: F) -> F {
    if x >= F::ZERO {
        F::ONE / (F::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::ONE + e)
    }
}

/// `ln(1 + e^x)` as `max(x, 0) + ln(1 + e^-|x|)`, which neither overflows nor loses small
/// values.
#[inline]
fn softplus<F: Float>(x: F) -> F {
    let positive = if x > F::ZERO { x } else { F::ZERO };
    positive + (-x.abs()).exp().ln_1p()
}

/// The float element types the activations compute in.
trait Float:
    Scalar
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    const FRAC_1_SQRT_2: Self;
    const SQRT_2_OVER_PI: Self;
    /// An f32 attribute in this type.
    fn of(v: f32) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn ln_1p(self) -> Self;
    fn tanh(self) -> Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn floor(self) -> Self;
    fn ceil(self) -> Self;
    fn round_ties_even(self) -> Self;
    fn erf(self) -> Self;
}

macro_rules! float {
    ($t:ident) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const FRAC_1_SQRT_2: Self = std::$t::consts::FRAC_1_SQRT_2;
            // sqrt(2 / pi), the tanh approximation's scale.
            const SQRT_2_OVER_PI: Self =
                std::$t::consts::FRAC_2_SQRT_PI * std::$t::consts::FRAC_1_SQRT_2;
            fn of(v: f32) -> Self {
                v as $t
            }
            fn exp(self) -> Self {
                $t::exp(self)
            }
            fn ln(self) -> Self {
                $t::ln(self)
            }
            fn ln_1p(self) -> Self {
                $t::ln_1p(self)
            }
            fn tanh(self) -> Self {
                $t::tanh(self)
            }
            fn sqrt(self) -> Self {
                $t::sqrt(self)
            }
            fn abs(self) -> Self {
                $t::abs(self)
            }
            fn floor(self) -> Self {
                $t::floor(self)
            }
            fn ceil(self) -> Self {
                $t::ceil(self)
            }
            fn round_ties_even(self) -> Self {
                $t::round_ties_even(self)
            }
            fn erf(self) -> Self {
                erf(self as f64) as $t
            }
        }
    };
}
float!(f32);
float!(f64);

/// The error function to about 1e-15: its Maclaurin series below 2, where it converges in at
/// most ~32 terms, and the continued fraction of erfc above, which at 40 terms is exact to f64
/// precision from 2 on; past 6, erfc is below f64's resolution of 1.
fn erf(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 2.0 {
        let x2 = a * a;
        let (mut term, mut sum) = (a, a);
        for n in 1..60 {
            term *= -x2 / n as f64;
            let t = term / (2 * n + 1) as f64;
            sum += t;
            if t.abs() <= 1e-17 * sum {
                break;
            }
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else if a < 6.0 {
        let mut f = a;
        for k in (1..=40).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * f)
    } else if a.is_nan() {
        return x;
    } else {
        1.0
    };
    r.copysign(x)
}
