//! The GEMM of one convolution tile, `acc[m × n] = W[rows] · cols[k × n]`, with the weights
//! packed once per convolution. On x86-64 with AVX-512 an 8×48 register-blocked kernel does the
//! work (the `gemm` crate only uses AVX-512 on nightly Rust, and convolutions are most of a
//! vision model's time); elsewhere the `gemm` crate does.

use super::gemm::{matmul_strided, Threads, View};

/// Rows of the weight a kernel call covers; row blocks of a tile start at multiples of this.
pub(crate) const MR: usize = 8;
/// Columns a kernel call covers; `cols` rows are padded to a multiple of this.
pub(crate) const NR: usize = 48;
/// Depth of one pass over a 48-column panel, so the panel (`KC × NR` floats) stays in L1.
const KC: usize = 128;

/// One group's weight, `[og × k]` row-major, ready for [`ConvGemm::multiply`].
pub(crate) struct ConvGemm<'a> {
    weight: &'a [f32],
    k: usize,
    /// The weight in blocks of [`MR`] rows, each stored `[k][MR]` (zero rows pad the last),
    /// when the AVX-512 kernel runs.
    #[cfg(target_arch = "x86_64")]
    packed: Option<Vec<f32>>,
}

impl<'a> ConvGemm<'a> {
    pub fn new(weight: &'a [f32], rows: usize, k: usize) -> ConvGemm<'a> {
        ConvGemm {
            weight,
            k,
            #[cfg(target_arch = "x86_64")]
            packed: (k > 0 && avx512::available()).then(|| avx512::pack_rows(weight, rows, k)),
        }
    }

    /// `acc[m × n] = W[r0 .. r0 + m] · cols`, where `cols` is `[k × n]` row-major, `n` is a
    /// multiple of [`NR`] and `r0` of [`MR`].
    pub fn multiply(&self, r0: usize, m: usize, cols: &[f32], n: usize, acc: &mut [f32]) {
        assert!(
            r0.is_multiple_of(MR)
                && n.is_multiple_of(NR)
                && cols.len() >= self.k * n
                && acc.len() >= m * n
        );
        #[cfg(target_arch = "x86_64")]
        if let Some(packed) = &self.packed {
            return avx512::multiply(packed, self.k, r0, m, cols, n, acc);
        }
        let lhs = View::rows(&self.weight[r0 * self.k..(r0 + m) * self.k], self.k);
        matmul_strided(
            m,
            n,
            self.k,
            lhs,
            View::rows(cols, n),
            acc,
            false,
            Threads::Single,
        );
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{KC, MR, NR};
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_storeu_ps,
    };

    pub fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
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

    /// See [`super::ConvGemm::multiply`]; `packed` is the whole packed weight.
    pub fn multiply(
        packed: &[f32],
        k: usize,
        r0: usize,
        m: usize,
        cols: &[f32],
        n: usize,
        acc: &mut [f32],
    ) {
        let mut tile = [[0.0f32; NR]; MR];
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            for j0 in (0..n).step_by(NR) {
                for i0 in (0..m).step_by(MR) {
                    let rows = MR.min(m - i0);
                    for (i, t) in tile.iter_mut().enumerate().take(rows) {
                        if k0 == 0 {
                            *t = [0.0; NR];
                        } else {
                            t.copy_from_slice(&acc[(i0 + i) * n + j0..][..NR]);
                        }
                    }
                    let a = &packed[(r0 + i0) / MR * k * MR + k0 * MR..][..kc * MR];
                    let b = &cols[k0 * n + j0..];
                    assert!(b.len() > (kc - 1) * n + NR - 1);
                    // SAFETY: AVX-512F is present (checked by `available`, which gates every
                    // use of this module), `a` holds `kc` rows of `MR` and `b` reaches the last
                    // of its `kc` rows of `NR`, as asserted just above.
                    unsafe { kernel(kc, a.as_ptr(), b.as_ptr(), n, &mut tile) };
                    for (i, t) in tile.iter().enumerate().take(rows) {
                        acc[(i0 + i) * n + j0..][..NR].copy_from_slice(t);
                    }
                }
            }
        }
    }

    /// `tile += a · b` for `a` `[kc][MR]` and `b` `kc` rows of `NR` floats, `b_rs` apart.
    ///
    /// # Safety
    /// AVX-512F must be available; `a` must be readable for `kc * MR` floats and `b` for
    /// `(kc - 1) * b_rs + NR`.
    #[target_feature(enable = "avx512f")]
    unsafe fn kernel(
        kc: usize,
        a: *const f32,
        b: *const f32,
        b_rs: usize,
        tile: &mut [[f32; NR]; MR],
    ) {
        let mut c: [[__m512; 3]; MR] = [[_mm512_set1_ps(0.0); 3]; MR];
        for (ci, t) in c.iter_mut().zip(tile.iter()) {
            for (v, chunk) in ci.iter_mut().zip(t.chunks_exact(16)) {
                *v = _mm512_loadu_ps(chunk.as_ptr());
            }
        }
        for p in 0..kc {
            let bp = b.add(p * b_rs);
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            let b2 = _mm512_loadu_ps(bp.add(32));
            let ap = a.add(p * MR);
            for (i, ci) in c.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(i));
                ci[0] = _mm512_fmadd_ps(av, b0, ci[0]);
                ci[1] = _mm512_fmadd_ps(av, b1, ci[1]);
                ci[2] = _mm512_fmadd_ps(av, b2, ci[2]);
            }
        }
        for (ci, t) in c.iter().zip(tile.iter_mut()) {
            for (v, chunk) in ci.iter().zip(t.chunks_exact_mut(16)) {
                _mm512_storeu_ps(chunk.as_mut_ptr(), *v);
            }
        }
    }
}
