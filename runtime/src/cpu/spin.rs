//! Spinning workers for latency runs: see [`Spinning`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Keeps the pool's other workers awake while a plan runs, taking work as soon as a kernel
/// offers it. A plan runs a few hundred short parallel kernels; a worker that fell asleep
/// between two of them is woken through the OS for each, which cost PicoDet at 2 threads more
/// than a tenth of its time. onnxruntime's pool spins the same way.
pub(crate) struct Spinning(Arc<AtomicBool>);

impl Spinning {
    /// Spins on every other worker of the current pool until dropped.
    pub fn start() -> Spinning {
        let running = Arc::new(AtomicBool::new(true));
        let owner = rayon::current_thread_index();
        for _ in 1..rayon::current_num_threads() {
            let running = Arc::clone(&running);
            rayon::spawn(move || {
                // The plan's own thread may pick this job up while it waits inside a kernel:
                // spinning there would wait for itself.
                if rayon::current_thread_index() == owner {
                    return;
                }
                while running.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        Spinning(running)
    }
}

impl Drop for Spinning {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
