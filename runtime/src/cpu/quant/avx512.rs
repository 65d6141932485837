//! Quantization 16 lanes at a time (stored 64 at a time with AVX-512BW) in the fewest
//! instructions: compiled from the scalar [`Quantizer::byte_by_inverse`], each element took
//! about twenty (its clamp, NaN test and narrowing each a few), and quantizing was a fifth of
//! an int8 plan's time.

use super::Quantizer;
use std::arch::x86_64::*;

/// `out[i] = q.byte(x[i])` by the reciprocal `inverse`.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn bytes(q: Quantizer, inverse: f32, x: &[f32], out: &mut [u8]) {
    // SAFETY: the caller's promise.
    unsafe { run::<false>(q, inverse, x, out) }
}

/// [`bytes`], 64 at a time: narrowed by two saturating packs (exact, every lane is a byte
/// already) and stored in one move. Narrowing stores of 16 lanes are two shuffles and a
/// store each, and the loop of [`bytes`] waited on them.
///
/// # Safety
/// The CPU must have AVX-512F and AVX-512BW.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn packed_bytes(q: Quantizer, inverse: f32, x: &[f32], out: &mut [u8]) {
    // SAFETY: the caller's promise.
    unsafe { run::<true>(q, inverse, x, out) }
}

/// Markstein's correction as [`Quantizer::byte_by_inverse`] makes it, in 10 instructions
/// a vector. Clamping `x` to the values of the two end bytes before dividing gives the
/// same bytes as clamping the rounded quotient: the end's quotient is within an ulp of an
/// integer, and [`Quantizer::inverse`]'s scales keep both ends normal and every quotient
/// finite, so the correction needs no test for infinities. A NaN's lane takes the byte of
/// 0 in the add of the offset.
///
/// # Safety
/// The CPU must have AVX-512F, and AVX-512BW with `PACK`; inlined only into functions
/// that enable them.
#[inline(always)]
unsafe fn run<const PACK: bool>(q: Quantizer, inverse: f32, x: &[f32], out: &mut [u8]) {
    let n = x.len().min(out.len());
    let (lo, hi) = q.bounds();
    let zero = q.zero as f32;
    // SAFETY: the caller's promise of the instructions; the masks and bounds keep every
    // load and store within the first `n` elements.
    unsafe {
        let (inverse, scale) = (_mm512_set1_ps(inverse), _mm512_set1_ps(q.scale));
        let (lo, hi) = (
            _mm512_set1_ps((lo - zero) * q.scale),
            _mm512_set1_ps((hi - zero) * q.scale),
        );
        let (offset, nan) = (_mm512_set1_epi32(q.offset()), _mm512_set1_epi32(q.shift()));
        // A macro, not a closure: a closure is a function of its own, compiled without the
        // caller's instructions, and its intrinsics became calls.
        macro_rules! byte {
            ($v:expr) => {{
                let v = $v;
                let ordered = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(v, v);
                let v = _mm512_max_ps(_mm512_min_ps(v, hi), lo);
                let quotient = _mm512_mul_ps(v, inverse);
                let residual = _mm512_fnmadd_ps(quotient, scale, v);
                let quotient = _mm512_fmadd_ps(residual, inverse, quotient);
                let rounded = _mm512_cvt_roundps_epi32::<
                    { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                >(quotient);
                _mm512_mask_add_epi32(nan, ordered, rounded, offset)
            }};
        }
        let mut i = 0;
        if PACK {
            // The packs interleave their two sources by 128-bit lanes.
            let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
            while n - i >= 64 {
                let at = x.as_ptr().add(i);
                let low = _mm512_packus_epi32(
                    byte!(_mm512_loadu_ps(at)),
                    byte!(_mm512_loadu_ps(at.add(16))),
                );
                let high = _mm512_packus_epi32(
                    byte!(_mm512_loadu_ps(at.add(32))),
                    byte!(_mm512_loadu_ps(at.add(48))),
                );
                let bytes = _mm512_packus_epi16(low, high);
                let bytes = _mm512_permutexvar_epi32(order, bytes);
                _mm512_storeu_si512(out.as_mut_ptr().add(i).cast(), bytes);
                i += 64;
            }
        }
        while i < n {
            let lanes: __mmask16 = if n - i >= 16 {
                0xffff
            } else {
                (1u16 << (n - i)) - 1
            };
            let v = byte!(_mm512_maskz_loadu_ps(lanes, x.as_ptr().add(i)));
            _mm512_mask_cvtepi32_storeu_epi8(out.as_mut_ptr().add(i).cast(), lanes, v);
            i += 16;
        }
    }
}
