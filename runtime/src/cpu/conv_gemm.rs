//! The GEMM of one convolution tile, `out[m × n] = W[rows] · cols[k × n]`, with the weights
//! packed once per convolution. On x86-64 with AVX-512 an 8×48 register-blocked kernel does the
//! work (the `gemm` crate only uses AVX-512 on nightly Rust, and convolutions are most of a
//! vision model's time); elsewhere the `gemm` crate does.

use super::gemm::{matmul_strided, Threads, View};
use super::isa::Isa;
use std::borrow::Cow;

/// Rows of the weight a kernel call covers; row blocks of a tile start at multiples of this.
pub(crate) const MR: usize = 8;
/// Columns a kernel call covers; `cols` rows are padded to a multiple of this.
pub(crate) const NR: usize = 48;
/// Depth of one pass over a 48-column panel, so the panel (`KC × NR` floats) stays in L1.
const KC: usize = 128;

/// Where the GEMM's columns lie in each row of its right-hand side.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Columns {
    /// Column `j` of a row at offset `r` is `b[r + j]`.
    Contiguous,
    /// The columns are output positions `first..` of an output `width` positions wide, read
    /// from a padded input whose rows are `stride` apart: position `y·width + x` of a row at
    /// offset `r` is `b[r + y·stride + x]`. The padding columns between the rows are never
    /// computed (a 20x20 output's are 10% of the work, a 10x10's 20%): a vector of 16
    /// positions that crosses a row is loaded in pieces. `width` is at least [`MIN_WIDTH`],
    /// and `b` must hold [`Columns::slack`] readable floats past its last position.
    Rows {
        first: usize,
        width: usize,
        stride: usize,
    },
}

/// The narrowest output [`Columns::Rows`] takes: a vector of 16 positions then crosses at
/// most three rows' ends.
pub(crate) const MIN_WIDTH: usize = 6;

impl Columns {
    /// The floats past the last position's place that a read of a whole panel may touch.
    pub fn slack(width: usize, stride: usize) -> usize {
        NR + 3 * stride.saturating_sub(width)
    }

    /// The offset of column `j` in a row, and the lanes of the 16 from it that lie past one,
    /// two and three row ends (each of which is `stride - width` further on).
    fn place(self, j: usize) -> (usize, [u16; 3]) {
        match self {
            Columns::Contiguous => (j, [0; 3]),
            Columns::Rows {
                first,
                width,
                stride,
            } => {
                let p = first + j;
                let (y, x) = (p / width, p % width);
                let mut breaks = [0u16; 3];
                for (t, b) in breaks.iter_mut().enumerate() {
                    let lane = width - x + t * width;
                    if lane < 16 {
                        *b = u16::MAX << lane;
                    }
                }
                (y * stride + x, breaks)
            }
        }
    }

    /// The columns from `j` on: where they start in `b`, and how they lie from there.
    fn after(self, j: usize) -> (usize, Columns) {
        match self {
            Columns::Contiguous => (j, Columns::Contiguous),
            Columns::Rows {
                first,
                width,
                stride,
            } => (
                0,
                Columns::Rows {
                    first: first + j,
                    width,
                    stride,
                },
            ),
        }
    }

    /// The distance a row end adds.
    fn gap(self) -> usize {
        match self {
            Columns::Contiguous => 0,
            Columns::Rows { width, stride, .. } => stride - width,
        }
    }
}

/// One group's weight, `[og × k]` row-major, ready for [`ConvGemm::multiply`].
pub(crate) struct ConvGemm<'a> {
    weight: &'a [f32],
    k: usize,
    /// The weight in blocks of [`MR`] rows, each stored `[k][MR]` (zero rows pad the last),
    /// when the AVX-512 kernel runs: only made for an [`Isa`] with AVX-512, which makes this
    /// field the proof the kernel may run.
    #[cfg(target_arch = "x86_64")]
    packed: Option<Cow<'a, [f32]>>,
}

/// Every group's weight of a convolution as [`ConvGemm`] packs it, made once when a plan is
/// built for a constant weight: packing on every call cost small layers (a squeeze-excite
/// block's 1x1 convs over one pixel) most of their time.
#[derive(Debug)]
pub(crate) struct PackedWeights {
    groups: Vec<Vec<f32>>,
    rows: usize,
    k: usize,
}

impl PackedWeights {
    /// The packed form of `groups` weights of `rows × k` each, laid one after another in
    /// `weight`, or `None` where [`ConvGemm`] does not pack on `isa`.
    pub fn new(
        weight: &[f32],
        groups: usize,
        rows: usize,
        k: usize,
        isa: Isa,
    ) -> Option<PackedWeights> {
        #[cfg(target_arch = "x86_64")]
        if k > 0 && weight.len() == groups * rows * k && isa.avx512() {
            let packed = weight
                .chunks_exact(rows * k)
                .map(|w| avx512::pack_rows(w, rows, k));
            return Some(PackedWeights {
                groups: packed.collect(),
                rows,
                k,
            });
        }
        let _ = (weight, groups, rows, k, isa);
        None
    }
}

impl<'a> ConvGemm<'a> {
    pub fn new(weight: &'a [f32], rows: usize, k: usize, isa: Isa) -> ConvGemm<'a> {
        ConvGemm {
            weight,
            k,
            #[cfg(target_arch = "x86_64")]
            packed: (k > 0 && isa.avx512()).then(|| Cow::Owned(avx512::pack_rows(weight, rows, k))),
        }
    }

    /// Group `group`'s weight (`weight`, `rows × k`), taken from `packed` when that holds it.
    pub fn with_packed(
        weight: &'a [f32],
        rows: usize,
        k: usize,
        isa: Isa,
        packed: Option<&'a PackedWeights>,
        group: usize,
    ) -> ConvGemm<'a> {
        let packed = packed
            .filter(|p| (p.rows, p.k) == (rows, k))
            .and_then(|p| p.groups.get(group));
        match packed {
            #[cfg(target_arch = "x86_64")]
            Some(p) => ConvGemm {
                weight,
                k,
                packed: Some(Cow::Borrowed(p)),
            },
            _ => ConvGemm::new(weight, rows, k, isa),
        }
    }

    /// `out[i] = W[r0 + i] · B` for each of the `out.len()` rows, where row `p` of `B` is the
    /// `n` floats of `b` from `rows[p]` (one offset per row of the weight), every row of `out`
    /// has `n` floats and `r0` is a multiple of [`MR`].
    pub fn multiply(&self, r0: usize, b: &[f32], rows: &[usize], n: usize, out: &mut [&mut [f32]]) {
        self.multiply_columns(r0, b, rows, Columns::Contiguous, n, out);
    }

    /// [`ConvGemm::multiply`] with `B`'s row `p` the `n` columns that `columns` places from
    /// `rows[p]`.
    pub fn multiply_columns(
        &self,
        r0: usize,
        b: &[f32],
        rows: &[usize],
        columns: Columns,
        n: usize,
        out: &mut [&mut [f32]],
    ) {
        let m = out.len();
        let reach = match columns {
            Columns::Contiguous => n,
            Columns::Rows { width, stride, .. } => {
                assert!(width >= MIN_WIDTH && stride >= width);
                columns.place(n.saturating_sub(1)).0 + Columns::slack(width, stride)
            }
        };
        assert!(
            r0.is_multiple_of(MR)
                && rows.len() == self.k
                && out.iter().all(|row| row.len() == n)
                && (n == 0 || rows.iter().all(|&r| r + reach <= b.len()))
        );
        if m == 0 || n == 0 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(packed) = &self.packed {
            return avx512::multiply(packed, self.k, r0, b, rows, columns, n, out);
        }
        // The gemm crate takes a strided matrix: gather the rows unless they are one already.
        // (Rows that go backwards are gathered: a matrix's stride is not negative here.)
        let stride = match rows {
            [first, second, ..] => second.checked_sub(*first),
            _ => Some(n),
        };
        let stride = stride
            .filter(|&s| rows.windows(2).all(|w| w[0].checked_add(s) == Some(w[1])))
            .filter(|_| matches!(columns, Columns::Contiguous));
        let gathered: Vec<f32>;
        let rhs = if let Some(stride) = stride {
            View::rows(&b[rows.first().copied().unwrap_or(0)..], stride)
        } else {
            // Row by row as whole-slice copies: a flattening iterator copied one float at a
            // time and took a quarter of PP-OCRv4 det's time on an AVX2 machine.
            let mut g = Vec::with_capacity(rows.len() * n);
            for &r in rows {
                match columns {
                    Columns::Contiguous => g.extend_from_slice(&b[r..r + n]),
                    Columns::Rows {
                        first,
                        width,
                        stride,
                    } => {
                        for p in first..first + n {
                            let at = r + p / width * stride + p % width;
                            g.push(b[at]);
                        }
                    }
                }
            }
            gathered = g;
            View::rows(&gathered, n)
        };
        let lhs = View::rows(&self.weight[r0 * self.k..(r0 + m) * self.k], self.k);
        let mut acc = vec![0.0; m * n];
        matmul_strided(m, n, self.k, lhs, rhs, &mut acc, false, Threads::Single);
        for (row, a) in out.iter_mut().zip(acc.chunks_exact(n)) {
            row.copy_from_slice(a);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Columns, KC, MR, NR};
    use std::arch::x86_64::{
        __m512, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps,
        _mm256_storeu_ps, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_loadu_ps,
        _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_set1_ps, _mm512_storeu_ps,
        _mm_prefetch, _MM_HINT_T0,
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

    pub fn pack_rows(weight: &[f32], rows: usize, k: usize) -> Vec<f32> {
        let blocks = rows.div_ceil(MR);
        let mut packed = vec![0.0; blocks * k * MR];
        for (r, row) in weight.chunks_exact(k).take(rows).enumerate() {
            let block = &mut packed[(r / MR) * k * MR..];
            for (p, &v) in row.iter().enumerate() {
                block[p * MR + r % MR] = v;
            }
        }
        packed
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
        // `b` holds their slack.
        let mut ragged = Vec::new();
        let ragged_rows: [usize; KC] = std::array::from_fn(|p| p * NR);
        let in_place = matches!(columns, Columns::Rows { .. });
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            // The furthest row of this depth: checking each panel's reach against it alone
            // keeps the bounds check out of the panels' loop over rows.
            let last_row = rows[k0..k0 + kc].iter().copied().max().unwrap_or(0);
            for (j0, w) in (0..n).step_by(NR).map(|j0| (j0, NR.min(n - j0))) {
                let vectors = w.div_ceil(16);
                let (panel, offsets, last, at) = if w == NR || in_place {
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
                let mut at = at;
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
                    let prefetch = i0 == 0 && j0 + w < n;
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
    /// `at.gap` further on per end crossed); `c[i]` holds row `i`'s `NR` floats, of which the
    /// first `16·V` are written.
    /// With `prefetch`, it also asks for the next panel (the `NR` floats after each row's) to
    /// be brought into L1 while it computes: a panel's rows are up to `KC` separate streams
    /// (one per channel and tap row), more than the hardware prefetcher follows, and without
    /// this a 64->16 3x3 convolution at 320x320 waited on memory for most of its time
    /// (24.1 -> 10.5 ms).
    ///
    /// # Safety
    /// AVX-512F must be available; `V` and `C` at most 3; `a` must be readable for
    /// `rows.len() * MR` floats, `b` for `at.start[V - 1] + 16 + C·at.gap` floats from each
    /// offset in `rows`, and each `c[i]` readable and writable for `NR` floats that nothing else
    /// references during the call.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel this machine runs against an f64 product, on shapes that cut every way:
    /// rows past a block of `MR`, columns below `NARROW`, a ragged last panel, depth past `KC`,
    /// a row block starting past zero, and `B`'s rows gathered out of order.
    #[test]
    fn every_kernel_multiplies_as_the_f64_product() {
        let mut next = super::super::test_values(3);
        // (weight rows, first row r0, rows multiplied, k, n)
        for (rows, r0, m, k, n) in [
            (8, 0, 8, 3, 48),
            (13, 0, 13, 27, 50),
            (20, 8, 12, 300, 97),
            (5, 0, 5, 9, 4),
            (16, 0, 16, 129, 7),
            (24, 16, 3, 64, 144),
        ] {
            let w: Vec<f32> = (0..rows * k).map(|_| next()).collect();
            let stride = n + 5;
            let b: Vec<f32> = (0..k * stride).map(|_| next()).collect();
            // Rows of B in reverse order: a gather, not a strided matrix.
            let offsets: Vec<usize> = (0..k).rev().map(|p| p * stride).collect();
            for isa in Isa::available() {
                let gemm = ConvGemm::new(&w, rows, k, isa);
                let mut out = vec![vec![f32::NAN; n]; m];
                let mut views: Vec<&mut [f32]> = out.iter_mut().map(|r| r.as_mut_slice()).collect();
                gemm.multiply(r0, &b, &offsets, n, &mut views);
                for (i, row) in out.iter().enumerate() {
                    for (j, &got) in row.iter().enumerate() {
                        let want: f64 = (0..k)
                            .map(|p| f64::from(w[(r0 + i) * k + p]) * f64::from(b[offsets[p] + j]))
                            .sum();
                        assert!(
                            (f64::from(got) - want).abs() <= 1e-5 * (k as f64).sqrt(),
                            "{isa}: {rows}x{k}·{k}x{n} at ({i}, {j}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// Columns that are output positions read from padded rows: every width from the narrowest
    /// (a vector crosses three row ends) to wider than a panel, starting mid-row, with a ragged
    /// last panel and depth past `KC`, against the positions read one by one.
    #[test]
    fn output_positions_read_across_row_ends_as_one_by_one() {
        let mut next = super::super::test_values(5);
        // (output width, padded row stride, first position, positions, depth)
        for (width, stride, first, n, k) in [
            (6usize, 8usize, 0usize, 60usize, 9usize),
            (7, 9, 3, 100, 40),
            (10, 12, 5, 95, 130),
            (20, 22, 17, 400, 27),
            (50, 52, 49, 7, 12),
            (50, 52, 0, 150, 33),
        ] {
            let rows = 16;
            let w: Vec<f32> = (0..rows * k).map(|_| next()).collect();
            let row_len = (first + n).div_ceil(width) * stride + Columns::slack(width, stride);
            let b: Vec<f32> = (0..k * row_len).map(|_| next()).collect();
            let offsets: Vec<usize> = (0..k).map(|p| p * row_len).collect();
            let columns = Columns::Rows {
                first,
                width,
                stride,
            };
            for isa in Isa::available() {
                let gemm = ConvGemm::new(&w, rows, k, isa);
                let mut out = vec![vec![f32::NAN; n]; rows];
                let mut views: Vec<&mut [f32]> = out.iter_mut().map(|r| r.as_mut_slice()).collect();
                gemm.multiply_columns(0, &b, &offsets, columns, n, &mut views);
                for (i, row) in out.iter().enumerate() {
                    for (j, &got) in row.iter().enumerate() {
                        let (y, x) = ((first + j) / width, (first + j) % width);
                        let want: f64 = (0..k)
                            .map(|p| {
                                let at = offsets[p] + y * stride + x;
                                f64::from(w[i * k + p]) * f64::from(b[at])
                            })
                            .sum();
                        assert!(
                            (f64::from(got) - want).abs() <= 1e-5 * (k as f64).sqrt(),
                            "{isa}: width {width}, first {first}, ({i}, {j}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
