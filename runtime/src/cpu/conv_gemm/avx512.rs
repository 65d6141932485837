//! The AVX-512 side of [`super::ConvGemm`]: the 8x48 register-blocked kernel, the narrow
//! kernel for a few columns, and the packing of the weight they read.

use super::super::strided::transpose8;
use super::{Columns, KC, MR, NR};
use rayon::prelude::*;
use std::arch::x86_64::{
    __m256, __m512, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps,
    _mm256_storeu_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_loadu_ps,
    _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_storeu_ps, _mm_prefetch,
    _MM_HINT_T0,
};

/// Columns below which [`narrow`] runs instead of the kernel, which would multiply mostly
/// zero padding (a squeeze-excite block's 1x1 convs have one column).
const NARROW: usize = 8;

/// Row blocks [`narrow`] accumulates at once, so the chains of dependent FMAs overlap.
const BLOCKS: usize = 4;

// `narrow` holds a block's rows in one 8-lane vector.
const _: () = assert!(MR == 8);

/// [`multiply`] for fewer than [`NARROW`] columns, one column at a time: each output is
/// the FMA chain over `p` from zero that the kernel computes for it, so results do not
/// depend on how a convolution's columns were cut into tiles.
///
/// # Safety
/// AVX and FMA must be available.
#[target_feature(enable = "avx,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn narrow(
    packed: &[f32],
    k: usize,
    r0: usize,
    b: &[f32],
    rows: &[usize],
    columns: Columns,
    n: usize,
    out: &mut [&mut [f32]],
) {
    let m = out.len();
    let blocks = m.div_ceil(MR);
    let a = &packed[r0 / MR * k * MR..(r0 / MR + blocks) * k * MR];
    for (j, at) in (0..n).map(|j| (j, columns.place(j).0)) {
        for q0 in (0..blocks).step_by(BLOCKS) {
            let mut acc = [_mm256_setzero_ps(); BLOCKS];
            let here = BLOCKS.min(blocks - q0);
            for (p, &r) in rows.iter().enumerate() {
                let x = _mm256_set1_ps(b[r + at]);
                for (q, acc) in acc.iter_mut().enumerate().take(here) {
                    let w = &a[((q0 + q) * k + p) * MR..][..MR];
                    // SAFETY: `w` holds `MR` = 8 floats.
                    let w = unsafe { _mm256_loadu_ps(w.as_ptr()) };
                    *acc = _mm256_fmadd_ps(w, x, *acc);
                }
            }
            for (q, acc) in acc.iter().enumerate().take(here) {
                let mut lanes = [0.0f32; MR];
                // SAFETY: `lanes` holds 8 floats.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *acc) };
                let i0 = (q0 + q) * MR;
                for (i, &v) in lanes.iter().enumerate().take(m - i0) {
                    out[i0 + i][j] = v;
                }
            }
        }
    }
}

/// `weight` (`rows × k`) in blocks of [`MR`] rows, each stored `[k][MR]`, in a buffer of the
/// run's pool where `pooled` (for a caller that gives it back).
pub fn pack_rows(weight: &[f32], rows: usize, k: usize, pooled: bool) -> Vec<f32> {
    /// Floats past which the blocks are packed in parallel: a MatMul packs its left operand on
    /// every run, and ViT-S's `fc2` (257 x 1536) took one thread 0.1 ms while the other waited.
    const PARALLEL: usize = 1 << 16;
    let blocks = rows.div_ceil(MR);
    let mut packed = if pooled {
        super::super::buffers::reuse(blocks * k * MR)
    } else {
        vec![0.0; blocks * k * MR]
    };
    if k == 0 {
        return packed;
    }
    let pack = |(b, block): (usize, &mut [f32])| {
        let first = b * MR;
        let rows = &weight[first * k..rows.min(first + MR) * k];
        if rows.len() == MR * k {
            // SAFETY: an `Isa` with AVX-512F, the only way into this module, has AVX.
            unsafe { transposed(rows, k, block) };
            return;
        }
        // The rows past the weight's are zeros: the kernel multiplies them too.
        block.fill(0.0);
        for (r, row) in rows.chunks_exact(k).enumerate() {
            for (p, &v) in row.iter().enumerate() {
                block[p * MR + r] = v;
            }
        }
    };
    if packed.len() < PARALLEL {
        packed.chunks_exact_mut(k * MR).enumerate().for_each(pack);
    } else {
        packed
            .par_chunks_exact_mut(k * MR)
            .enumerate()
            .for_each(pack);
    }
    packed
}

/// `block[p·8 + r] = rows[r·k + p]` for the 8 rows of `rows`, 8 depths at a time by an 8x8
/// transpose in registers: element by element, the stores 32 bytes apart made packing ViT-S's
/// attention scores (6 x 257 x 257, on every run) take as long as multiplying them.
///
/// # Safety
/// AVX must be available.
#[target_feature(enable = "avx")]
unsafe fn transposed(rows: &[f32], k: usize, block: &mut [f32]) {
    assert!(rows.len() == MR * k && block.len() == MR * k);
    let whole = k / 8 * 8;
    for p0 in (0..whole).step_by(8) {
        // SAFETY: row `r`'s 8 floats from `p0` lie in `rows` (`p0 + 8 <= k`), and the 64
        // floats from `p0·8` in `block`.
        unsafe {
            let r: [__m256; 8] =
                std::array::from_fn(|i| _mm256_loadu_ps(rows.as_ptr().add(i * k + p0)));
            let out = transpose8(r);
            for (q, v) in out.into_iter().enumerate() {
                _mm256_storeu_ps(block.as_mut_ptr().add((p0 + q) * MR), v);
            }
        }
    }
    for p in whole..k {
        for r in 0..MR {
            block[p * MR + r] = rows[r * k + p];
        }
    }
}

/// Where a panel's vectors start in each row of `b`, the lanes of each that lie past one,
/// two and three row ends, and how far on a row end moves (see [`Columns::Rows`]).
#[derive(Clone, Copy)]
struct Panel {
    start: [usize; 3],
    breaks: [[u16; 3]; 3],
    gap: usize,
    /// The lanes of the last vector the kernel reads and writes in `c`.
    keep: u16,
}

impl Panel {
    fn new(columns: Columns, j0: usize) -> Panel {
        let mut panel = Panel {
            start: [0; 3],
            breaks: [[0; 3]; 3],
            gap: columns.gap(),
            keep: u16::MAX,
        };
        for v in 0..3 {
            let (start, breaks) = columns.place(j0 + 16 * v);
            panel.start[v] = start;
            for (t, b) in breaks.into_iter().enumerate() {
                panel.breaks[t][v] = b;
            }
        }
        panel
    }

    /// The row ends the first `vectors` vectors cross, at most.
    fn crossings(&self, vectors: usize) -> usize {
        self.breaks
            .iter()
            .take_while(|b| b[..vectors].iter().any(|&m| m != 0))
            .count()
    }
}

/// See [`super::ConvGemm::multiply_columns`]; `packed` is the whole packed weight.
#[allow(clippy::too_many_arguments)]
pub fn multiply(
    packed: &[f32],
    k: usize,
    r0: usize,
    b: &[f32],
    rows: &[usize],
    columns: Columns,
    n: usize,
    out: &mut [&mut [f32]],
) {
    if n < NARROW {
        // SAFETY: an `Isa` with AVX-512F also has AVX2 and FMA, and gates this module.
        return unsafe { narrow(packed, k, r0, b, rows, columns, n, out) };
    }
    // A last panel of fewer than `NARROW` columns goes to `narrow` too, which loads one
    // broadcast per column where the kernel loads one per row for a whole vector: the last
    // 4 columns of a 10x10 output took a fifth of its time. Both compute each output as the
    // same chain of FMAs, so the results do not change.
    let tail = if n > NR && n % NR < NARROW { n % NR } else { 0 };
    if tail > 0 {
        let main = n - tail;
        let (at, rest) = columns.after(main);
        let mut ends: Vec<&mut [f32]> = out.iter_mut().map(|row| &mut row[main..]).collect();
        // SAFETY: as above.
        unsafe { narrow(packed, k, r0, &b[at..], rows, rest, tail, &mut ends) };
    }
    let n = n - tail;
    let m = out.len();
    let mut tile = [[0.0f32; NR]; MR];
    // With contiguous columns, the last panel of `b` when it is narrower than `NR`,
    // zero-padded, and its row offsets; rows of output positions are read in place, since
    // `b` holds their slack, and packed panels too, which are padded already.
    let mut ragged = Vec::new();
    let ragged_rows: [usize; KC] = std::array::from_fn(|p| p * NR);
    let in_place = !matches!(columns, Columns::Contiguous);
    // Packed panels lie one after another, which the hardware prefetcher follows.
    let prefetches = !matches!(columns, Columns::Panels { .. });
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        // The furthest row of this depth: checking each panel's reach against it alone
        // keeps the bounds check out of the panels' loop over rows.
        let last_row = rows[k0..k0 + kc].iter().copied().max().unwrap_or(0);
        for (j0, w) in (0..n).step_by(NR).map(|j0| (j0, NR.min(n - j0))) {
            let vectors = w.div_ceil(16);
            let (panel, offsets, last, mut at) = if w == NR || in_place {
                (b, &rows[k0..k0 + kc], last_row, Panel::new(columns, j0))
            } else {
                ragged.resize(kc * NR, 0.0);
                for (dst, &r) in ragged.chunks_exact_mut(NR).zip(&rows[k0..k0 + kc]) {
                    dst[..w].copy_from_slice(&b[r + j0..][..w]);
                    dst[w..].fill(0.0);
                }
                let at = Panel::new(Columns::Contiguous, 0);
                (&ragged[..kc * NR], &ragged_rows[..kc], (kc - 1) * NR, at)
            };
            at.keep = u16::MAX >> (16 * vectors - w);
            let crossings = at.crossings(vectors);
            let reach = at.start[vectors - 1] + 16 + crossings * at.gap;
            assert!(last + reach <= panel.len());
            for i0 in (0..m).step_by(MR) {
                let rows = MR.min(m - i0);
                // The output's rows take the result directly, the last vector masked to the
                // panel's width; rows past the weight's go to `tile`.
                let mut c = [std::ptr::null_mut::<f32>(); MR];
                for (i, (ci, t)) in c.iter_mut().zip(tile.iter_mut()).enumerate() {
                    *ci = if i < rows {
                        out[i0 + i][j0..j0 + w].as_mut_ptr()
                    } else {
                        t.as_mut_ptr()
                    };
                }
                let a = &packed[(r0 + i0) / MR * k * MR + k0 * MR..][..kc * MR];
                let (a, panel) = (a.as_ptr(), panel.as_ptr());
                let load = k0 > 0;
                let prefetch = prefetches && i0 == 0 && j0 + w < n;
                // SAFETY: AVX-512F is present (a packed weight, the only way into this
                // module, is made only for an `Isa` with it), `a` holds `kc` rows of `MR`,
                // `panel` holds the first `vectors` vectors of the panel, with the row ends
                // they cross, from each of the `kc` offsets, none past `last` (asserted
                // above), and each `c[i]` points at `w` floats of its own, the lanes `at`
                // keeps: a row of `tile` or a distinct row of `out`.
                unsafe {
                    match (vectors, crossings) {
                        (1, 0) => kernel::<1, 0>(a, panel, offsets, &at, &c, load, false),
                        (1, 1) => kernel::<1, 1>(a, panel, offsets, &at, &c, load, false),
                        (1, 2) => kernel::<1, 2>(a, panel, offsets, &at, &c, load, false),
                        (1, _) => kernel::<1, 3>(a, panel, offsets, &at, &c, load, false),
                        (2, 0) => kernel::<2, 0>(a, panel, offsets, &at, &c, load, false),
                        (2, 1) => kernel::<2, 1>(a, panel, offsets, &at, &c, load, false),
                        (2, 2) => kernel::<2, 2>(a, panel, offsets, &at, &c, load, false),
                        (2, _) => kernel::<2, 3>(a, panel, offsets, &at, &c, load, false),
                        (_, 0) => kernel::<3, 0>(a, panel, offsets, &at, &c, load, prefetch),
                        (_, 1) => kernel::<3, 1>(a, panel, offsets, &at, &c, load, prefetch),
                        (_, 2) => kernel::<3, 2>(a, panel, offsets, &at, &c, load, prefetch),
                        (_, _) => kernel::<3, 3>(a, panel, offsets, &at, &c, load, prefetch),
                    }
                };
            }
        }
    }
}

/// `c[i] = a · b` (or `c[i] += a · b` with `load`) for `a` `[kc][MR]` and `b` the `kc`
/// rows at `rows` (`kc` offsets), over the first `V` 16-float vectors of each row, which
/// start `at.start` into it and cross `C` row ends (the lanes of `at.breaks` are read
/// `at.gap` further on per end crossed); `c[i]` is row `i`'s output, of which the first
/// `V - 1` vectors and the lanes `at.keep` of the last are read (with `load`) and written.
/// With `prefetch`, it also asks for the next panel (the `NR` floats after each row's) to
/// be brought into L1 while it computes: a panel's rows are up to `KC` separate streams
/// (one per channel and tap row), more than the hardware prefetcher follows, and without
/// this a 64->16 3x3 convolution at 320x320 waited on memory for most of its time
/// (24.1 -> 10.5 ms).
///
/// # Safety
/// AVX-512F must be available; `V` and `C` at most 3; `a` must be readable for
/// `rows.len() * MR` floats, `b` for `at.start[V - 1] + 16 + C·at.gap` floats from each
/// offset in `rows`, and each `c[i]` readable and writable for the `16·(V - 1)` floats and
/// the lanes `at.keep` of the vector after them, which nothing else references during the
/// call.
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const V: usize, const C: usize>(
    a: *const f32,
    b: *const f32,
    rows: &[usize],
    at: &Panel,
    c: &[*mut f32; MR],
    load: bool,
    prefetch: bool,
) {
    // SAFETY: the caller upholds the contract under `# Safety` above.
    unsafe {
        let mut acc: [[__m512; V]; MR] = [[_mm512_set1_ps(0.0); V]; MR];
        if load {
            for (ai, &ci) in acc.iter_mut().zip(c) {
                for (j, v) in ai.iter_mut().enumerate() {
                    *v = if j + 1 == V {
                        _mm512_maskz_loadu_ps(at.keep, ci.add(16 * j))
                    } else {
                        _mm512_loadu_ps(ci.add(16 * j))
                    };
                }
            }
        }
        for (p, &row) in rows.iter().enumerate() {
            let bp = b.add(row);
            if prefetch {
                // A prefetch never faults, so the address may lie past `b`'s end.
                for q in [NR, NR + 16, NR + 32, NR + 47] {
                    _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(at.start[0] + q).cast());
                }
            }
            let mut bv = [_mm512_set1_ps(0.0); V];
            for (j, v) in bv.iter_mut().enumerate() {
                let p = bp.add(at.start[j]);
                *v = _mm512_loadu_ps(p);
                for (t, breaks) in at.breaks.iter().enumerate().take(C) {
                    *v = _mm512_mask_loadu_ps(*v, breaks[j], p.add((t + 1) * at.gap));
                }
            }
            let ap = a.add(p * MR);
            for (i, ai) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(i));
                for (v, b) in ai.iter_mut().zip(&bv) {
                    *v = _mm512_fmadd_ps(av, *b, *v);
                }
            }
        }
        for (ai, &ci) in acc.iter().zip(c) {
            for (j, v) in ai.iter().enumerate() {
                if j + 1 == V {
                    _mm512_mask_storeu_ps(ci.add(16 * j), at.keep, *v);
                } else {
                    _mm512_storeu_ps(ci.add(16 * j), *v);
                }
            }
        }
    }
}
