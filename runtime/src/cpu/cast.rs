//! Cast, and the value conversions other elementwise kernels share. A value converts through the
//! widest type of its kind (f64, i64 or u64), which holds every value of the kind exactly, so
//! each conversion rounds once: as Rust's `as` does, which for float to integer truncates toward
//! zero and saturates (NaN becomes 0). Anything converts to bool as `x != 0`.

use super::{dispatch, Element};
use crate::f16;
use crate::RuntimeError;
use crate::Tensor;
use temblor_ir::DType;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Float,
    Signed,
    Unsigned,
}

/// An element type that converts to and from the others.
pub(crate) trait Scalar: Element + PartialOrd {
    const KIND: Kind;
    fn to_f64(self) -> f64;
    fn to_i64(self) -> i64;
    fn to_u64(self) -> u64;
    fn from_f64(v: f64) -> Self;
    fn from_i64(v: i64) -> Self;
    fn from_u64(v: u64) -> Self;
}

macro_rules! primitive {
    ($kind:ident: $($t:ty),*) => {$(
        impl Scalar for $t {
            const KIND: Kind = Kind::$kind;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn to_u64(self) -> u64 {
                self as u64
            }
            fn from_f64(v: f64) -> Self {
                v as Self
            }
            fn from_i64(v: i64) -> Self {
                v as Self
            }
            fn from_u64(v: u64) -> Self {
                v as Self
            }
        }
    )*};
}
primitive!(Float: f32, f64);
primitive!(Signed: i8, i16, i32, i64);
primitive!(Unsigned: u8, u16, u32, u64);

impl Scalar for f16 {
    const KIND: Kind = Kind::Float;
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    fn to_i64(self) -> i64 {
        f16::to_f64(self) as i64
    }
    fn to_u64(self) -> u64 {
        f16::to_f64(self) as u64
    }
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
    fn from_i64(v: i64) -> Self {
        f16::from_f64(v as f64)
    }
    fn from_u64(v: u64) -> Self {
        f16::from_f64(v as f64)
    }
}

impl Scalar for bool {
    const KIND: Kind = Kind::Unsigned;
    fn to_f64(self) -> f64 {
        u8::from(self) as f64
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn to_u64(self) -> u64 {
        self as u64
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn from_i64(v: i64) -> Self {
        v != 0
    }
    fn from_u64(v: u64) -> Self {
        v != 0
    }
}

/// `x` as a `D`.
pub(crate) fn convert<S: Scalar, D: Scalar>(x: S) -> D {
    match S::KIND {
        Kind::Float => D::from_f64(x.to_f64()),
        Kind::Signed => D::from_i64(x.to_i64()),
        Kind::Unsigned => D::from_u64(x.to_u64()),
    }
}

/// The values of `x` as `D`; `None` when `x` does not hold `S`.
pub(crate) fn convert_all<S: Scalar, D: Scalar>(x: &Tensor) -> Option<Vec<D>> {
    S::slice(&x.data).map(|v| v.iter().map(|&e| convert::<S, D>(e)).collect())
}

pub(crate) fn cast(x: &Tensor, to: DType) -> Result<Tensor, RuntimeError> {
    if x.dtype() == to {
        return Ok(x.clone());
    }
    let data = dispatch!(x.dtype(), S => dispatch!(to, D => convert_all::<S, D>(x).map(D::wrap)));
    Ok(Tensor {
        shape: x.shape.clone(),
        data: data.ok_or_else(|| RuntimeError::internal("tensor data disagrees with its dtype"))?,
    })
}
