//! Cast, and the value conversions other elementwise kernels share. A value converts through the
//! widest type of its kind (f64, i64 or u64), which holds every value of the kind exactly, so
//! each conversion rounds once: as Rust's `as` does, which for float to integer truncates toward
//! zero and saturates (NaN becomes 0). Anything converts to bool as `x != 0`.

use super::{buffers, dispatch, Element, Isa};
use crate::RuntimeError;
use crate::{bf16, f16};
use crate::{Tensor, TensorData};
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;
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

macro_rules! half {
    ($($t:ty),*) => {$(
        impl Scalar for $t {
    const KIND: Kind = Kind::Float;
    fn to_f64(self) -> f64 {
        <$t>::to_f64(self)
    }
    fn to_i64(self) -> i64 {
        <$t>::to_f64(self) as i64
    }
    fn to_u64(self) -> u64 {
        <$t>::to_f64(self) as u64
    }
    fn from_f64(v: f64) -> Self {
        <$t>::from_f64(v)
    }
    fn from_i64(v: i64) -> Self {
        <$t>::from_f64(v as f64)
    }
    fn from_u64(v: u64) -> Self {
        <$t>::from_f64(v as f64)
    }
}

    )*};
}
half!(f16, bf16);

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

/// Elements per parallel job of the f32 and f16 conversions.
const HALF_CHUNK: usize = 1 << 15;

pub(crate) fn cast(x: &Tensor, to: DType) -> Result<Tensor, RuntimeError> {
    if x.dtype() == to {
        return Ok(x.clone());
    }
    // The casts around every fp16 layer: F16C's conversions (the `half` crate's slice
    // conversions detect it), which round to nearest even as the f64 path does, instead of a
    // software conversion per element that made fp16 plans slower than fp32 ones.
    match (&x.data, to) {
        (TensorData::F32(v), DType::F16) => {
            let mut out = buffers::reuse_typed(v.len());
            out.par_chunks_mut(HALF_CHUNK)
                .zip(v.par_chunks(HALF_CHUNK))
                .for_each(|(o, v)| o.convert_from_f32_slice(v));
            return Ok(Tensor {
                shape: x.shape.clone(),
                data: TensorData::F16(out),
            });
        }
        (TensorData::F16(v), DType::F32) => {
            let mut out = buffers::reuse(v.len());
            out.par_chunks_mut(HALF_CHUNK)
                .zip(v.par_chunks(HALF_CHUNK))
                .for_each(|(o, v)| v.convert_to_f32_slice(o));
            return Ok(Tensor::f32(x.shape.clone(), out));
        }
        // bf16 in integer steps, compiled for the widest vectors (`Isa::detect` reads what
        // the standard library cached at the first detection).
        (TensorData::F32(v), DType::BF16) => {
            let isa = Isa::detect();
            let mut out = buffers::reuse_typed(v.len());
            out.par_chunks_mut(HALF_CHUNK)
                .zip(v.par_chunks(HALF_CHUNK))
                .for_each(|(o, v)| isa.widest(|| narrow_bf16(v, o)));
            return Ok(Tensor {
                shape: x.shape.clone(),
                data: TensorData::BF16(out),
            });
        }
        (TensorData::BF16(v), DType::F32) => {
            let isa = Isa::detect();
            let mut out = buffers::reuse(v.len());
            out.par_chunks_mut(HALF_CHUNK)
                .zip(v.par_chunks(HALF_CHUNK))
                .for_each(|(o, v)| isa.widest(|| widen_bf16(v, o)));
            return Ok(Tensor::f32(x.shape.clone(), out));
        }
        _ => {}
    }
    let data = dispatch!(x.dtype(), S => dispatch!(to, D => convert_all::<S, D>(x).map(D::wrap)));
    Ok(Tensor {
        shape: x.shape.clone(),
        data: data.ok_or_else(|| RuntimeError::internal("tensor data disagrees with its dtype"))?,
    })
}

/// `dst[i] = bf16(src[i])`, rounded to nearest even as `bf16::from_f32` does (NaN stays a
/// quiet NaN of the same sign), in integer steps a loop compiled for the widest vectors
/// computes 16 at a time; `half` converts bf16 one element at a time.
#[inline(always)]
pub(crate) fn narrow_bf16(src: &[f32], dst: &mut [bf16]) {
    for (d, s) in dst.iter_mut().zip(src) {
        let b = s.to_bits();
        let rounded = (b + 0x7fff + ((b >> 16) & 1)) >> 16;
        let nan = (b & 0x7fff_ffff) > 0x7f80_0000;
        *d = bf16::from_bits(if nan { (b >> 16) | 0x40 } else { rounded } as u16);
    }
}

/// `dst[i] = f32(src[i])`: exact, the bits shifted into the upper half.
#[inline(always)]
pub(crate) fn widen_bf16(src: &[bf16], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f32::from_bits((s.to_bits() as u32) << 16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hardware conversions give the f64 path's bits for every half value, and for floats
    /// at and between every half's rounding boundaries, the ranges' ends, denormals and
    /// infinities; NaN stays NaN.
    #[test]
    fn half_casts_match_the_exact_conversion() {
        let halves: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
        let widened = cast(
            &Tensor {
                shape: vec![halves.len()],
                data: TensorData::F16(halves.clone()),
            },
            DType::F32,
        )
        .unwrap();
        for (h, w) in halves.iter().zip(widened.as_f32().unwrap()) {
            assert_eq!(h.is_nan(), w.is_nan());
            if !h.is_nan() {
                assert_eq!(h.to_f64() as f32, *w, "{h:?}");
            }
        }
        let mut floats: Vec<f32> = Vec::new();
        for w in widened.as_f32().unwrap().iter().filter(|w| w.is_finite()) {
            for ulps in [-2i32, -1, 0, 1, 2] {
                floats.push(f32::from_bits(w.to_bits().wrapping_add_signed(ulps)));
            }
            floats.push(w * (1.0 + f32::EPSILON * 4096.0));
        }
        floats.extend([
            65504.0,
            65519.99,
            65520.0,
            1e10,
            -1e10,
            1e-10,
            f32::MIN_POSITIVE,
            f32::INFINITY,
            f32::NAN,
        ]);
        let narrowed = cast(&Tensor::f32(vec![floats.len()], floats.clone()), DType::F16).unwrap();
        let TensorData::F16(narrowed) = narrowed.data else {
            panic!("not f16")
        };
        for (f, h) in floats.iter().zip(&narrowed) {
            assert_eq!(f.is_nan(), h.is_nan());
            if !f.is_nan() {
                assert_eq!(f16::from_f64(*f as f64).to_bits(), h.to_bits(), "{f:e}");
            }
        }
    }
}
