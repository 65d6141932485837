//! The AVX-512 transforms of [`super`]: 16 tiles side by side in each vector, one lane a tile.
//! A tile's input columns are every fourth float of its rows from its first one, so the six
//! columns `j` of 16 tiles are gathered from 66 consecutive floats by lane permutes, and the
//! four columns of 16 output tiles are interleaved back the same way.

use super::{SIDE, TILE};
use std::arch::x86_64::{
    __m512, __m512i, _mm512_add_ps, _mm512_alignr_epi32, _mm512_castps_si512, _mm512_castsi512_ps,
    _mm512_fmadd_ps, _mm512_fnmadd_ps, _mm512_loadu_si512, _mm512_mask_blend_ps,
    _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_permutex2var_ps, _mm512_set1_ps,
    _mm512_setzero_ps, _mm512_sub_ps, _mm_prefetch, _MM_HINT_T0,
};

/// The first `n` of 16 lanes.
fn lanes(n: usize) -> u16 {
    if n >= 16 {
        u16::MAX
    } else {
        (1u16 << n) - 1
    }
}

/// The permute indices that gather phase `j` (every fourth float from `j`) of 32 floats into
/// lanes 0-7, and of the next 32 into lanes 8-15.
const PHASES: [[i32; 16]; 4] = [phase(0), phase(1), phase(2), phase(3)];
/// The permute indices that interleave lanes `8h..8h + 8` of two vectors one by one.
const PAIRS: [[i32; 16]; 2] = [interleave(0, 1), interleave(1, 1)];
/// The same, two lanes at a time.
const QUADS: [[i32; 16]; 2] = [interleave(0, 2), interleave(1, 2)];

const fn phase(j: i32) -> [i32; 16] {
    let mut out = [0; 16];
    let mut l = 0;
    while l < 16 {
        out[l] = j + 4 * (l as i32 % 8);
        l += 1;
    }
    out
}

/// Lanes `8h..8h + 8` of a vector and of another (indices 16 on), `width` from each in turn.
const fn interleave(half: i32, width: i32) -> [i32; 16] {
    let mut out = [0; 16];
    let mut l = 0;
    while l < 16 {
        let (group, within) = (l as i32 / (2 * width), l as i32 % (2 * width));
        let second = if within >= width { 16 } else { 0 };
        out[l] = 8 * half + group * width + within % width + second;
        l += 1;
    }
    out
}

/// A table of permute indices as a vector.
#[inline(always)]
unsafe fn table(indices: &[i32; 16]) -> __m512i {
    // SAFETY: the caller has AVX-512F; the table holds 16 indices.
    unsafe { _mm512_loadu_si512(indices.as_ptr().cast()) }
}

/// The lanes of a 16-float load at `start` (relative to a row of `len` floats) that fall
/// inside the row.
pub(super) fn inside(start: isize, len: usize) -> u16 {
    let lo = (-start).clamp(0, 16);
    let hi = (len as isize - start).clamp(0, 16);
    if hi <= lo {
        return 0;
    }
    (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as u16
}

/// Where 16 tiles of a row of tiles read their input columns: the first column `x0` (negative
/// inside the left padding), and the lanes of the six loads from `x0`, `x0 + 16`, `x0 + 32`,
/// `x0 + 48`, `x0 + 64` and `x0 + 65` that lie inside the input row.
#[derive(Clone, Copy)]
pub(super) struct Columns {
    pub x0: isize,
    pub masks: [u16; 6],
}

impl Columns {
    pub fn new(x0: isize, width: usize) -> Columns {
        let offsets = [0, 16, 32, 48, 64, 65];
        Columns {
            x0,
            masks: offsets.map(|o| inside(x0 + o, width)),
        }
    }
}

/// `B^T d` of one row of six values per lane: the input transform along one axis.
#[inline(always)]
unsafe fn input_1d(d: [__m512; SIDE]) -> [__m512; SIDE] {
    // SAFETY: the caller has AVX-512F (every caller is a `target_feature` function).
    unsafe {
        let four = _mm512_set1_ps(4.0);
        let five = _mm512_set1_ps(5.0);
        let two = _mm512_set1_ps(2.0);
        // Rows 1-4 of B^T share (d4 - 4 d2, d3 - 4 d1) and (d4 - d2, d3 - d1).
        let a = _mm512_fnmadd_ps(four, d[2], d[4]);
        let b = _mm512_fnmadd_ps(four, d[1], d[3]);
        let c = _mm512_sub_ps(d[4], d[2]);
        let e = _mm512_sub_ps(d[3], d[1]);
        [
            _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4])),
            _mm512_add_ps(a, b),
            _mm512_sub_ps(a, b),
            _mm512_fmadd_ps(two, e, c),
            _mm512_fnmadd_ps(two, e, c),
            _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5])),
        ]
    }
}

/// `A^T m` of six values per lane: the output transform along one axis.
#[inline(always)]
unsafe fn output_1d(m: [__m512; SIDE]) -> [__m512; 4] {
    // SAFETY: as in `input_1d`.
    unsafe {
        let a = _mm512_add_ps(m[1], m[2]);
        let b = _mm512_sub_ps(m[1], m[2]);
        let c = _mm512_add_ps(m[3], m[4]);
        let d = _mm512_sub_ps(m[3], m[4]);
        [
            _mm512_add_ps(_mm512_add_ps(m[0], a), c),
            _mm512_fmadd_ps(_mm512_set1_ps(2.0), d, b),
            _mm512_fmadd_ps(_mm512_set1_ps(4.0), c, a),
            _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0), d, b), m[5]),
        ]
    }
}

/// Columns `4t + j` (`j` in 0..6) of 16 tiles `t` of input row `row`, read at `cols`.
///
/// # Safety
/// AVX-512F must be available, and `row` must be readable at every lane `cols` keeps.
#[inline(always)]
unsafe fn gather_row(row: *const f32, cols: &Columns) -> [__m512; SIDE] {
    // SAFETY: masked-off lanes are not read (nor fault), and the caller vouches for the others.
    unsafe {
        let load = |k: usize, off: isize| {
            _mm512_maskz_loadu_ps(cols.masks[k], row.wrapping_offset(cols.x0 + off))
        };
        let l = [load(0, 0), load(1, 16), load(2, 32), load(3, 48)];
        // Lanes 0-7 take phase j of the first 32 floats, lanes 8-15 of the next 32.
        let phase = |j: usize| {
            let idx = table(&PHASES[j]);
            let lo = _mm512_permutex2var_ps(l[0], idx, l[1]);
            let hi = _mm512_permutex2var_ps(l[2], idx, l[3]);
            _mm512_mask_blend_ps(0xFF00, lo, hi)
        };
        let d0 = phase(0);
        let d1 = phase(1);
        // Columns 4 and 5 are the next tile's 0 and 1, the last lane from past the 64 floats.
        let next = |d: __m512, extra: __m512| {
            _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(
                _mm512_castps_si512(extra),
                _mm512_castps_si512(d),
            ))
        };
        let d4 = next(d0, load(4, 64));
        let d5 = next(d1, load(5, 65));
        [d0, d1, phase(2), phase(3), d4, d5]
    }
}

/// One input channel: `h` rows of `w` floats from `at`.
#[derive(Clone, Copy)]
pub(super) struct Plane {
    pub at: *const f32,
    pub h: usize,
    pub w: usize,
}

impl Plane {
    /// Asks for rows `rows` (clipped to the plane) to be brought into the cache: the channels
    /// of a band are planes far apart, whose short rows the hardware prefetcher does not
    /// follow from one channel to the next.
    pub fn prefetch(&self, (first, end): (isize, isize)) {
        let (first, end) = (
            first.max(0) as usize,
            end.clamp(0, self.h as isize) as usize,
        );
        for y in first..end.max(first) {
            for x in (0..self.w).step_by(16) {
                // SAFETY: a prefetch reads nothing and never faults; the address is in the plane.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(self.at.wrapping_add(y * self.w + x).cast()) };
            }
        }
    }
}

/// The transformed input `Bᵀ d B` of a run of 16 tiles of one channel `plane` in each of
/// `tile_rows` tile rows, whose windows start at input row `top` (negative inside the top
/// padding) and 4 rows further for each next one. Element `xi` of tile row `k` is written at
/// `v + k·row_step + xi·stride`, the first `count` lanes. A tile row's last two input rows are
/// the next one's first two, transformed once.
///
/// # Safety
/// AVX-512F must be available; `plane` must be readable, and `v` writable for `count` floats at
/// each `k·row_step + xi·stride`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn input_tiles(
    plane: &Plane,
    (top, tile_rows): (isize, usize),
    cols: &Columns,
    v: *mut f32,
    (stride, row_step): (usize, usize),
    count: usize,
) {
    // SAFETY: the caller upholds the contract under `# Safety` above; a row is read only
    // inside the plane, at the lanes `cols` keeps inside it.
    unsafe {
        let row = |y: isize| {
            if (0..plane.h as isize).contains(&y) {
                input_1d(gather_row(plane.at.add(y as usize * plane.w), cols))
            } else {
                [_mm512_setzero_ps(); SIDE]
            }
        };
        let keep = lanes(count);
        let mut t = [[_mm512_setzero_ps(); SIDE]; SIDE];
        for k in 0..tile_rows {
            let y0 = top + (TILE * k) as isize;
            if k == 0 {
                t[0] = row(y0);
                t[1] = row(y0 + 1);
            } else {
                t[0] = t[TILE];
                t[1] = t[TILE + 1];
            }
            for (i, ti) in t.iter_mut().enumerate().skip(2) {
                *ti = row(y0 + i as isize);
            }
            let at = v.add(k * row_step);
            for x in 0..SIDE {
                let column = input_1d(t.map(|ti| ti[x]));
                for (y, value) in column.into_iter().enumerate() {
                    _mm512_mask_storeu_ps(at.add((y * SIDE + x) * stride), keep, value);
                }
            }
        }
    }
}

/// The output `A^T m A` of 16 tiles of one channel, whose 36 transformed elements lie in `m`
/// at `xi * stride` (the first `count` lanes), stored into output rows `rows` (`None` past the
/// output's last row) from column `x0`, the lanes `keep[k]` of each of their four vectors.
///
/// # Safety
/// AVX-512F must be available; `m` must be readable for `count` floats at each `xi * stride`,
/// and each row writable at the lanes `keep` gives.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn output_tiles(
    m: *const f32,
    stride: usize,
    count: usize,
    rows: [Option<*mut f32>; 4],
    keep: [u16; 4],
) {
    // SAFETY: the caller upholds the contract under `# Safety` above.
    unsafe {
        let lanes = lanes(count);
        let mut t = [[_mm512_setzero_ps(); 4]; SIDE];
        for (y, ty) in t.iter_mut().enumerate() {
            let row: [__m512; SIDE] = std::array::from_fn(|x| {
                _mm512_maskz_loadu_ps(lanes, m.add((y * SIDE + x) * stride))
            });
            *ty = output_1d(row);
        }
        // `columns[c][r]` is output row `r`, column `c` of each tile.
        let columns: [[__m512; 4]; 4] = std::array::from_fn(|c| output_1d(t.map(|ty| ty[c])));
        for (r, out) in rows.into_iter().enumerate() {
            let Some(out) = out else { continue };
            let y: [__m512; 4] = std::array::from_fn(|c| columns[c][r]);
            let (p01, p23) = (table(&PAIRS[0]), table(&PAIRS[1]));
            let q01 = [
                _mm512_permutex2var_ps(y[0], p01, y[1]),
                _mm512_permutex2var_ps(y[0], p23, y[1]),
            ];
            let q23 = [
                _mm512_permutex2var_ps(y[2], p01, y[3]),
                _mm512_permutex2var_ps(y[2], p23, y[3]),
            ];
            for k in 0..4 {
                let v = _mm512_permutex2var_ps(q01[k / 2], table(&QUADS[k % 2]), q23[k / 2]);
                _mm512_mask_storeu_ps(out.wrapping_add(16 * k), keep[k], v);
            }
        }
    }
}
