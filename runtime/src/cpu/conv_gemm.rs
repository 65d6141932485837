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
    /// The columns are positions `first..` of a right operand packed once in panels of
    /// [`NR`] columns ([`super::matmul_packed::PackedRight`]), each `depth` rows of `NR`
    /// floats: row `p`'s offset is `p·NR`, and position `q` lies `q / NR` panels on. `first`
    /// is a multiple of `NR` where the kernel reads whole panels; the panels' zero padding
    /// makes every vector of them readable.
    Panels { first: usize, depth: usize },
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
            Columns::Panels { first, depth } => {
                let q = first + j;
                (q / NR * depth * NR + q % NR, [0; 3])
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
            Columns::Panels { first, depth } => (
                0,
                Columns::Panels {
                    first: first + j,
                    depth,
                },
            ),
        }
    }

    /// The distance a row end adds.
    fn gap(self) -> usize {
        match self {
            Columns::Contiguous | Columns::Panels { .. } => 0,
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
                .map(|w| avx512::pack_rows(w, rows, k, false));
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
        Self::packing(weight, rows, k, isa, false)
    }

    /// [`ConvGemm::new`] packing into a buffer of the run's pool, for a caller that packs on
    /// every run and hands it back ([`ConvGemm::give_back`]): zeroing a fresh buffer was 8%
    /// of ViT-S's attention product (6 x 257 x 257 by 257 x 64).
    pub fn scratch(weight: &'a [f32], rows: usize, k: usize, isa: Isa) -> ConvGemm<'a> {
        Self::packing(weight, rows, k, isa, true)
    }

    fn packing(weight: &'a [f32], rows: usize, k: usize, isa: Isa, pooled: bool) -> ConvGemm<'a> {
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (rows, isa, pooled);
        ConvGemm {
            weight,
            k,
            #[cfg(target_arch = "x86_64")]
            packed: (k > 0 && isa.avx512())
                .then(|| Cow::Owned(avx512::pack_rows(weight, rows, k, pooled))),
        }
    }

    /// Returns the weight [`ConvGemm::scratch`] packed to the run's pool.
    pub fn give_back(self) {
        #[cfg(target_arch = "x86_64")]
        if let Some(Cow::Owned(packed)) = self.packed {
            super::buffers::give_back(packed);
        }
    }

    /// Group `group` of `packed` alone, for a caller that keeps no unpacked weight: packed
    /// weights are only made where the packed kernel runs, so the unpacked one is never read.
    #[cfg(target_arch = "x86_64")]
    pub fn of_packed(packed: &'a PackedWeights, group: usize) -> ConvGemm<'a> {
        ConvGemm {
            weight: &[],
            k: packed.k,
            packed: Some(Cow::Borrowed(&packed.groups[group])),
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
            Columns::Panels { first, depth } => {
                assert!(first.is_multiple_of(NR));
                (first + n).saturating_sub(1) / NR * depth * NR + NR
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
                    _ => g.extend((0..n).map(|j| b[r + columns.place(j).0])),
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
mod avx512;

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
