//! Safe faces on `gemm::gemm` for the matrices the conv kernels build.

use gemm::Parallelism;

/// A read-only strided matrix: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// `data` as a row-major matrix with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> View<'a> {
        View {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// Whether every element of a `rows × cols` matrix lies inside `data`.
    fn holds(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// How a GEMM may use threads: a kernel that already runs its GEMMs in parallel tasks asks
/// for none, so the tasks do not contend for the same pool.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threads {
    Single,
    Pool,
}

/// `c[m×n] = a[m×k] · b[k×n]`, plus the old `c` when `accumulate`. All row-major. Uses the
/// current rayon pool's threads.
///
/// Panics when a slice is shorter than its dimensions say: callers size them from shapes they
/// already checked, so that is a bug in the caller, and the check keeps the unsafe call sound.
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    accumulate: bool,
) {
    let (a, b) = (View::rows(a, k), View::rows(b, n));
    matmul_strided(m, n, k, a, b, c, accumulate, Threads::Pool);
}

/// `c = a · b (+ c)` with `a` `[m×k]` and `b` `[k×n]` strided, and `c` row-major `[m×n]`.
///
/// Panics when a view or `c` is shorter than its dimensions say, as [`matmul`] does.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_strided(
    m: usize,
    n: usize,
    k: usize,
    a: View,
    b: View,
    c: &mut [f32],
    accumulate: bool,
    threads: Threads,
) {
    assert!(a.holds(m, k) && b.holds(k, n));
    assert!(c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: every index the call forms lies inside the slices, whose lengths were checked
    // above against the extents and strides given here; `c` is exclusively borrowed and does
    // not alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism(threads),
        );
    }
}

/// Rayon parallelism over the threads of the pool the plan runs in, or none when it has one.
fn parallelism(threads: Threads) -> Parallelism {
    match (threads, rayon::current_num_threads()) {
        (Threads::Single, _) | (_, 0 | 1) => Parallelism::None,
        (Threads::Pool, n) => Parallelism::Rayon(n),
    }
}
