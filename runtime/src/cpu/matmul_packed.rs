//! MatMul and Gemm on AVX-512 through the convolutions' packed-row kernel
//! ([`super::conv_gemm`]): the `gemm` crate uses AVX-512 only on nightly Rust, and its AVX2
//! kernel ran a ViT's MatMuls at 2.3x onnxruntime's time. Each product's left operand is packed
//! once into `MR`-row blocks; the right one is read in place, a row at a time, so it must have
//! unit column stride (weights and most activations; a transposed right operand, such as
//! attention's `K^T`, stays with the `gemm` crate). A constant right operand (a MatMul's
//! weight) is packed once per plan into `NR`-column panels instead ([`PackedRight`]).

use super::conv::SharedOut;
use super::conv_gemm::{Columns, ConvGemm, MR, NR};
use super::isa::Isa;
use super::matmul::{Dims, View};
use crate::Tensor;
use rayon::prelude::*;
use std::borrow::Cow;

/// Multiply-adds below which one task does the whole batch: waking a second thread costs more.
const SMALL: usize = 1 << 17;

/// Whether [`batched`] takes products whose right operands are `b_views` on `isa`.
pub(super) fn applies(isa: Isa, b_views: &[View]) -> bool {
    isa.avx512() && b_views.iter().all(|v| v.cs == 1)
}

/// A constant `k × n` right operand packed once per plan in panels of [`NR`] columns, each
/// `k` rows of `NR` floats (the last panel zero-padded), which the kernel reads in place
/// ([`Columns::Panels`]). Read in place from the weight, a panel's rows lie a row apart, so
/// each was copied on every run (6% of ViT-S's `fc1`) and, with the copy made panel by
/// panel, the whole left operand was read again for every panel: at `fc2`'s depth of 1536
/// that operand (257 x 1536) does not stay in L2.
#[derive(Debug)]
pub(crate) struct PackedRight {
    k: usize,
    n: usize,
    panels: Vec<f32>,
}

impl PackedRight {
    /// `b` (f32, `k × n`) packed, or `None` where the packed kernel does not run or the
    /// product is narrower than a third of a panel (padding would be most of its work).
    pub fn new(b: &Tensor, isa: Isa) -> Option<PackedRight> {
        let (&[k, n], Some(v)) = (&b.shape[..], b.as_f32()) else {
            return None;
        };
        if !PackedRight::applies(k, n, isa) {
            return None;
        }
        let mut panels = vec![0.0; n.div_ceil(NR) * k * NR];
        for (j, panel) in panels.chunks_exact_mut(k * NR).enumerate() {
            let w = NR.min(n - j * NR);
            for (dst, row) in panel.chunks_exact_mut(NR).zip(v.chunks_exact(n)) {
                dst[..w].copy_from_slice(&row[j * NR..][..w]);
            }
        }
        Some(PackedRight { k, n, panels })
    }

    /// Whether [`PackedRight::new`] packs an f32 operand of `k` rows and `n` columns on `isa`.
    pub fn applies(k: usize, n: usize, isa: Isa) -> bool {
        isa.avx512() && k > 0 && n >= NR / 3
    }

    /// The operand's rows and columns.
    pub fn dims(&self) -> (usize, usize) {
        (self.k, self.n)
    }
}

/// What a task applies to each row of its block of the product once the block is computed:
/// `(row, first column, the row's columns)`.
pub(super) type Epilogue<'a> = &'a (dyn Fn(usize, usize, &mut [f32]) + Sync);

/// `c = a · right` for `a` `m × k` row-major and `c` `m × n` row-major, then `epilogue` on
/// each row of each task's block while it is in cache.
pub(super) fn with_packed_right(
    m: usize,
    a: &[f32],
    right: &PackedRight,
    c: &mut [f32],
    epilogue: Option<Epilogue>,
    isa: Isa,
) {
    let PackedRight { k, n, .. } = *right;
    assert!(a.len() == m * k && c.len() == m * n);
    if m == 0 {
        return;
    }
    let gemm = ConvGemm::scratch(a, m, k, isa);
    let rows: Vec<usize> = (0..k).map(|p| p * NR).collect();
    let shared = SharedOut::new(c);
    tasks(Dims { m, n, k }, 1).into_par_iter().for_each(|t| {
        let w = t.cols.1 - t.cols.0;
        // SAFETY: tasks cover disjoint (row, column) cells of `c`, so no other reference to
        // these segments exists while they are written.
        let mut out: Vec<&mut [f32]> = (t.rows.0..t.rows.1)
            .map(|r| unsafe { shared.segment(r * n + t.cols.0, w) })
            .collect();
        let columns = Columns::Panels {
            first: t.cols.0,
            depth: k,
        };
        gemm.multiply_columns(t.rows.0, &right.panels, &rows, columns, w, &mut out);
        if let Some(epilogue) = epilogue {
            for (r, row) in (t.rows.0..).zip(out) {
                epilogue(r, t.cols.0, row);
            }
        }
    });
    gemm.give_back();
}

/// One parallel task: rows `rows` and columns `cols` of batch entry `entry`'s product.
struct Task {
    entry: usize,
    rows: (usize, usize),
    cols: (usize, usize),
}

/// [`super::matmul::batched`] for f32 where [`applies`] holds.
#[allow(clippy::too_many_arguments)]
pub(super) fn batched(
    d: Dims,
    a: &[f32],
    a_views: &[View],
    b: &[f32],
    b_views: &[View],
    c: &mut [f32],
    alpha: f32,
    accumulate: bool,
    isa: Isa,
) {
    let Dims { m, n, k } = d;
    let plane = m * n;
    if plane == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let lefts: Vec<Cow<[f32]>> = a_views.par_iter().map(|&v| row_major(a, v, m, k)).collect();
    // Packed on this thread, whose run pool lends the buffers (each packing is parallel
    // where it is large).
    let gemms: Vec<ConvGemm> = lefts
        .iter()
        .map(|l| ConvGemm::scratch(l, m, k, isa))
        .collect();
    let offsets: Vec<Vec<usize>> = b_views
        .iter()
        .map(|v| (0..k).map(|p| v.offset + p * v.rs).collect())
        .collect();
    let shared = SharedOut::new(c);
    // Row `p` of a copied panel is `NR` floats on from row `p - 1`.
    let panel_rows: Vec<usize> = (0..k).map(|p| p * NR).collect();
    tasks(d, a_views.len()).into_par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(tmp, panel), t| {
            let (r0, w) = (t.rows.0, t.cols.1 - t.cols.0);
            let start = |r: usize| t.entry * plane + r * n + t.cols.0;
            // SAFETY: tasks cover disjoint (entry, row, column) cells of `c`, so no other
            // reference to these segments exists while they are written.
            let mut rows: Vec<&mut [f32]> = (t.rows.0..t.rows.1)
                .map(|r| unsafe { shared.segment(start(r), w) })
                .collect();
            let product = |out: &mut [&mut [f32]], panel: &mut Vec<f32>| {
                multiply_panels(
                    &gemms[t.entry],
                    (r0, t.cols.0),
                    (b, &offsets[t.entry]),
                    &panel_rows,
                    panel,
                    out,
                )
            };
            if accumulate {
                tmp.resize(rows.len() * w, 0.0);
                let mut out: Vec<&mut [f32]> = tmp.chunks_exact_mut(w).collect();
                product(&mut out, panel);
                for (row, p) in rows.iter_mut().zip(tmp.chunks_exact(w)) {
                    for (o, &p) in row.iter_mut().zip(p) {
                        *o += alpha * p;
                    }
                }
            } else {
                product(&mut rows, panel);
                if alpha != 1.0 {
                    rows.iter_mut()
                        .flat_map(|r| r.iter_mut())
                        .for_each(|o| *o *= alpha);
                }
            }
        },
    );
    gemms.into_iter().for_each(ConvGemm::give_back);
}

/// `out` (rows `r0..`, columns `c0..` of the product) from `gemm` and the right operand `b`,
/// whose row `p` starts at `offsets[p]`, one `NR`-column panel at a time. Where more than one
/// block of `MR` rows reads it, each whole panel is first copied into `panel`, its rows `NR`
/// floats apart (`panel_rows`): read in place, a panel's rows lie a row of `b` apart, and at
/// ViT's 384 and 1536 columns its 128 rows of 3 cache lines fall in a few of L1's 64 sets, so
/// the kernel read them from L2 again for every block of rows (ViT-S's MLP MatMuls: 5-15% of
/// their time). A last panel narrower than `NR` is read in place. The kernel computes each
/// output as the same chain of fused multiply-adds either way. (Convolutions read their
/// inputs in place: copied, PicoDet's 1x1 layers over 24 to 48 channels were 10-15% slower.)
fn multiply_panels(
    gemm: &ConvGemm,
    (r0, c0): (usize, usize),
    (b, offsets): (&[f32], &[usize]),
    panel_rows: &[usize],
    panel: &mut Vec<f32>,
    out: &mut [&mut [f32]],
) {
    let n = out.first().map_or(0, |row| row.len());
    let whole = if out.len() > MR { n / NR * NR } else { 0 };
    if whole > 0 {
        panel.resize(offsets.len() * NR, 0.0);
    }
    for j0 in (0..whole).step_by(NR) {
        for (dst, &r) in panel.chunks_exact_mut(NR).zip(offsets) {
            dst.copy_from_slice(&b[r + c0 + j0..][..NR]);
        }
        let mut cols: Vec<&mut [f32]> = out.iter_mut().map(|row| &mut row[j0..j0 + NR]).collect();
        gemm.multiply(r0, panel, panel_rows, NR, &mut cols);
    }
    if whole < n {
        let mut cols: Vec<&mut [f32]> = out.iter_mut().map(|row| &mut row[whole..]).collect();
        gemm.multiply(r0, &b[c0 + whole..], offsets, n - whole, &mut cols);
    }
}

/// The `m × k` operand at `v` in row-major order: borrowed when it already is.
fn row_major(a: &[f32], v: View, m: usize, k: usize) -> Cow<'_, [f32]> {
    if v.cs == 1 && v.rs == k {
        return Cow::Borrowed(&a[v.offset..v.offset + m * k]);
    }
    let at = |r: usize, p: usize| a[v.offset + r * v.rs + p * v.cs];
    Cow::Owned((0..m).flat_map(|r| (0..k).map(move |p| at(r, p))).collect())
}

/// Enough tasks to keep every thread busy: column tiles of whole `NR` panels first (each
/// re-reads the packed left operand, which stays in L2), then `MR`-row blocks.
fn tasks(d: Dims, entries: usize) -> Vec<Task> {
    let threads = rayon::current_num_threads();
    let (rows, cols) = if threads == 1 || d.m * d.n * d.k * entries < SMALL {
        (d.m, d.n)
    } else {
        let per_entry = (4 * threads).div_ceil(entries);
        let col_tiles = d.n.div_ceil(2 * NR).clamp(1, per_entry);
        let row_blocks = per_entry.div_ceil(col_tiles).clamp(1, d.m.div_ceil(MR));
        (
            d.m.div_ceil(row_blocks).next_multiple_of(MR),
            d.n.div_ceil(col_tiles).next_multiple_of(NR),
        )
    };
    let mut tasks = Vec::new();
    for entry in 0..entries {
        for r0 in (0..d.m).step_by(rows) {
            for c0 in (0..d.n).step_by(cols) {
                tasks.push(Task {
                    entry,
                    rows: (r0, (r0 + rows).min(d.m)),
                    cols: (c0, (c0 + cols).min(d.n)),
                });
            }
        }
    }
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A right operand packed once against the f64 product: a ragged last panel, a last
    /// panel narrow enough for the narrow kernel, depth past the kernel's 128-deep passes,
    /// rows past a block of `MR`, left operands of rank 3 and of rank 1 (a vector, whose
    /// product drops the axis), on 1 and 3 threads.
    #[test]
    fn packed_right_operands_match_the_f64_product() {
        let isa = Isa::detect();
        if !isa.avx512() {
            eprintln!("skipped: this machine has no AVX-512, which the packed kernel needs");
            return;
        }
        let mut next = super::super::test_values(11);
        // (left shape, n)
        for (shape, n) in [
            (vec![13, 300], 200),
            (vec![2, 33, 129], 50),
            (vec![1, 9, 16], 16),
        ] {
            let k = shape[shape.len() - 1];
            let m: usize = shape[..shape.len() - 1].iter().product();
            let a: Vec<f32> = (0..m * k).map(|_| next()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| next()).collect();
            let left = Tensor::f32(shape.clone(), a.clone());
            let right = Tensor::f32(vec![k, n], b.clone());
            let packed = PackedRight::new(&right, isa).expect("packed");
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("a thread pool");
                let got = pool
                    .install(|| super::super::linalg::matmul_packed(&left, &packed, isa))
                    .expect("a product");
                let mut want_shape = shape[..shape.len() - 1].to_vec();
                want_shape.push(n);
                assert_eq!(got.shape, want_shape);
                let got = got.as_f32().expect("f32");
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k)
                            .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                            .sum();
                        let g = f64::from(got[i * n + j]);
                        assert!(
                            (g - want).abs() <= 1e-5 * (k as f64).sqrt(),
                            "{shape:?}·{k}x{n} at ({i}, {j}), {threads} threads: {g} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// Against an f64 product, on every cut of the kernel: rows past a block of `MR`, columns
    /// below `NR` and past several tiles, depth past the kernel's 128-deep passes, a transposed
    /// left operand, a batch whose right operand is shared, alpha, accumulation, on 1 and 3
    /// threads (which cut the tasks differently).
    #[test]
    fn packed_products_match_the_f64_product() {
        if !Isa::detect().avx512() {
            eprintln!("skipped: this machine has no AVX-512, which the packed kernel needs");
            return;
        }
        let mut next = super::super::test_values(7);
        // (m, n, k, batch, transposed A, alpha, accumulate)
        let cases = [
            (13, 200, 300, 1, false, 1.0, false),
            (257, 97, 64, 2, true, 0.5, false),
            (5, 4, 9, 3, false, 1.0, true),
            (40, 1000, 33, 1, false, -2.0, true),
        ];
        for (m, n, k, batch, trans, alpha, accumulate) in cases {
            let a: Vec<f32> = (0..batch * m * k).map(|_| next()).collect();
            let b: Vec<f32> = (0..k * n).map(|_| next()).collect();
            let c0: Vec<f32> = (0..batch * m * n).map(|_| next()).collect();
            let plane = View::row_major(if trans { m } else { k });
            let plane = if trans { plane.transposed() } else { plane };
            let a_views: Vec<View> = (0..batch).map(|i| plane.at(i * m * k)).collect();
            let b_views = vec![View::row_major(n); batch];
            let at = |e: usize, i: usize, p: usize| {
                let v = a_views[e];
                f64::from(a[v.offset + i * v.rs + p * v.cs])
            };
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("a thread pool");
                let mut c = c0.clone();
                let d = Dims { m, n, k };
                pool.install(|| {
                    batched(
                        d,
                        &a,
                        &a_views,
                        &b,
                        &b_views,
                        &mut c,
                        alpha,
                        accumulate,
                        Isa::detect(),
                    )
                });
                for e in 0..batch {
                    for i in 0..m {
                        for j in 0..n {
                            let dot: f64 =
                                (0..k).map(|p| at(e, i, p) * f64::from(b[p * n + j])).sum();
                            let at_c = e * m * n + i * n + j;
                            let old = if accumulate { f64::from(c0[at_c]) } else { 0.0 };
                            let want = f64::from(alpha) * dot + old;
                            let got = f64::from(c[at_c]);
                            assert!(
                                (got - want).abs() <= 1e-5 * (k as f64).sqrt(),
                                "{m}x{k}·{k}x{n} entry {e} at ({i}, {j}), {threads} threads: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
