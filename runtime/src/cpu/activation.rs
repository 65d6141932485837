//! Functions of one tensor: the float activations and math functions (f32 and f64 natively, f16
//! through f32), the sign functions and Clip on every numeric dtype, Not on bool, Identity on
//! anything.

use super::cast::Scalar;
use super::elementwise::{build, Sink};
use super::isa::Isa;
#[cfg(target_arch = "x86_64")]
use super::isa::Level;
use super::{dispatch, math};
use crate::RuntimeError;
use crate::Tensor;
use crate::TensorData;
use crate::{bf16, f16};
use std::ops::{Add, Div, Mul, Neg, Sub};
use temblor_ir::{DType, Op, UnaryOp};

/// A float function of one tensor, with its attributes: one loop each in [`floats`].
#[derive(Clone, Copy, Debug)]
enum Function {
    Unary(UnaryOp),
    LeakyRelu { alpha: f32 },
    HardSigmoid { alpha: f32, beta: f32 },
    Gelu { tanh: bool },
}

impl Function {
    fn op(self) -> Op {
        match self {
            Function::Unary(u) => Op::Unary(u),
            Function::LeakyRelu { alpha } => Op::LeakyRelu { alpha },
            Function::HardSigmoid { alpha, beta } => Op::HardSigmoid { alpha, beta },
            Function::Gelu { tanh } => Op::Gelu { tanh },
        }
    }
}

pub(crate) fn unary(u: UnaryOp, x: &Tensor, isa: Isa) -> Result<Tensor, RuntimeError> {
    let data = match u {
        UnaryOp::Identity => return Ok(x.clone()),
        UnaryOp::Not => match &x.data {
            TensorData::Bool(v) => TensorData::Bool(v.iter().map(|b| !b).collect()),
            _ => return Err(unsupported(&Op::Unary(u), x)),
        },
        UnaryOp::Relu | UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign if !x.dtype().is_float() => {
            integer(u, x).ok_or_else(|| unsupported(&Op::Unary(u), x))?
        }
        _ => return float(Function::Unary(u), x, isa),
    };
    Ok(like(x, data))
}

pub(crate) fn leaky_relu(x: &Tensor, alpha: f32, isa: Isa) -> Result<Tensor, RuntimeError> {
    float(Function::LeakyRelu { alpha }, x, isa)
}

pub(crate) fn hard_sigmoid(
    x: &Tensor,
    alpha: f32,
    beta: f32,
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    float(Function::HardSigmoid { alpha, beta }, x, isa)
}

pub(crate) fn gelu(x: &Tensor, tanh: bool, isa: Isa) -> Result<Tensor, RuntimeError> {
    float(Function::Gelu { tanh }, x, isa)
}

pub(crate) fn clip(x: &Tensor, min: f32, max: f32, isa: Isa) -> Result<Tensor, RuntimeError> {
    let data = dispatch!(x.dtype(), T => clip_t::<T>(x, min, max, isa)?);
    Ok(like(x, data))
}

/// `data` in the shape of `x`.
fn like(x: &Tensor, data: TensorData) -> Tensor {
    Tensor {
        shape: x.shape.clone(),
        data,
    }
}

fn float(f: Function, x: &Tensor, isa: Isa) -> Result<Tensor, RuntimeError> {
    let out = match &x.data {
        TensorData::F32(v) => floats(f, v, isa).map(TensorData::F32),
        TensorData::F64(v) => floats(f, v, isa).map(TensorData::F64),
        TensorData::F16(v) => {
            let wide: Vec<f32> = v.iter().map(|e| e.to_f32()).collect();
            floats(f, &wide, isa)
                .map(|r| TensorData::F16(r.into_iter().map(f16::from_f32).collect()))
        }
        TensorData::BF16(v) => {
            let wide: Vec<f32> = v.iter().map(|e| e.to_f32()).collect();
            floats(f, &wide, isa)
                .map(|r| TensorData::BF16(r.into_iter().map(bf16::from_f32).collect()))
        }
        _ => None,
    };
    Ok(like(x, out.ok_or_else(|| unsupported(&f.op(), x))?))
}

fn unsupported(op: &Op, x: &Tensor) -> RuntimeError {
    RuntimeError::unsupported(format!("{} of {} tensors", op.name(), x.dtype()))
}

/// `min(max(x, min), max)` with the bounds converted to the element type; the IR's `f32::MIN`
/// and `f32::MAX` stand for absent bounds, so they clip nothing (infinities and f64 values past
/// the f32 range pass). With `min > max` every element becomes `max`, as ONNX specifies.
fn clip_t<T: Scalar + Send + Sync>(
    x: &Tensor,
    min: f32,
    max: f32,
    isa: Isa,
) -> Result<TensorData, RuntimeError> {
    let v = T::slice(&x.data).ok_or_else(|| unsupported(&Op::Clip { min, max }, x))?;
    if x.dtype() == DType::Bool {
        return Err(unsupported(&Op::Clip { min, max }, x));
    }
    // An absent bound becomes the type's -inf / +inf (an integer's MIN / MAX, converting
    // saturates), which no element passes, so the loop below needs no per-element test of it.
    let bound =
        |b: f32, absent: f32, none: f64| T::from_f64(if b == absent { none } else { b as f64 });
    let lo = bound(min, f32::MIN, f64::NEG_INFINITY);
    let hi = bound(max, f32::MAX, f64::INFINITY);
    Ok(T::wrap(map(v, isa, |e| {
        let e = if e < lo { lo } else { e };
        if e > hi {
            hi
        } else {
            e
        }
    })))
}

/// `f` of each element of `v`, large inputs in parallel chunks.
fn map<F: Copy + Send + Sync + 'static>(
    v: &[F],
    isa: Isa,
    f: impl Fn(F) -> F + Sync + Copy,
) -> Vec<F> {
    build(v.len(), |range, sink| {
        #[cfg(target_arch = "x86_64")]
        match isa.level() {
            // SAFETY: an `Isa` of a level is only made on a machine that has its instructions.
            Level::Avx512 => return unsafe { map_avx512(&v[range], sink, f) },
            // SAFETY: as above.
            Level::Avx2Fma => return unsafe { map_avx2(&v[range], sink, f) },
            Level::Scalar => {}
        }
        let _ = isa;
        map_any(&v[range], sink, f)
    })
}

/// [`map_any`] compiled for AVX2: the build targets baseline x86-64, whose 4-lane vectors left
/// GELU's erf at 27% of a ViT's time. Rust never contracts a multiply and an add into an FMA,
/// so the wider loop computes the very same bits; the explicit `mul_add`s of [`super::math`]
/// become FMA instructions here (a software fma, correctly rounded alike, on the scalar level).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn map_avx2<F: Copy>(v: &[F], sink: &mut Sink<F>, f: impl Fn(F) -> F) {
    map_any(v, sink, f)
}

/// [`map_any`] 16 lanes wide, the same bits for the same reason.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn map_avx512<F: Copy>(v: &[F], sink: &mut Sink<F>, f: impl Fn(F) -> F) {
    map_any(v, sink, f)
}

/// `f` is taken by value and is an always-inlined closure: a function item, or a reference,
/// is called through a shim that was left outlined, and scalar, around GELU's erf.
#[inline(always)]
fn map_any<F: Copy>(v: &[F], sink: &mut Sink<F>, f: impl Fn(F) -> F) {
    sink.map_from(v, f)
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

/// `f` over `v`, one monomorphic loop per function; `None` for a unary op that is not a float
/// function.
fn floats<F: Float>(f: Function, v: &[F], isa: Isa) -> Option<Vec<F>> {
    let sign = |x: F| {
        if x > F::ZERO {
            F::ONE
        } else if x < F::ZERO {
            -F::ONE
        } else {
            x
        }
    };
    // Each closure always inlined, so that it is compiled into `map`'s loop (see `map_any`).
    macro_rules! each {
        (|$x:ident| $body:expr) => {
            map(
                v,
                isa,
                #[inline(always)]
                |$x: F| $body,
            )
        };
    }
    Some(match f {
        Function::Unary(u) => match u {
            UnaryOp::Relu => each!(|x| if x < F::ZERO { F::ZERO } else { x }),
            UnaryOp::Sigmoid => each!(|x| sigmoid(x)),
            UnaryOp::Tanh => each!(|x| F::tanh(x)),
            UnaryOp::Erf => each!(|x| F::erf(x)),
            UnaryOp::Sqrt => each!(|x| F::sqrt(x)),
            UnaryOp::Exp => each!(|x| F::exp(x)),
            UnaryOp::Log => each!(|x| F::ln(x)),
            UnaryOp::Neg => each!(|x| -x),
            UnaryOp::Abs => each!(|x| F::abs(x)),
            UnaryOp::Reciprocal => each!(|x| F::ONE / x),
            UnaryOp::Floor => each!(|x| F::floor(x)),
            UnaryOp::Ceil => each!(|x| F::ceil(x)),
            UnaryOp::Round => each!(|x| F::round_ties_even(x)),
            UnaryOp::Sign => each!(|x| sign(x)),
            UnaryOp::Softplus => each!(|x| softplus(x)),
            UnaryOp::Mish => each!(|x| mish(x)),
            UnaryOp::Cos => each!(|x| F::cos(x)),
            UnaryOp::Sin => each!(|x| F::sin(x)),
            UnaryOp::HardSwish => {
                // `alpha * x` with alpha = 1/6, as the spec writes it and the fused epilogue
                // computes it.
                let sixth = F::ONE / F::of(6.0);
                each!(|x| x * clamp01(x * sixth + F::of(0.5)))
            }
            UnaryOp::Identity | UnaryOp::Not => return None,
        },
        Function::LeakyRelu { alpha } => {
            let alpha = F::of(alpha);
            each!(|x| if x < F::ZERO { alpha * x } else { x })
        }
        Function::HardSigmoid { alpha, beta } => {
            let (alpha, beta) = (F::of(alpha), F::of(beta));
            each!(|x| clamp01(alpha * x + beta))
        }
        Function::Gelu { tanh: false } => each!(|x| gelu_erf(x)),
        Function::Gelu { tanh: true } => each!(|x| gelu_tanh(x)),
    })
}

// The functions below are always inlined, like the closures `floats` passes to `map`, so
// that they are compiled into its loops for their instruction set.

#[inline(always)]
pub(crate) fn gelu_erf<F: Float>(x: F) -> F {
    F::of(0.5) * x * (F::ONE + (x * F::FRAC_1_SQRT_2).erf())
}

#[inline(always)]
pub(crate) fn gelu_tanh<F: Float>(x: F) -> F {
    let inner = F::SQRT_2_OVER_PI * (x + F::of(0.044715) * x * x * x);
    F::of(0.5) * x * (F::ONE + inner.tanh())
}

#[inline(always)]
fn mish<F: Float>(x: F) -> F {
    x * softplus(x).tanh()
}

/// Clamps to [0, 1], NaN passing through.
#[inline(always)]
fn clamp01<F: Float>(x: F) -> F {
    if x < F::ZERO {
        F::ZERO
    } else if x > F::ONE {
        F::ONE
    } else {
        x
    }
}

/// Branch-free so that the loop vectorizes: `exp(-x)` may saturate for large |x|, where the
/// result is 0 or 1 to the type's precision anyway.
#[inline(always)]
fn sigmoid<F: Float>(x: F) -> F {
    F::ONE / (F::ONE + (-x).exp_saturating())
}

/// `ln(1 + e^x)` as `max(x, 0) + ln(1 + e^-|x|)`, which neither overflows nor loses small
/// values.
#[inline(always)]
fn softplus<F: Float>(x: F) -> F {
    let positive = if x > F::ZERO { x } else { F::ZERO };
    positive + (-x.abs()).exp().ln_1p()
}

/// The float element types the activations compute in.
pub(crate) trait Float:
    Scalar
    + Send
    + Sync
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
    /// e^x, allowed to saturate short of 0 and infinity where that is faster.
    fn exp_saturating(self) -> Self;
    fn ln(self) -> Self;
    fn ln_1p(self) -> Self;
    fn tanh(self) -> Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn floor(self) -> Self;
    fn ceil(self) -> Self;
    fn round_ties_even(self) -> Self;
    fn erf(self) -> Self;
    fn cos(self) -> Self;
    fn sin(self) -> Self;
}

macro_rules! float {
    ($t:ident, $exp_saturating:path, $tanh:path, $erf:path) => {
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
            // Always inlined, so that the map's loop vectorizes around them.
            #[inline(always)]
            fn exp_saturating(self) -> Self {
                $exp_saturating(self)
            }
            fn ln(self) -> Self {
                $t::ln(self)
            }
            fn ln_1p(self) -> Self {
                $t::ln_1p(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                $tanh(self)
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
            #[inline(always)]
            fn erf(self) -> Self {
                $erf(self)
            }
            fn cos(self) -> Self {
                $t::cos(self)
            }
            fn sin(self) -> Self {
                $t::sin(self)
            }
        }
    };
}
// f32 takes the vectorizing forms of `math` (a few ulp), where std's are libm calls per element
// (and erf went through f64): GELU's erf took a third of a recognizer's time.
float!(f32, math::exp_f32, math::tanh_f32, math::erf_f32);
float!(f64, f64::exp, f64::tanh, erf);

/// erf(x)/x as a polynomial in `2x² - 1`, for |x| < 1 (a Chebyshev fit, relative error below
/// 1e-15).
const ERF_SMALL: [f64; 11] = [
    0.9654687386698673,
    -0.1405360890227216,
    0.019852496688987295,
    -0.0022854855610593026,
    0.0002175171560132474,
    -1.753716990970458e-05,
    1.2233828233703148e-06,
    -7.511463012757039e-08,
    4.115685761934948e-09,
    -2.0457786230596255e-10,
    9.236891272355355e-12,
];

/// erfc(x)·exp(x²) as a polynomial in `(12/x - 7) / 5`, for 1 <= x < 6 (a Chebyshev fit in
/// 1/x; erf's relative error stays below 2e-14).
const ERFC_SCALED: [f64; 17] = [
    0.2897221163233881,
    0.16536269001245604,
    -0.030831050496389772,
    0.0028211318989924987,
    0.0010344319150854468,
    -0.0007383866445517098,
    0.0002656085340058063,
    -5.5288037405065566e-05,
    -4.061510429594537e-06,
    1.0891899842712275e-05,
    -6.458556999806921e-06,
    2.554686633639401e-06,
    -7.218716790839243e-07,
    4.9705170067647785e-08,
    1.7070462765044233e-07,
    -1.3934358023074738e-07,
    3.693665611174491e-08,
];

/// The error function; past 6, erfc is below f64's resolution of 1.
fn erf(x: f64) -> f64 {
    let horner = |c: &[f64], s: f64| c.iter().rev().fold(0.0, |acc, &k| acc * s + k);
    let a = x.abs();
    if a < 1.0 {
        x * horner(&ERF_SMALL, 2.0 * a * a - 1.0)
    } else if a < 6.0 {
        let erfc = horner(&ERFC_SCALED, (12.0 / a - 7.0) / 5.0) * (-a * a).exp();
        (1.0 - erfc).copysign(x)
    } else if a.is_nan() {
        x
    } else {
        1.0f64.copysign(x)
    }
}

#[cfg(test)]
mod tests {
    use super::{erf, floats, Function};
    use crate::cpu::isa::Isa;
    use temblor_ir::UnaryOp;

    /// Each instruction set's loop computes the scalar loop's bits: the fused epilogues and the
    /// standalone ops rest on that, whichever of them a plan runs. Over [-100, 100] in steps that
    /// are not round numbers, and the edge cases (±0, ±inf, NaN, denormals, saturation ends).
    #[test]
    fn every_isa_computes_the_scalar_bits() {
        let mut v: Vec<f32> = (-200_000..200_000).map(|i| i as f32 * 5.000_3e-4).collect();
        let tiny = f32::from_bits(1);
        v.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            tiny,
            -tiny,
        ]);
        v.extend([
            1e-30,
            -1e-30,
            87.3,
            -87.3,
            88.7,
            -88.7,
            1e30,
            -1e30,
            f32::MAX,
            f32::MIN,
        ]);
        let functions = [
            Function::Unary(UnaryOp::Sigmoid),
            Function::Unary(UnaryOp::Tanh),
            Function::Unary(UnaryOp::Erf),
            Function::Unary(UnaryOp::Mish),
            Function::Unary(UnaryOp::HardSwish),
            Function::Gelu { tanh: false },
            Function::Gelu { tanh: true },
        ];
        let isas = Isa::available();
        for f in functions {
            let want = floats(f, &v, isas[0]).expect("a float function");
            for &isa in &isas[1..] {
                let got = floats(f, &v, isa).expect("a float function");
                for ((x, w), g) in v.iter().zip(&want).zip(&got) {
                    assert!(
                        w.to_bits() == g.to_bits() || (w.is_nan() && g.is_nan()),
                        "{f:?} on {isa}: {x} gives {g}, the scalar loop {w}"
                    );
                }
            }
        }
    }

    /// A fused epilogue's activation gives the standalone op's bits, NaN for NaN, on every
    /// instruction set: `optimize` fuses the ops and `compile` verifies the fusion against them.
    #[test]
    fn fused_activations_compute_the_ops_bits() {
        use crate::cpu::epilogue::finish;
        use temblor_ir::Activation;
        let mut v: Vec<f32> = (-40_000..40_000).map(|i| i as f32 * 2.000_3e-4).collect();
        v.extend([
            0.0,
            -0.0,
            -3.0,
            3.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ]);
        v.extend([f32::from_bits(1), f32::MAX, f32::MIN, -f32::NAN]);
        for (op, act) in [
            (UnaryOp::HardSwish, Activation::HardSwish),
            (UnaryOp::Sigmoid, Activation::Sigmoid),
        ] {
            for isa in Isa::available() {
                let want = floats(Function::Unary(op), &v, isa).expect("a float function");
                let mut got = v.clone();
                isa.widest(|| finish(&mut got, None, None, Some(act), None));
                for ((x, w), g) in v.iter().zip(&want).zip(&got) {
                    assert!(
                        w.to_bits() == g.to_bits() || (w.is_nan() && g.is_nan()),
                        "{op:?} on {isa}: {x} gives {g} fused, {w} as the op"
                    );
                }
            }
        }
    }

    #[test]
    fn erf_matches_reference_values() {
        // Python's math.erf.
        let reference = [
            (0.0, 0.0),
            (1e-8, 1.1283791670955126e-08),
            (0.3, 0.3286267594591274),
            (-0.5, -0.5204998778130465),
            (0.999, 0.8422852702064969),
            (1.0, 0.8427007929497149),
            (-1.7, -0.9837904585907745),
            (2.5, 0.999593047982555),
            (3.9, 0.9999999652077514),
            (5.5, 0.9999999999999927),
            (7.0, 1.0),
        ];
        for (x, want) in reference {
            let got = erf(x);
            assert!(
                (got - want).abs() <= 1e-14 * want.abs().max(1e-300),
                "erf({x}) = {got}, expected {want}"
            );
        }
        assert!(erf(f64::NAN).is_nan());
    }
}
