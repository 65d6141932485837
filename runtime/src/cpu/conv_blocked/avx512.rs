//! The AVX-512 side of [`super::conv`]: the padded block layout of the input, the tile kernel,
//! and the register transposes between the two layouts.

use super::super::conv::Geometry;
use super::{walk_padded, Padded, BLOCKS, LANES, TILE};
use std::arch::x86_64::{
    __m512, _mm512_castpd_ps, _mm512_castps_pd, _mm512_fmadd_ps, _mm512_loadu_ps,
    _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_shuffle_f32x4, _mm512_storeu_ps, _mm512_unpackhi_pd, _mm512_unpackhi_ps,
    _mm512_unpacklo_pd, _mm512_unpacklo_ps,
};

/// The first `n` of 16 lanes.
fn lanes(n: usize) -> u16 {
    if n >= 16 {
        u16::MAX
    } else {
        (1u16 << n) - 1
    }
}

/// Lays out `channels` (at most 16) input planes `src` of one image as padded rows `y0..` of
/// one block, `dst` (whole rows of `[wp][16]`, channels past `channels` zero). Every float of
/// `dst` is written.
///
/// # Safety
/// AVX-512F must be available.
pub(super) unsafe fn pad_rows(
    geo: &Geometry,
    padded: &Padded,
    src: &[f32],
    channels: usize,
    y0: usize,
    dst: &mut [f32],
) {
    assert!(channels <= LANES && src.len() == channels * geo.in_plane());
    walk_padded(geo, padded, y0, dst, 0.0, |r, x0, out| {
        // SAFETY: the caller has AVX-512F.
        unsafe { positions(geo, src, channels, (r, x0), out) }
    });
}

/// Input row `r`'s columns `x0..` of `channels` planes `src`, as `out.len() / 16` positions of 16
/// channels.
#[target_feature(enable = "avx512f")]
fn positions(
    geo: &Geometry,
    src: &[f32],
    channels: usize,
    (r, x0): (usize, usize),
    out: &mut [f32],
) {
    let n = out.len() / LANES;
    let mut rows = [_mm512_setzero_ps(); 16];
    for (c, v) in rows.iter_mut().enumerate().take(channels) {
        let line = &src[c * geo.in_plane() + r * geo.w + x0..][..n];
        // SAFETY: the mask covers the `n` floats of `line`.
        *v = unsafe { _mm512_maskz_loadu_ps(lanes(n), line.as_ptr()) };
    }
    for (at, v) in out.chunks_exact_mut(LANES).zip(&transpose16(rows)) {
        // SAFETY: `at` holds 16 floats.
        unsafe { _mm512_storeu_ps(at.as_mut_ptr(), *v) };
    }
}

/// The second step of both transposes: for rows `a` interleaved in pairs (`[x0 y0 x1 y1]` and
/// `[x2 y2 x3 y3]` per 128-bit block, for two pairs of rows), the four columns `4q + m` of the
/// four rows, `m` in order, per block `q`.
#[inline(always)]
fn pairs64(a: [__m512; 4]) -> [__m512; 4] {
    // SAFETY: casts and unpacks of registers; AVX-512F is enabled in every caller.
    unsafe {
        let (a0, a1) = (_mm512_castps_pd(a[0]), _mm512_castps_pd(a[1]));
        let (a2, a3) = (_mm512_castps_pd(a[2]), _mm512_castps_pd(a[3]));
        [
            _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2)),
            _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3)),
            _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3)),
        ]
    }
}

/// Lane `j` of row `i` becomes lane `i` of row `j`.
#[target_feature(enable = "avx512f")]
pub(in crate::cpu) fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    let mut a = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // b[4g + m], 128-bit block q: column 4q + m of rows 4g..4g + 4.
    let mut b = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let quad = pairs64([a[4 * g], a[4 * g + 1], a[4 * g + 2], a[4 * g + 3]]);
        b[4 * g..4 * g + 4].copy_from_slice(&quad);
    }
    let mut out = [_mm512_setzero_ps(); 16];
    for m in 0..4 {
        let c0 = _mm512_shuffle_f32x4::<0x88>(b[m], b[4 + m]);
        let c1 = _mm512_shuffle_f32x4::<0xDD>(b[m], b[4 + m]);
        let d0 = _mm512_shuffle_f32x4::<0x88>(b[8 + m], b[12 + m]);
        let d1 = _mm512_shuffle_f32x4::<0xDD>(b[8 + m], b[12 + m]);
        out[m] = _mm512_shuffle_f32x4::<0x88>(c0, d0);
        out[8 + m] = _mm512_shuffle_f32x4::<0xDD>(c0, d0);
        out[4 + m] = _mm512_shuffle_f32x4::<0x88>(c1, d1);
        out[12 + m] = _mm512_shuffle_f32x4::<0xDD>(c1, d1);
    }
    out
}

/// Up to [`TILE`] output positions of one image: where each reads the padded input, and the
/// taps and channels they sum over.
pub(super) struct Tile<'a> {
    /// The image's padded blocks, `[c/16][hp][wp][16]`.
    pub input: &'a [f32],
    /// Floats of one channel block.
    pub block: usize,
    pub channels: usize,
    /// Where each tap `(i, j)` reads, from a position's offset.
    pub taps: &'a [usize],
    /// Where each position's window starts in a block.
    pub offsets: [usize; TILE],
    /// The positions of the tile; the offsets past them are unused.
    pub count: usize,
}

/// Computes `tile` for `blocks` output blocks, whose weights start at `weight` `stride` floats
/// apart, and stores output channel `k`'s `count` sums at `rows[k]`, `at` floats on (skipped
/// where null).
///
/// # Safety
/// AVX-512F must be available; each non-null `rows[k] + at` must point at `tile.count`
/// writable floats that nothing else references during the call.
pub(super) unsafe fn multiply(
    tile: &Tile,
    weight: &[f32],
    stride: usize,
    blocks: usize,
    dst: (&[*mut f32; BLOCKS * LANES], usize),
) {
    let in_blocks = tile.channels.div_ceil(LANES);
    let reach = tile.offsets[..tile.count]
        .iter()
        .max()
        .copied()
        .unwrap_or(0)
        + tile.taps.iter().max().copied().unwrap_or(0)
        + LANES;
    assert!((in_blocks - 1) * tile.block + reach <= tile.input.len());
    assert!((1..=BLOCKS).contains(&blocks) && blocks * stride <= weight.len());
    assert!(stride == in_blocks * tile.taps.len() * LANES * LANES);
    assert!((1..=TILE).contains(&tile.count));
    let full = tile.count == TILE;
    // SAFETY: every read of the input and weight lies within the slices (asserted above), and
    // the caller upholds the rest.
    unsafe {
        match (blocks, full) {
            (1, true) => kernel::<1, true>(tile, weight.as_ptr(), stride, dst),
            (1, false) => kernel::<1, false>(tile, weight.as_ptr(), stride, dst),
            (2, true) => kernel::<2, true>(tile, weight.as_ptr(), stride, dst),
            (2, false) => kernel::<2, false>(tile, weight.as_ptr(), stride, dst),
            (_, true) => kernel::<3, true>(tile, weight.as_ptr(), stride, dst),
            (_, false) => kernel::<3, false>(tile, weight.as_ptr(), stride, dst),
        }
    }
}

/// [`multiply`] for `B` output blocks; `FULL` when the tile has all [`TILE`] positions. Each
/// output is one chain of fused multiply-adds over (input block, tap, channel), in that order,
/// whatever the tiling.
///
/// # Safety
/// As [`multiply`], whose assertions hold.
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const B: usize, const FULL: bool>(
    tile: &Tile,
    weight: *const f32,
    stride: usize,
    (rows, at): (&[*mut f32; BLOCKS * LANES], usize),
) {
    // SAFETY: the caller upholds the contract of `multiply`.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); B]; TILE];
        let offsets = tile.offsets;
        let x = tile.input.as_ptr();
        let in_blocks = tile.channels.div_ceil(LANES);
        for ib in 0..in_blocks {
            let channels = LANES.min(tile.channels - ib * LANES);
            let xb = x.add(ib * tile.block);
            for (t, &tap) in tile.taps.iter().enumerate() {
                let xt = xb.add(tap);
                let wt = weight.add((ib * tile.taps.len() + t) * LANES * LANES);
                // A whole block's count known here lets the loop unroll.
                acc = if channels == LANES {
                    channels_of::<B, FULL>(acc, LANES, xt, wt, stride, &offsets, tile.count)
                } else {
                    channels_of::<B, FULL>(acc, channels, xt, wt, stride, &offsets, tile.count)
                };
            }
        }
        for k in 0..B {
            let a = &acc;
            let sums = [
                a[0][k], a[1][k], a[2][k], a[3][k], a[4][k], a[5][k], a[6][k], a[7][k],
            ];
            store(sums, &rows[k * LANES..(k + 1) * LANES], at, tile.count);
        }
    }
}

/// `acc` plus the first `channels` input channels of one tap: per channel, `B` weight vectors
/// times the tile's inputs. The sums go in and out by value, so that they stay in registers.
///
/// # Safety
/// As [`kernel`], inlined into it (and so compiled for AVX-512F).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn channels_of<const B: usize, const FULL: bool>(
    mut acc: [[__m512; B]; TILE],
    channels: usize,
    xt: *const f32,
    wt: *const f32,
    stride: usize,
    offsets: &[usize; TILE],
    count: usize,
) -> [[__m512; B]; TILE] {
    // SAFETY: the caller upholds the contract of `multiply`.
    unsafe {
        for c in 0..channels {
            let mut w = [_mm512_setzero_ps(); B];
            for (k, v) in w.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(wt.add(k * stride + c * LANES));
            }
            for (p, acc) in acc.iter_mut().enumerate() {
                if FULL || p < count {
                    let xv = _mm512_set1_ps(*xt.add(offsets[p] + c));
                    for (a, w) in acc.iter_mut().zip(&w) {
                        *a = _mm512_fmadd_ps(xv, *w, *a);
                    }
                }
            }
        }
    }
    acc
}

/// Stores 8 positions' vectors of 16 channels (`r`) as the first `count` positions of each
/// channel `c` at `dst[c] + at`, skipping null pointers.
///
/// # Safety
/// AVX-512F must be available; each non-null `dst[c] + at` points at `count` writable floats.
#[target_feature(enable = "avx512f")]
pub(in crate::cpu) unsafe fn store(r: [__m512; TILE], dst: &[*mut f32], at: usize, count: usize) {
    let mut a = [_mm512_setzero_ps(); TILE];
    for i in 0..4 {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // b[4h + m], 128-bit block q: channel 4q + m of positions 4h..4h + 4.
    let mut b = [_mm512_setzero_ps(); TILE];
    for h in 0..2 {
        let quad = pairs64([a[4 * h], a[4 * h + 1], a[4 * h + 2], a[4 * h + 3]]);
        b[4 * h..4 * h + 4].copy_from_slice(&quad);
    }
    let lo = lanes(count);
    let hi = lo << 8;
    // Lanes `shift..` of `v` to channel `c`'s row; the masked-off lanes, including the `shift`
    // before the row, are not accessed.
    macro_rules! put {
        ($c:expr, $v:expr, $mask:expr, $shift:expr) => {
            let p = dst[$c];
            if !p.is_null() {
                // SAFETY: `p + at` points at `count` floats, the lanes `$mask` keeps.
                unsafe {
                    _mm512_mask_storeu_ps(p.wrapping_add(at).wrapping_sub($shift), $mask, $v)
                };
            }
        };
    }
    for m in 0..4 {
        // Low half channel m (or 8 + m), high half channel 4 + m (or 12 + m).
        let first = _mm512_shuffle_f32x4::<0xD8>(
            _mm512_shuffle_f32x4::<0x44>(b[m], b[4 + m]),
            _mm512_shuffle_f32x4::<0x44>(b[m], b[4 + m]),
        );
        let second = _mm512_shuffle_f32x4::<0xD8>(
            _mm512_shuffle_f32x4::<0xEE>(b[m], b[4 + m]),
            _mm512_shuffle_f32x4::<0xEE>(b[m], b[4 + m]),
        );
        put!(m, first, lo, 0);
        put!(4 + m, first, hi, 8);
        put!(8 + m, second, lo, 0);
        put!(12 + m, second, hi, 8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(of: impl Fn(usize, usize) -> f32) -> [__m512; 16] {
        std::array::from_fn(|i| {
            let v: [f32; 16] = std::array::from_fn(|j| of(i, j));
            // SAFETY: `v` holds 16 floats.
            unsafe { _mm512_loadu_ps(v.as_ptr()) }
        })
    }

    fn lanes_of(v: __m512) -> [f32; 16] {
        let mut out = [0.0; 16];
        // SAFETY: `out` holds 16 floats.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) };
        out
    }

    /// Both register transposes move every lane where the definition says, on a machine with
    /// AVX-512 (elsewhere the blocked path never runs).
    #[test]
    fn transposes_move_every_lane() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: no AVX-512F here");
            return;
        }
        let value = |i: usize, j: usize| (i * 16 + j) as f32;
        // SAFETY: AVX-512F is present.
        let t = unsafe { transpose16(rows(value)) };
        for (j, v) in t.iter().enumerate() {
            let got = lanes_of(*v);
            for (i, &g) in got.iter().enumerate() {
                assert_eq!(g, value(i, j), "transpose16 row {j} lane {i}");
            }
        }
        for count in 1..=TILE {
            let r = rows(value);
            let positions: [__m512; TILE] = std::array::from_fn(|p| r[p]);
            let mut out = vec![[f32::NAN; TILE + 8]; 16];
            let mut dst: Vec<*mut f32> = out.iter_mut().map(|o| o[8..].as_mut_ptr()).collect();
            dst[5] = std::ptr::null_mut();
            // SAFETY: AVX-512F is present; each pointer has `count` floats, 8 before it.
            unsafe { store(positions, &dst, 0, count) };
            for (c, o) in out.iter().enumerate() {
                for (p, &g) in o[8..].iter().enumerate() {
                    if c == 5 || p >= count {
                        assert!(g.is_nan(), "channel {c} position {p} written");
                    } else {
                        assert_eq!(g, value(p, c), "channel {c} position {p}");
                    }
                }
                assert!(
                    o[..8].iter().all(|v| v.is_nan()),
                    "channel {c} before its row"
                );
            }
        }
    }
}
