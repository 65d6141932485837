//! int8 convolutions over blocks of 16 channels: the tiles of [`super::conv_blocked`], each of
//! whose sums is an exact 32-bit integer from AVX-512 VNNI's `vpdpbusd` (4 unsigned activation
//! bytes times 4 signed weight bytes, added to one lane).
//!
//! The quantized input (bytes `q + 128` for int8, as [`super::int8_gemm`] stores them) is laid
//! out once as padded blocks `[n][c/16][hp][wp][16 bytes]`, padding being the byte that stands
//! for 0; the weight as `[o/16][c/16][kh·kw][4 quads][16 outputs]` of 4 bytes, the input
//! channels `4q..4q + 4` of a block. Per input quad and tap, a tile broadcasts each of its 8
//! positions' 4 bytes and multiplies them by up to 3 vectors of 16 outputs' weights. The sums
//! then become floats as on the GEMM path, `(sum - offset·Σw) · scale`, in registers, and are
//! transposed into the NCHW output: integer sums are exact in any order, so the outputs are
//! those of the GEMM path bit for bit.

use super::conv::Geometry;
use super::conv_blocked::{avx512::store, each_tile, eligible, pad_in_parallel, taps, walk_padded};
use super::conv_blocked::{Padded, LANES, TILE};
use super::conv_blocked::{TileAt, BLOCKS};
use super::epilogue::Epilogue;
use super::isa::Isa;
use std::arch::x86_64::{
    __m128i, _mm512_cvtepi32_ps, _mm512_dpbusd_epi32, _mm512_loadu_ps, _mm512_loadu_si512,
    _mm512_mul_ps, _mm512_set1_epi32, _mm512_setzero_ps, _mm512_setzero_si512, _mm512_sub_epi32,
    _mm_mask_loadu_epi8, _mm_set1_epi8, _mm_storeu_si128, _mm_unpackhi_epi8, _mm_unpacklo_epi8,
};

/// Input channels a `vpdpbusd` lane sums.
const QUAD: usize = 4;

/// An int8 convolution's weight in blocks, with what turns each output channel's integer sums
/// into floats; padding channels have zero weights, offsets and scales.
#[derive(Debug)]
pub(crate) struct Int8BlockedWeights {
    /// `[o/16][c/16][kh·kw][4][16]` little-endian quads of weight bytes.
    data: Vec<i32>,
    /// `offset · Σ w` of each output channel, whole blocks.
    fix: Vec<i32>,
    /// The scale of each output channel's sums, whole blocks.
    scales: Vec<f32>,
    shape: [usize; 4],
}

impl Int8BlockedWeights {
    /// The weight `w` of `shape`, for inputs whose byte `offset` stands for 0 and outputs scaled
    /// by `scales` (one per output channel), when the blocked path takes such a convolution.
    pub fn for_conv(
        w: &[i8],
        shape: [usize; 4],
        group: usize,
        offset: i32,
        scales: &[f32],
    ) -> Option<Int8BlockedWeights> {
        if !eligible(shape, group) {
            return None;
        }
        let [o, c, kh, kw] = shape;
        let (ob, cb, taps) = (o.div_ceil(LANES), c.div_ceil(LANES), kh * kw);
        let mut bytes = vec![[0u8; QUAD]; ob * cb * taps * QUAD * LANES];
        let mut fix = vec![0i32; ob * LANES];
        let mut padded_scales = vec![0.0f32; ob * LANES];
        for (oc, filter) in w.chunks_exact(c * taps).take(o).enumerate() {
            for (ic, window) in filter.chunks_exact(taps).enumerate() {
                for (t, &v) in window.iter().enumerate() {
                    let quad =
                        ((oc / LANES * cb + ic / LANES) * taps + t) * QUAD + ic % LANES / QUAD;
                    bytes[quad * LANES + oc % LANES][ic % QUAD] = v as u8;
                }
            }
            fix[oc] = offset * filter.iter().map(|&v| i32::from(v)).sum::<i32>();
            padded_scales[oc] = scales[oc];
        }
        Some(Int8BlockedWeights {
            data: bytes.into_iter().map(i32::from_le_bytes).collect(),
            fix,
            scales: padded_scales,
            shape,
        })
    }

    /// Quads from one output block's weight to the next's.
    fn block_stride(&self) -> usize {
        let [_, c, kh, kw] = self.shape;
        c.div_ceil(LANES) * kh * kw * QUAD * LANES
    }
}

/// Whether the blocked int8 path runs convolution `geo` on `isa`: where the float blocked path
/// would, on a CPU with VNNI.
pub(crate) fn takes(geo: &Geometry, isa: Isa) -> bool {
    isa.vnni() && super::conv_blocked::takes(geo, isa)
}

/// Convolution `geo` of the quantized input `bytes` (NCHW) with `weights` into `out`, finished
/// with `epi`; `offset` is the byte that stands for 0, `padded` a scratch buffer. The caller
/// checked [`takes`].
pub(crate) fn conv(
    geo: &Geometry,
    (bytes, offset): (&[u8], u8),
    weights: &Int8BlockedWeights,
    epi: &Epilogue,
    padded: &mut Vec<u8>,
    out: &mut [f32],
) {
    assert!(takes(geo, epi.isa) && weights.shape == [geo.o, geo.c, geo.kh, geo.kw]);
    let layout = Padded::new(geo);
    padded.resize(geo.n * layout.blocks * layout.block(), 0);
    pad_in_parallel(geo, &layout, padded, |image, block, y0, dst| {
        let c0 = block * LANES;
        let channels = LANES.min(geo.c - c0);
        let first = (image * geo.c + c0) * geo.in_plane();
        let src = &bytes[first..first + channels * geo.in_plane()];
        pad_bytes(geo, &layout, src, channels, offset, y0, dst);
    });
    let taps = taps(geo, &layout);
    let image = layout.blocks * layout.block();
    let input: &[u8] = padded;
    each_tile(geo, &layout, epi, out, |at| {
        let input = &input[at.image * image..][..image];
        // SAFETY: `takes` checked VNNI (with AVX-512F and BW); the reads lie in `input`, as
        // `multiply` asserts, and `at`'s rows hold the tile's positions.
        unsafe { vnni::multiply(input, layout.block(), geo.c, &taps, weights, at) };
    });
}

/// Lays out `channels` (at most 16) planes of bytes `src` of one image as padded rows `y0..`
/// of one block, `dst` (whole rows of `[wp][16]`), `fill` in the padding and in the channels
/// past `channels`.
fn pad_bytes(
    geo: &Geometry,
    layout: &Padded,
    src: &[u8],
    channels: usize,
    fill: u8,
    y0: usize,
    dst: &mut [u8],
) {
    assert!(channels <= LANES && src.len() == channels * geo.in_plane());
    walk_padded(geo, layout, y0, dst, fill, |r, x0, out| {
        let first = r * geo.w + x0;
        assert!(out.len() <= LANES * LANES && first + out.len() / LANES <= geo.in_plane());
        // SAFETY: `takes` checked VNNI, which comes with AVX-512BW and VL here (`Isa`); each
        // line's reads lie in its channel's plane, as asserted.
        unsafe { transposed(src, geo.in_plane(), first, channels, fill, out) };
    });
}

/// Stores bytes `first..first + n` of each of `channels` planes (`plane` bytes apart in
/// `src`) as `n` positions of 16 channels in `out` (`n · 16` bytes), `fill` in the channels past
/// `channels`. The lines are read with masked loads: copied with `copy_from_slice`, rows of 10
/// or 20 bytes (YOLOv8n's small planes, and every row's tail) were a `memmove` call each, 3% of
/// the int8 plan's samples at one thread.
///
/// # Safety
/// AVX-512BW and VL must be available; `first + n <= plane` and `channels <= 16`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn transposed(
    src: &[u8],
    plane: usize,
    first: usize,
    channels: usize,
    fill: u8,
    out: &mut [u8],
) {
    let n = out.len() / LANES;
    let mask = ((1u32 << n) - 1) as u16;
    let background = _mm_set1_epi8(fill as i8);
    let mut lines = [background; LANES];
    for (c, line) in lines.iter_mut().enumerate().take(channels) {
        let at = &src[c * plane + first..][..n];
        // SAFETY: the mask reads the `n` bytes of `at` only.
        *line = unsafe { _mm_mask_loadu_epi8(background, mask, at.as_ptr().cast()) };
    }
    for (dst, p) in out.chunks_exact_mut(LANES).zip(&transpose_bytes(lines)) {
        // SAFETY: `dst` holds 16 bytes.
        unsafe { _mm_storeu_si128(dst.as_mut_ptr().cast(), *p) };
    }
}

/// Byte `j` of line `i` becomes byte `i` of line `j`: four rounds of byte interleaves, each
/// pairing line `i` with line `i + 8`.
#[inline(always)]
fn transpose_bytes(mut r: [__m128i; LANES]) -> [__m128i; LANES] {
    for _ in 0..4 {
        let mut next = r;
        for i in 0..8 {
            // SAFETY: SSE2 is part of x86-64.
            unsafe {
                next[2 * i] = _mm_unpacklo_epi8(r[i], r[i + 8]);
                next[2 * i + 1] = _mm_unpackhi_epi8(r[i], r[i + 8]);
            }
        }
        r = next;
    }
    r
}

mod vnni {
    use super::*;

    /// One tile of `at`: the products of its positions' windows in `input` (one image's padded
    /// byte blocks of `block` bytes, `channels` input channels, the window's `taps`) with the
    /// weights of its output blocks, turned into floats and stored.
    ///
    /// # Safety
    /// AVX-512F, BW and VNNI must be available; `at`'s non-null rows must hold the tile's
    /// positions from `at.at` on, referenced by nothing else during the call.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn multiply(
        input: &[u8],
        block: usize,
        channels: usize,
        taps: &[usize],
        weights: &Int8BlockedWeights,
        at: &TileAt,
    ) {
        let blocks = at.blocks.1 - at.blocks.0;
        let in_blocks = channels.div_ceil(LANES);
        let reach = at.offsets[..at.count].iter().max().copied().unwrap_or(0)
            + taps.iter().max().copied().unwrap_or(0)
            + LANES;
        assert!((in_blocks - 1) * block + reach <= input.len());
        let stride = weights.block_stride();
        assert!((1..=BLOCKS).contains(&blocks) && (1..=TILE).contains(&at.count));
        assert!(stride == in_blocks * taps.len() * QUAD * LANES);
        assert!(
            at.blocks.1 * stride <= weights.data.len() && at.blocks.1 * LANES <= weights.fix.len()
        );
        // SAFETY: the reads lie within the slices, as asserted; the caller upholds the rest.
        unsafe {
            match (blocks, at.count == TILE) {
                (1, true) => kernel::<1, true>(input, block, channels, taps, weights, at),
                (1, false) => kernel::<1, false>(input, block, channels, taps, weights, at),
                (2, true) => kernel::<2, true>(input, block, channels, taps, weights, at),
                (2, false) => kernel::<2, false>(input, block, channels, taps, weights, at),
                (_, true) => kernel::<3, true>(input, block, channels, taps, weights, at),
                (_, false) => kernel::<3, false>(input, block, channels, taps, weights, at),
            }
        }
    }

    /// [`multiply`] for `B` output blocks; `FULL` when the tile has all [`TILE`] positions.
    ///
    /// # Safety
    /// As [`multiply`], whose assertions hold.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn kernel<const B: usize, const FULL: bool>(
        input: &[u8],
        block: usize,
        channels: usize,
        taps: &[usize],
        weights: &Int8BlockedWeights,
        at: &TileAt,
    ) {
        // SAFETY: the caller upholds the contract of `multiply`.
        unsafe {
            let mut acc = [[_mm512_setzero_si512(); B]; TILE];
            let offsets = at.offsets;
            let stride = weights.block_stride();
            let w0 = weights.data.as_ptr().add(at.blocks.0 * stride);
            let x = input.as_ptr();
            for ib in 0..channels.div_ceil(LANES) {
                let quads = LANES.min(channels - ib * LANES).div_ceil(QUAD);
                let xb = x.add(ib * block);
                for (t, &tap) in taps.iter().enumerate() {
                    let xt = xb.add(tap);
                    let wt = w0.add((ib * taps.len() + t) * QUAD * LANES);
                    for q in 0..quads {
                        let mut w = [_mm512_setzero_si512(); B];
                        for (k, v) in w.iter_mut().enumerate() {
                            *v = _mm512_loadu_si512(wt.add(k * stride + q * LANES).cast());
                        }
                        for (p, acc) in acc.iter_mut().enumerate() {
                            if FULL || p < at.count {
                                let four = xt.add(offsets[p] + q * QUAD).cast::<i32>();
                                let xv = _mm512_set1_epi32(four.read_unaligned());
                                for (a, w) in acc.iter_mut().zip(&w) {
                                    *a = _mm512_dpbusd_epi32(*a, xv, *w);
                                }
                            }
                        }
                    }
                }
            }
            for k in 0..B {
                let first = (at.blocks.0 + k) * LANES;
                let fix = _mm512_loadu_si512(weights.fix.as_ptr().add(first).cast());
                let scale = _mm512_loadu_ps(weights.scales.as_ptr().add(first));
                let a = &acc;
                let sums = [
                    a[0][k], a[1][k], a[2][k], a[3][k], a[4][k], a[5][k], a[6][k], a[7][k],
                ];
                let mut floats = [_mm512_setzero_ps(); TILE];
                for (f, s) in floats.iter_mut().zip(sums) {
                    *f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s, fix)), scale);
                }
                store(
                    floats,
                    &at.rows[k * LANES..(k + 1) * LANES],
                    at.at,
                    at.count,
                );
            }
        }
    }
}
