//! The machine's arithmetic peak as the CPU kernels could reach it: independent fused
//! multiply-adds on the widest vector unit they use, on every thread. `temblor profile` puts each
//! layer against it. It used to time a large MatMul instead, which runs through the `gemm`
//! crate (AVX2 on stable Rust): on an AVX-512 machine that reported 213 GFLOP/s where the FMA
//! units give 283, and the convolutions, which have their own AVX-512 kernel, showed above 100%.

use super::isa::Isa;
use super::plan::thread_pool;
use crate::RuntimeError;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Iterations of the loop per thread and run: about 1.5 GFLOP on AVX-512, a few ms.
const ITERATIONS: usize = 2_000_000;
const RUNS: usize = 5;

/// The best rate, in GFLOP/s, of `RUNS` runs of the FMA loop on `threads` threads (0: one per
/// core).
pub fn fma_peak_gflops(threads: usize) -> Result<f64, RuntimeError> {
    let pool = thread_pool(threads)?;
    let isa = Isa::detect();
    let mut best = Duration::MAX;
    let mut flops = 0.0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let per_thread = pool.broadcast(|_| fma_loop(isa, black_box(ITERATIONS)));
        best = best.min(start.elapsed());
        flops = per_thread.iter().sum();
    }
    Ok(flops / best.as_secs_f64().max(1e-9) / 1e9)
}

/// Runs the loop; returns the floating-point operations it did.
fn fma_loop(isa: Isa, n: usize) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if isa.avx512() {
            // SAFETY: an `Isa` with AVX-512 is only made on a machine that has it.
            return unsafe { x86::avx512(n) };
        }
        if isa.avx2() {
            // SAFETY: as above, for AVX2 and FMA.
            return unsafe { x86::avx2(n) };
        }
    }
    let _ = isa;
    // Eight independent chains of a multiply and an add, which the compiler may vectorize.
    let (a, b) = (black_box(1.000_000_1f32), black_box(0.999_999f32));
    let mut acc = [0.0f32; 8];
    for _ in 0..n {
        for v in acc.iter_mut() {
            *v = *v * a + b;
        }
    }
    black_box(acc);
    (n * acc.len() * 2) as f64
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m256, __m512, _mm256_fmadd_ps, _mm256_set1_ps, _mm512_fmadd_ps, _mm512_set1_ps,
    };
    use std::hint::black_box;

    /// 24 accumulators (of 32 registers): more than the FMA units' latency times their count,
    /// so the loop is bound by throughput alone.
    ///
    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512(n: usize) -> f64 {
        let (a, b) = (_mm512_set1_ps(1.000_000_1), _mm512_set1_ps(0.999_999));
        let mut acc: [__m512; 24] = [_mm512_set1_ps(0.0); 24];
        for _ in 0..n {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(a, *v, b);
            }
        }
        black_box(acc);
        (n * 24 * 16 * 2) as f64
    }

    /// 12 accumulators (of 16 registers).
    ///
    /// # Safety
    /// AVX2 and FMA must be available.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2(n: usize) -> f64 {
        let (a, b) = (_mm256_set1_ps(1.000_000_1), _mm256_set1_ps(0.999_999));
        let mut acc: [__m256; 12] = [_mm256_set1_ps(0.0); 12];
        for _ in 0..n {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(a, *v, b);
            }
        }
        black_box(acc);
        (n * 12 * 8 * 2) as f64
    }
}
