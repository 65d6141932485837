//! The binary ops per dtype. Integer arithmetic wraps like numpy's; division truncates toward
//! zero as ONNX does, and a zero divisor is an error rather than a crash. Min and Max propagate
//! NaN as numpy's `minimum`/`maximum` do; Pow keeps the base's dtype whatever the exponent's.

use super::cast::{Kind, Scalar};
use super::elementwise::{apply, broadcast_shape, operand};
use crate::RuntimeError;
use crate::Tensor;
use crate::TensorData;
use crate::{bf16, f16};
use temblor_ir::{BinaryOp, DType, Op};

/// Runs `$body` with `$t` bound to the element type of a numeric `$dtype`; bool is unsupported.
macro_rules! numeric {
    ($dtype:expr, $t:ident => $body:expr, $op:expr, $x:expr) => {
        match $dtype {
            DType::F32 => numeric!(@ $t = f32, $body),
            DType::F16 => numeric!(@ $t = f16, $body),
            DType::BF16 => numeric!(@ $t = bf16, $body),
            DType::F64 => numeric!(@ $t = f64, $body),
            DType::I8 => numeric!(@ $t = i8, $body),
            DType::U8 => numeric!(@ $t = u8, $body),
            DType::I16 => numeric!(@ $t = i16, $body),
            DType::U16 => numeric!(@ $t = u16, $body),
            DType::I32 => numeric!(@ $t = i32, $body),
            DType::U32 => numeric!(@ $t = u32, $body),
            DType::I64 => numeric!(@ $t = i64, $body),
            DType::U64 => numeric!(@ $t = u64, $body),
            DType::Bool => {
                return Err(RuntimeError::unsupported(format!(
                    "{} of {} tensors",
                    $op.name(),
                    $x.dtype()
                )))
            }
        }
    };
    (@ $t:ident = $ty:ty, $body:expr) => {{
        type $t = $ty;
        $body
    }};
}

pub(crate) fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, RuntimeError> {
    if a.dtype() != b.dtype() && op != BinaryOp::Pow {
        return Err(RuntimeError::bad_input(format!(
            "operand dtypes differ: {} and {}",
            a.dtype(),
            b.dtype()
        )));
    }
    let shape = broadcast_shape(&a.shape, &b.shape)?;
    let data = match op {
        BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => logic(op, a, b, &shape)?,
        _ if op.is_comparison() => {
            super::dispatch!(a.dtype(), T => compare::<T>(op, a, b, &shape)?)
        }
        BinaryOp::Pow => numeric!(a.dtype(), T => pow::<T>(a, b, &shape)?, op, a),
        _ => numeric!(a.dtype(), T => arithmetic::<T>(op, a, b, &shape)?, op, a),
    };
    Ok(Tensor { shape, data })
}

fn logic(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    shape: &[usize],
) -> Result<TensorData, RuntimeError> {
    let (x, y) = (operand::<bool>(a), operand::<bool>(b));
    let (Ok(x), Ok(y)) = (x, y) else {
        return Err(RuntimeError::unsupported(format!(
            "{} of {} tensors (only bool)",
            op.name(),
            a.dtype()
        )));
    };
    Ok(TensorData::Bool(match op {
        BinaryOp::And => apply(x, y, shape, |p, q| p & q),
        BinaryOp::Or => apply(x, y, shape, |p, q| p | q),
        _ => apply(x, y, shape, |p, q| p ^ q),
    }))
}

fn compare<T: Scalar + Send + Sync>(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    shape: &[usize],
) -> Result<TensorData, RuntimeError> {
    let (x, y) = (operand::<T>(a)?, operand::<T>(b)?);
    Ok(TensorData::Bool(match op {
        BinaryOp::Equal => apply(x, y, shape, |p, q| p == q),
        BinaryOp::Greater => apply(x, y, shape, |p, q| p > q),
        BinaryOp::GreaterOrEqual => apply(x, y, shape, |p, q| p >= q),
        BinaryOp::Less => apply(x, y, shape, |p, q| p < q),
        BinaryOp::LessOrEqual => apply(x, y, shape, |p, q| p <= q),
        other => {
            return Err(RuntimeError::internal(format!(
                "{} is not a comparison",
                other.name()
            )))
        }
    }))
}

/// Numeric arithmetic as ONNX defines it for each element type.
trait Arith: Scalar + Send + Sync {
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    /// Integer callers have checked that `o` is not zero.
    fn div(self, o: Self) -> Self;
    /// The remainder with the dividend's sign (C `fmod`).
    fn rem(self, o: Self) -> Self;
}

macro_rules! integer_arith {
    ($($t:ty),*) => {$(
        impl Arith for $t {
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn div(self, o: Self) -> Self {
                self.wrapping_div(o)
            }
            fn rem(self, o: Self) -> Self {
                self.wrapping_rem(o)
            }
        }
    )*};
}
integer_arith!(i8, u8, i16, u16, i32, u32, i64, u64);

macro_rules! float_arith {
    ($($t:ty),*) => {$(
        impl Arith for $t {
            fn add(self, o: Self) -> Self {
                self + o
            }
            fn sub(self, o: Self) -> Self {
                self - o
            }
            fn mul(self, o: Self) -> Self {
                self * o
            }
            fn div(self, o: Self) -> Self {
                self / o
            }
            fn rem(self, o: Self) -> Self {
                self % o
            }
        }
    )*};
}
float_arith!(f32, f64, f16, bf16);

fn arithmetic<T: Arith>(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    shape: &[usize],
) -> Result<TensorData, RuntimeError> {
    let (x, y) = (operand::<T>(a)?, operand::<T>(b)?);
    let zero = T::from_i64(0);
    let divides = matches!(op, BinaryOp::Div | BinaryOp::Mod | BinaryOp::Fmod);
    if divides && T::KIND != Kind::Float && y.0.contains(&zero) {
        return Err(RuntimeError::bad_input(format!(
            "integer {} by zero",
            op.name()
        )));
    }
    Ok(T::wrap(match op {
        BinaryOp::Add => apply(x, y, shape, T::add),
        BinaryOp::Sub => apply(x, y, shape, T::sub),
        BinaryOp::Mul => apply(x, y, shape, T::mul),
        BinaryOp::Div => apply(x, y, shape, T::div),
        BinaryOp::Fmod => apply(x, y, shape, T::rem),
        // numpy's mod: the remainder takes the divisor's sign.
        BinaryOp::Mod => apply(x, y, shape, |p, q| {
            let r = p.rem(q);
            if r != zero && (r < zero) != (q < zero) {
                r.add(q)
            } else {
                r
            }
        }),
        BinaryOp::Min => apply(x, y, shape, |p, q| if p < q || is_nan(p) { p } else { q }),
        BinaryOp::Max => apply(x, y, shape, |p, q| if p > q || is_nan(p) { p } else { q }),
        BinaryOp::PRelu => apply(x, y, shape, |p, q| if p < zero { p.mul(q) } else { p }),
        other => {
            return Err(RuntimeError::internal(format!(
                "{} is not arithmetic",
                Op::Binary(other).name()
            )))
        }
    }))
}

fn is_nan<T: PartialOrd>(v: T) -> bool {
    v.partial_cmp(&v).is_none()
}

/// Float bases compute in f64; integer bases with integer exponents stay exact (wrapping),
/// except for negative exponents, whose fractional results truncate like float exponents do.
fn pow<T: Arith>(a: &Tensor, b: &Tensor, shape: &[usize]) -> Result<TensorData, RuntimeError> {
    let x = operand::<T>(a)?;
    let integers = T::KIND != Kind::Float && !b.dtype().is_float();
    let via_float = |p: T, q: f64| T::from_f64(p.to_f64().powf(q));
    Ok(T::wrap(if integers {
        let e = exponents::<i64>(b)?;
        apply(x, (&e, &b.shape), shape, |p, q| {
            if q < 0 {
                via_float(p, q as f64)
            } else {
                int_pow(p, q as u64)
            }
        })
    } else {
        let e = exponents::<f64>(b)?;
        apply(x, (&e, &b.shape), shape, via_float)
    }))
}

fn exponents<D: Scalar>(b: &Tensor) -> Result<Vec<D>, RuntimeError> {
    super::dispatch!(b.dtype(), U => super::cast::convert_all::<U, D>(b))
        .ok_or_else(|| RuntimeError::internal("tensor data disagrees with its dtype"))
}

fn int_pow<T: Arith>(mut base: T, mut e: u64) -> T {
    let mut acc = T::from_i64(1);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc.mul(base);
        }
        base = base.mul(base);
        e >>= 1;
    }
    acc
}
