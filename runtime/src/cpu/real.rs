//! What the floating-point kernels of the linear-algebra and normalization family share: the
//! element types they compute in, a total order for ranking any element type, and
//! unidirectional broadcasting of a small operand (a Gemm bias, LayerNorm's scale).

use super::Element;
use crate::RuntimeError;
use crate::Tensor;
use crate::{bf16, f16};
use std::cmp::Ordering;
use temblor_ir::DType;

/// f32 or f64: the types the `gemm` crate multiplies and these kernels compute in.
pub(crate) trait Real:
    Element
    + PartialOrd
    + Send
    + Sync
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    /// The slice as f32s when `Self` is f32: the kernels only written for f32 take it.
    fn f32s(s: &[Self]) -> Option<&[f32]>;
    fn f32s_mut(s: &mut [Self]) -> Option<&mut [f32]>;
    /// A buffer of `len` elements whose values are unspecified, for an output that a kernel
    /// writes whole: f32 buffers come from the run's pool without being zeroed first (ViT-S's
    /// MatMul outputs were 67 MB of zeros a run, written over at once).
    fn written(len: usize) -> Vec<Self>;
}

macro_rules! real {
    ($t:ty, $exp:expr, $f32s:expr, $f32s_mut:expr, $written:expr) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn exp(self) -> Self {
                $exp(self)
            }
            fn f32s(s: &[Self]) -> Option<&[f32]> {
                $f32s(s)
            }
            fn f32s_mut(s: &mut [Self]) -> Option<&mut [f32]> {
                $f32s_mut(s)
            }
            fn written(len: usize) -> Vec<Self> {
                $written(len)
            }
        }
    };
}

real!(f32, super::math::exp_f32, Some, Some, super::buffers::reuse);
real!(f64, f64::exp, |_| None, |_| None, |len| vec![0.0; len]);

/// Runs `$body` with `$t` bound to the [`Real`] type of `$dtype`; other dtypes are unsupported
/// for `$what`.
macro_rules! dispatch_real {
    ($dtype:expr, $what:expr, $t:ident => $body:expr) => {
        match $dtype {
            temblor_ir::DType::F32 => {
                type $t = f32;
                $body
            }
            temblor_ir::DType::F64 => {
                type $t = f64;
                $body
            }
            other => Err($crate::RuntimeError::unsupported(format!(
                "{} of {other} tensors (f32 and f64 are supported)",
                $what
            ))),
        }
    };
}
pub(crate) use dispatch_real;

/// A total order on every element type: floats order as usual with NaN above everything, so
/// sorting never meets an inconsistent comparison.
pub(crate) trait Ordered: Element + PartialOrd {
    fn order(&self, other: &Self) -> Ordering;
    /// The identity of max (the smallest value) and of min (the largest).
    const LOWEST: Self;
    const HIGHEST: Self;
    /// The larger of two, ignoring a NaN one. Floats and integers override this with their own
    /// `max`, which vectorizes to a max instruction; a compare and select, stored back over
    /// `self`'s place, becomes a masked store, and a masked store does not forward to the next
    /// pass's load (pooling ran 2x slower that way).
    fn larger(self, other: Self) -> Self {
        if other > self {
            other
        } else {
            self
        }
    }
}

macro_rules! ordered_float {
    ($t:ty, $lo:expr, $hi:expr) => {
        impl Ordered for $t {
            fn order(&self, other: &Self) -> Ordering {
                self.partial_cmp(other)
                    .unwrap_or_else(|| self.is_nan().cmp(&other.is_nan()))
            }
            const LOWEST: Self = $lo;
            const HIGHEST: Self = $hi;
            fn larger(self, other: Self) -> Self {
                self.max(other)
            }
        }
    };
}

macro_rules! ordered_int {
    ($($t:ty),*) => {
        $(impl Ordered for $t {
            fn order(&self, other: &Self) -> Ordering {
                self.cmp(other)
            }
            const LOWEST: Self = <$t>::MIN;
            const HIGHEST: Self = <$t>::MAX;
            fn larger(self, other: Self) -> Self {
                self.max(other)
            }
        })*
    };
}

ordered_float!(f32, f32::NEG_INFINITY, f32::INFINITY);
ordered_float!(f64, f64::NEG_INFINITY, f64::INFINITY);
ordered_float!(f16, f16::NEG_INFINITY, f16::INFINITY);
ordered_float!(bf16, bf16::NEG_INFINITY, bf16::INFINITY);
ordered_int!(i8, u8, i16, u16, i32, u32, i64, u64);

impl Ordered for bool {
    fn order(&self, other: &Self) -> Ordering {
        self.cmp(other)
    }
    const LOWEST: Self = false;
    const HIGHEST: Self = true;
}

/// The elements of `t` as `T`, or an error naming `what` it is.
pub(crate) fn values<'a, T: Element>(t: &'a Tensor, what: &str) -> Result<&'a [T], RuntimeError> {
    T::slice(&t.data).ok_or_else(|| {
        RuntimeError::bad_input(format!(
            "{what} is {}, expected {}",
            t.dtype(),
            dtype_of::<T>()
        ))
    })
}

fn dtype_of<T: Element>() -> DType {
    T::wrap(Vec::new()).dtype()
}

/// `v` of shape `from` stretched to `to` by numpy's rules, where only `v` may stretch.
pub(crate) fn broadcast_to<T: Copy>(
    v: &[T],
    from: &[usize],
    to: &[usize],
    what: &str,
) -> Result<Vec<T>, RuntimeError> {
    let bad = || {
        RuntimeError::bad_input(format!(
            "{what} of shape {from:?} does not broadcast to {to:?}"
        ))
    };
    if from.len() > to.len() {
        return Err(bad());
    }
    let lead = to.len() - from.len();
    let mut strides = vec![0; to.len()];
    let mut s = 1;
    for i in (0..from.len()).rev() {
        match from[i] {
            d if d == to[lead + i] => strides[lead + i] = s,
            1 => {}
            _ => return Err(bad()),
        }
        s *= from[i];
    }
    let total: usize = to.iter().product();
    let mut out = Vec::with_capacity(total);
    let mut idx = vec![0; to.len()];
    let mut off = 0;
    for _ in 0..total {
        out.push(v[off]);
        for ax in (0..to.len()).rev() {
            idx[ax] += 1;
            off += strides[ax];
            if idx[ax] < to[ax] {
                break;
            }
            off -= strides[ax] * to[ax];
            idx[ax] = 0;
        }
    }
    Ok(out)
}

/// The f64 sum of `v`, over 32 independent partial sums (four vectors of eight at AVX-512's
/// width) so the additions pipeline instead of waiting on one another: with eight, the sums of
/// ViT-S's LayerNorms ran at one vector add per add's latency. Always inlined, so that it
/// takes the vector width of the caller's [`super::isa::Isa::widest`]. The order of the
/// additions depends only on `v.len()`, so every width gives the same bits.
#[inline(always)]
pub(crate) fn sum_f64<T: Copy>(v: &[T], to: impl Fn(T) -> f64) -> f64 {
    let mut wide = [0.0f64; 32];
    let chunks = v.chunks_exact(32);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &e) in wide.iter_mut().zip(c) {
            *l += to(e);
        }
    }
    let mut lanes = [0.0f64; 8];
    let eights = tail.chunks_exact(8);
    let rest: f64 = eights.remainder().iter().map(|&e| to(e)).sum();
    for c in eights {
        for (l, &e) in lanes.iter_mut().zip(c) {
            *l += to(e);
        }
    }
    for (i, l) in lanes.iter_mut().enumerate() {
        *l += (wide[i] + wide[i + 8]) + (wide[i + 16] + wide[i + 24]);
    }
    lanes.iter().sum::<f64>() + rest
}
