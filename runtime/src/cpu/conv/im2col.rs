//! im2col for the convolutions that lay out their columns (shallow strided float layers, and the
//! int8 and bf16 tiles), and the strided gathers of one input row it and the padded phases use.

use super::{valid_range, Geometry};
use crate::cpu::isa::Isa;

/// Lays out the receptive fields of output positions `p0..p1` over `cg` input planes as a
/// `[cg·kh·kw × stride]` matrix (columns past `p1 - p0` are `zero`); taps in the padding are
/// `zero` (0.0 for floats, the zero point's byte for quantized values).
#[allow(clippy::too_many_arguments)]
pub(in crate::cpu) fn im2col<T: Tap>(
    geo: &Geometry,
    isa: Isa,
    cg: usize,
    xs: &[T],
    (p0, p1): (usize, usize),
    stride: usize,
    col: &mut [T],
    zero: T,
) {
    let (in_plane, tw) = (geo.in_plane(), p1 - p0);
    let mut rows = col.chunks_exact_mut(stride);
    for ci in 0..cg {
        let src = &xs[ci * in_plane..(ci + 1) * in_plane];
        for i in 0..geo.kh {
            let (ylo, yhi) = valid_range(geo.pt, i * geo.dh, geo.sh, geo.h, geo.oh);
            for j in 0..geo.kw {
                let (xlo, xhi) = valid_range(geo.pl, j * geo.dw, geo.sw, geo.w, geo.ow);
                let Some(dst) = rows.next() else { return };
                dst[tw..].fill(zero);
                let mut p = p0;
                while p < p1 {
                    let (y, x0) = (p / geo.ow, p % geo.ow);
                    let x1 = geo.ow.min(x0 + p1 - p);
                    let seg = &mut dst[p - p0..p - p0 + x1 - x0];
                    if y < ylo || y >= yhi {
                        seg.fill(zero);
                    } else {
                        let iy = y * geo.sh + i * geo.dh - geo.pt;
                        let line = &src[iy * geo.w..(iy + 1) * geo.w];
                        gather_row(geo, isa, j, line, (x0, x1), (xlo, xhi), seg, zero);
                    }
                    p += x1 - x0;
                }
            }
        }
    }
}

/// Output positions `x0..x1` of one output row for kernel column `j`: inputs from `line`
/// where `xlo..xhi` says they exist, zero elsewhere.
#[allow(clippy::too_many_arguments)]
fn gather_row<T: Tap>(
    geo: &Geometry,
    isa: Isa,
    j: usize,
    line: &[T],
    (x0, x1): (usize, usize),
    (xlo, xhi): (usize, usize),
    seg: &mut [T],
    zero: T,
) {
    let (lo, hi) = (xlo.clamp(x0, x1), xhi.clamp(x0, x1));
    seg[..lo - x0].fill(zero);
    seg[hi - x0..].fill(zero);
    let inside = &mut seg[lo - x0..hi - x0];
    if lo == hi {
        return;
    }
    let first = lo * geo.sw + j * geo.dw - geo.pl;
    if geo.sw == 1 {
        inside.copy_from_slice(&line[first..first + (hi - lo)]);
    } else {
        T::every(&line[first..], geo.sw, inside, isa);
    }
}

/// An element im2col lays out: a float, or a quantized byte.
pub(in crate::cpu) trait Tap: Copy {
    /// `dst[i] = src[i·step]` for every `i` of `dst`.
    fn every(src: &[Self], step: usize, dst: &mut [Self], _isa: Isa) {
        every_scalar(src, step, dst);
    }
}

pub(in crate::cpu) fn every_scalar<T: Copy>(src: &[T], step: usize, dst: &mut [T]) {
    // Stride 1 is a copy: element by element, the bytes of an int8 layer's stride-1 im2col took
    // 3% of YOLOv8n's int8 time.
    if step == 1 {
        let n = dst.len().min(src.len());
        return dst[..n].copy_from_slice(&src[..n]);
    }
    dst.iter_mut()
        .zip(src.iter().step_by(step))
        .for_each(|(d, &s)| *d = s);
}

impl Tap for u8 {
    /// Stride 2 takes 32 bytes from 64 per narrowing move (`vpmovwb`, AVX-512BW, which VNNI
    /// comes with): one byte at a time, the gather was most of an int8 stride-2 stem's time.
    fn every(src: &[u8], step: usize, dst: &mut [u8], isa: Isa) {
        #[cfg(target_arch = "x86_64")]
        if step == 2 && isa.vnni() {
            // SAFETY: an `Isa` with VNNI is only made on a machine with AVX-512BW and VL.
            return unsafe { every_second_byte_avx512(src, dst) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = isa;
        every_scalar(src, step, dst);
    }
}

/// `dst[i] = src[2·i]` for every `i` of `dst` (`src` holds at least `2·dst.len() - 1` bytes):
/// the low byte of each 16-bit lane, 32 outputs a vector, the last vector masked. A row of an
/// im2col tile is often narrower than a vector (10 to 40 outputs), and element by element its
/// tail had cost as much as the vectors.
///
/// # Safety
/// AVX-512BW and VL must be available. Without VL enabled here, the 32-byte masked store was
/// not inlined: a call per store, and the calls were 8% of an int8 stride-2 stem's time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn every_second_byte_avx512(src: &[u8], dst: &mut [u8]) {
    use std::arch::x86_64::{
        _mm256_mask_storeu_epi8, _mm512_cvtepi16_epi8, _mm512_maskz_loadu_epi8,
    };
    assert!(dst.is_empty() || src.len() >= 2 * dst.len() - 1);
    for (b, out) in dst.chunks_mut(32).enumerate() {
        // The inputs this vector takes, up to its last even byte: the odd byte after it may lie
        // past `src`.
        let inputs = 2 * out.len() - 1;
        let load = u64::MAX >> (64 - inputs);
        let store = u32::MAX >> (32 - out.len());
        // SAFETY: the masks cover `inputs` bytes of `src` from `64·b` and `out.len()` of `out`,
        // all in bounds by the assert.
        unsafe {
            let words = _mm512_maskz_loadu_epi8(load, src.as_ptr().add(64 * b).cast());
            _mm256_mask_storeu_epi8(out.as_mut_ptr().cast(), store, _mm512_cvtepi16_epi8(words));
        }
    }
}

impl Tap for f32 {
    /// Stride 2, the detectors' stems and downsampling convolutions, takes 16 floats from 32
    /// per permute on AVX-512: one element at a time, this gather was most of a 3->16 stride-2
    /// stem's time.
    fn every(src: &[f32], step: usize, dst: &mut [f32], isa: Isa) {
        #[cfg(target_arch = "x86_64")]
        if step == 2 && isa.avx512() {
            // SAFETY: an `Isa` with AVX-512 is only made on a machine that has it.
            return unsafe { every_second_avx512(src, dst) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = isa;
        every_scalar(src, step, dst);
    }
}

/// `dst[i] = src[2·i]` for every `i` of `dst` (`src` holds at least `2·dst.len() - 1`
/// floats), 16 outputs a vector, the last one masked (see [`every_second_byte_avx512`]).
///
/// # Safety
/// AVX-512F must be available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn every_second_avx512(src: &[f32], dst: &mut [f32]) {
    use std::arch::x86_64::{
        _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_permutex2var_ps, _mm512_setr_epi32,
    };
    assert!(dst.is_empty() || src.len() >= 2 * dst.len() - 1);
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let mask = |n: usize| if n >= 16 { u16::MAX } else { (1u16 << n) - 1 };
    for (b, out) in dst.chunks_mut(16).enumerate() {
        let inputs = 2 * out.len() - 1;
        let at = src.as_ptr().wrapping_add(32 * b);
        // SAFETY: the masks cover `inputs` floats of `src` from `32·b` and `out.len()` of
        // `out`, all in bounds by the assert; masked-off lanes are not read.
        unsafe {
            let lo = _mm512_maskz_loadu_ps(mask(inputs), at);
            let hi = _mm512_maskz_loadu_ps(mask(inputs.saturating_sub(16)), at.wrapping_add(16));
            let picked = _mm512_permutex2var_ps(lo, even, hi);
            _mm512_mask_storeu_ps(out.as_mut_ptr(), mask(out.len()), picked);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Isa, Tap};

    /// `every` on each instruction set against the definition, for floats, bf16 and bytes, at strides
    /// 1 to 3 and for lengths around the vectors' widths (tails included), from sources that
    /// end at the last element taken.
    fn gathers_as_defined<T: Tap + PartialEq + std::fmt::Debug>(of: impl Fn(usize) -> T) {
        for isa in Isa::available() {
            for step in 1..=3 {
                for n in [0usize, 1, 15, 16, 17, 31, 32, 33, 64, 100] {
                    let len = n.saturating_sub(1) * step + usize::from(n > 0);
                    let src: Vec<T> = (0..len).map(&of).collect();
                    let expected: Vec<T> = src.iter().step_by(step).copied().collect();
                    let mut got = vec![of(0); n];
                    T::every(&src, step, &mut got, isa);
                    assert_eq!(got, expected, "{isa:?}, step {step}, {n} outputs");
                }
            }
        }
    }

    #[test]
    fn strided_gathers_take_every_step_th_element() {
        gathers_as_defined(|i| i as f32 * 0.5 - 3.0);
        gathers_as_defined(|i| (i * 37 % 256) as u8);
        gathers_as_defined(|i| crate::bf16::from_f32(i as f32 * 0.25 - 7.0));
    }
}
