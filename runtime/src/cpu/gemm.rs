//! A safe face on `gemm::gemm` for the row-major matrices the conv kernels build.

use gemm::Parallelism;

/// `c[m×n] = a[m×k] · b[k×n]`, plus the old `c` when `accumulate`. All row-major; `a` is read
/// as stored `[k×m]` when `a_transposed`, which lets ConvTranspose use its weight as is.
///
/// Panics when a slice is shorter than its dimensions say: callers size them from shapes they
/// already checked, so that is a bug in the caller, and the check keeps the unsafe call sound.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    a_transposed: bool,
    b: &[f32],
    c: &mut [f32],
    accumulate: bool,
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let (a_rs, a_cs) = if a_transposed {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    // SAFETY: every index the call forms lies inside the slices, whose lengths were checked
    // above against the row-major extents and the strides given here; `c` is exclusively
    // borrowed and does not alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}
