//! Denormal floats flushed to zero on the plan's threads.
//!
//! On Intel cores an instruction whose input or result is a denormal takes a microcode assist
//! of a hundred cycles or more, for the whole vector. A sigmoid of a very negative number is
//! one (`1 / (1 + e^87)` is about 1e-38), and YOLOv8n's first layers send about a tenth of their
//! values there: with a denormal in nearly every vector, its first three SiLU convolutions
//! took 2.89 ms against 1.39 with denormals flushed (one thread, Xeon "Emerald Rapids"). So the
//! plan's worker threads run with the MXCSR's flush-to-zero (a denormal result becomes zero)
//! and denormals-are-zero (a denormal input reads as zero), as TensorRT's kernels and
//! OpenVINO's do. A value below 1.2e-38 is then zero, far inside any tolerance the outputs are
//! verified to. The flags belong to the thread: the caller's own thread is left as it was.

/// FTZ and DAZ in the MXCSR.
#[cfg(target_arch = "x86_64")]
const FLUSH: u32 = 0x8040;

/// Sets flush-to-zero and denormals-are-zero on the calling thread.
pub(super) fn flush_on_this_thread() {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr = 0u32;
        // SAFETY: `stmxcsr` and `ldmxcsr` read and write the thread's own MXCSR through a
        // valid u32; setting FTZ and DAZ changes no other state and no memory.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
            csr |= FLUSH;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, readonly));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan::thread_pool;

    /// The plan's pool multiplies two normal floats whose product is denormal to zero, and reads
    /// a denormal input as zero, while this test's own thread keeps IEEE denormals.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_plans_threads_flush_denormals() {
        let (a, b) = (
            std::hint::black_box(1e-20f32),
            std::hint::black_box(1e-20f32),
        );
        let tiny = std::hint::black_box(f32::from_bits(1));
        assert!((a * b).is_subnormal(), "the test thread keeps denormals");
        let pool = thread_pool(1).unwrap();
        let (product, sum) = pool.install(|| (a * b, tiny + tiny));
        assert_eq!(product, 0.0, "a denormal result is flushed");
        assert_eq!(sum, 0.0, "a denormal input reads as zero");
        assert!((a * b).is_subnormal(), "the caller's flags are untouched");
    }
}
