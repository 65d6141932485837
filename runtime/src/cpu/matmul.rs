//! Batched, strided matrix products on the `gemm` crate, for MatMul, Gemm and Einsum. Operands
//! are read in place through strides (a transposed or broadcast operand is never copied); the
//! result is row-major.

use super::isa::Isa;
use super::matmul_packed;
use super::real::Real;
use gemm::Parallelism;
use rayon::prelude::*;

/// A matrix inside a slice: element `(i, j)` is `data[offset + i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View {
    pub offset: usize,
    pub rs: usize,
    pub cs: usize,
}

impl View {
    pub fn row_major(cols: usize) -> View {
        View {
            offset: 0,
            rs: cols,
            cs: 1,
        }
    }

    pub fn transposed(self) -> View {
        View {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    pub fn at(self, offset: usize) -> View {
        View { offset, ..self }
    }

    /// Whether every element of a `rows × cols` view lies inside `len`.
    fn fits(self, rows: usize, cols: usize, len: usize) -> bool {
        if rows == 0 || cols == 0 {
            return true;
        }
        let last = (rows - 1)
            .checked_mul(self.rs)
            .and_then(|r| {
                (cols - 1)
                    .checked_mul(self.cs)
                    .and_then(|c| r.checked_add(c))
            })
            .and_then(|x| x.checked_add(self.offset));
        last.is_some_and(|l| l < len)
    }
}

/// The dimensions of one product: `[m×k] · [k×n]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// Products this small gain nothing from `gemm`'s own threads, so a batch of them is spread
/// over the pool one product per task instead.
const SMALL: usize = 48 * 48 * 48;

/// `c[i] = alpha · a[i] · b[i] (+ c[i] when accumulate)` for every batch entry: `a` and `b`
/// give each entry's operand view, `c` is `batch × m × n` row-major. f32 products on AVX-512
/// run on [`matmul_packed`] where it takes them.
///
/// Panics when a view reaches outside its slice: callers build views from shapes they checked,
/// so that is a bug in the caller, and the check keeps the unsafe call sound.
#[allow(clippy::too_many_arguments)]
pub(crate) fn batched<T: Real>(
    d: Dims,
    a: &[T],
    a_views: &[View],
    b: &[T],
    b_views: &[View],
    c: &mut [T],
    alpha: T,
    accumulate: bool,
    isa: Isa,
) {
    let plane = d.m * d.n;
    assert!(a_views.len() == b_views.len() && c.len() >= plane * a_views.len());
    if plane == 0 {
        return;
    }
    if d.n == 1 {
        return by_vector(d, a, a_views, b, b_views, c, alpha, accumulate);
    }
    if matmul_packed::applies(isa, b_views) {
        let c = &mut c[..plane * a_views.len()];
        if let (Some(a), Some(b), Some(c)) = (T::f32s(a), T::f32s(b), T::f32s_mut(c)) {
            let alpha = alpha.to_f64() as f32;
            return matmul_packed::batched(d, a, a_views, b, b_views, c, alpha, accumulate, isa);
        }
    }
    let run = |(i, out): (usize, &mut [T]), par: Parallelism| {
        product(d, a, a_views[i], b, b_views[i], out, alpha, accumulate, par)
    };
    let threads = rayon::current_num_threads();
    if a_views.len() > 1 && threads > 1 && d.m * d.n * d.k <= SMALL {
        c.par_chunks_mut(plane)
            .take(a_views.len())
            .enumerate()
            .for_each(|x| run(x, Parallelism::None));
    } else {
        let par = if threads > 1 {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        };
        c.chunks_mut(plane)
            .take(a_views.len())
            .enumerate()
            .for_each(|x| run(x, par));
    }
}

/// [`batched`] for a right operand of one column, a matrix times a vector: each output a dot
/// product of `k`, rows in parallel. The GEMM kernels pad one column to a vector of 16 and pack
/// the left operand on every run: PicoDet's DFL heads (10816 x 8 times 8, after a Softmax)
/// took 0.09 ms each for 86K multiply-adds.
#[allow(clippy::too_many_arguments)]
fn by_vector<T: Real>(
    d: Dims,
    a: &[T],
    a_views: &[View],
    b: &[T],
    b_views: &[View],
    c: &mut [T],
    alpha: T,
    accumulate: bool,
) {
    /// Rows of one task: about 2 µs of multiply-adds at `k` of 8.
    const ROWS: usize = 4096;
    let Dims { m, k, .. } = d;
    for ((&av, &bv), out) in a_views.iter().zip(b_views).zip(c.chunks_mut(m)) {
        assert!(av.fits(m, k, a.len()) && bv.fits(k, 1, b.len()) && out.len() == m);
        let vector: Vec<T> = (0..k).map(|p| b[bv.offset + p * bv.rs]).collect();
        let rows = |(chunk, out): (usize, &mut [T])| {
            for (i, o) in (chunk * ROWS..).zip(out.iter_mut()) {
                let row = av.offset + i * av.rs;
                let dot = vector
                    .iter()
                    .enumerate()
                    .fold(T::ZERO, |acc, (p, &v)| acc + a[row + p * av.cs] * v);
                *o = if accumulate {
                    alpha * dot + *o
                } else {
                    alpha * dot
                };
            }
        };
        if m * k > ROWS * 8 && rayon::current_num_threads() > 1 {
            out.par_chunks_mut(ROWS).enumerate().for_each(rows);
        } else {
            out.chunks_mut(ROWS).enumerate().for_each(rows);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn product<T: Real>(
    d: Dims,
    a: &[T],
    av: View,
    b: &[T],
    bv: View,
    c: &mut [T],
    alpha: T,
    accumulate: bool,
    par: Parallelism,
) {
    assert!(av.fits(d.m, d.k, a.len()) && bv.fits(d.k, d.n, b.len()) && c.len() >= d.m * d.n);
    if d.k == 0 {
        if !accumulate {
            c[..d.m * d.n].fill(T::ZERO);
        }
        return;
    }
    let s = |x: usize| x as isize;
    // SAFETY: `fits` checked that every element the views address lies inside `a` and `b`, and
    // `c` holds the m×n row-major result; `c` is exclusively borrowed, so it aliases neither.
    // `T` is f32 or f64, both of which `gemm` implements.
    unsafe {
        gemm::gemm(
            d.m,
            d.n,
            d.k,
            c.as_mut_ptr(),
            1,
            s(d.n),
            accumulate,
            a.as_ptr().add(av.offset),
            s(av.cs),
            s(av.rs),
            b.as_ptr().add(bv.offset),
            s(bv.cs),
            s(bv.rs),
            T::ONE,
            alpha,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A matrix times a vector, the left operand read transposed and the vector strided, with and
    /// without accumulating, against the f64 sums; on enough rows to run in parallel tasks.
    #[test]
    fn a_matrix_times_a_vector_is_each_rows_dot_product() {
        let mut next = super::super::test_values(11);
        let (m, k) = (9000, 8);
        // `a` stored `[k][m]` and read as its transpose; `b` every third float.
        let a: Vec<f32> = (0..m * k).map(|_| next()).collect();
        let b: Vec<f32> = (0..3 * k).map(|_| next()).collect();
        let av = View::row_major(m).transposed();
        let bv = View {
            offset: 0,
            rs: 3,
            cs: 1,
        };
        let old: Vec<f32> = (0..m).map(|_| next()).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("a pool");
        for (alpha, accumulate) in [(1.0f32, false), (0.5, true)] {
            let mut c = old.clone();
            let d = Dims { m, n: 1, k };
            pool.install(|| {
                batched(
                    d,
                    &a,
                    &[av],
                    &b,
                    &[bv],
                    &mut c,
                    alpha,
                    accumulate,
                    Isa::detect(),
                )
            });
            for (i, &got) in c.iter().enumerate() {
                let dot: f64 = (0..k)
                    .map(|p| f64::from(a[p * m + i]) * f64::from(b[3 * p]))
                    .sum();
                let base = if accumulate { f64::from(old[i]) } else { 0.0 };
                let want = f64::from(alpha) * dot + base;
                assert!(
                    (f64::from(got) - want).abs() <= 1e-5,
                    "row {i}: {got} vs {want}"
                );
            }
        }
    }
}
