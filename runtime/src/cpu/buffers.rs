//! Reuse of f32 buffers between the steps of a plan. When a computed value's last reader has
//! run, [`CpuPlan::run`](super::CpuPlan::run) hands its storage to the pool instead of freeing
//! it, and the next kernel that asks for a buffer of about that size gets it back. A plan keeps
//! its pool between runs, so a steady-state run allocates (and page-faults) almost nothing, and
//! memory is bounded by the graph's widest cut plus the buffers waiting on the free list.
//!
//! A kernel opts in by allocating its f32 output with [`take_f32`] instead of `vec![..]` or
//! `collect`: the buffer's contents are unspecified, so it must write every element. Outside a
//! plan's run (unit tests, direct kernel calls) `take_f32` simply allocates.

use std::cell::RefCell;

/// Recently freed buffers, oldest first.
#[derive(Debug, Default)]
pub(crate) struct BufferPool {
    free: Vec<Vec<f32>>,
}

/// A free buffer serves a request of at least half its capacity, so one large buffer is not
/// tied up holding a small value while a later large value needs a fresh allocation.
const MAX_SLACK: usize = 2;

/// How many free buffers the pool keeps. Kernels that allocate their outputs themselves give
/// buffers back without taking any, so the pool forgets its oldest ones: memory stays bounded
/// by the live values plus this many buffers, and the recent ones, the likeliest to fit the
/// next outputs (which tend to have the shapes of the values just freed), are kept.
const MAX_FREE: usize = 8;

impl BufferPool {
    /// The smallest free buffer that fits `len` elements without too much slack.
    fn take(&mut self, len: usize) -> Option<Vec<f32>> {
        let (i, _) = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, b)| (len..=len.saturating_mul(MAX_SLACK)).contains(&b.capacity()))
            .min_by_key(|(_, b)| b.capacity())?;
        Some(self.free.remove(i))
    }

    fn give(&mut self, buffer: Vec<f32>) {
        if buffer.capacity() == 0 {
            return;
        }
        if self.free.len() == MAX_FREE {
            self.free.remove(0);
        }
        self.free.push(buffer);
    }
}

thread_local! {
    /// The pool of the plan running on this thread, if any.
    static ACTIVE: RefCell<Option<BufferPool>> = const { RefCell::new(None) };
}

/// Runs `f` with `pool` serving [`take_f32`] on this thread, and returns the pool afterwards
/// with whatever `f` gave back to it.
pub(crate) fn with_pool<R>(pool: BufferPool, f: impl FnOnce() -> R) -> (R, BufferPool) {
    /// Restores the previous pool even if `f` unwinds, so a nested or later run starts clean.
    struct Restore(Option<BufferPool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            ACTIVE.with(|a| *a.borrow_mut() = previous);
        }
    }
    let previous = ACTIVE.with(|a| a.borrow_mut().replace(pool));
    let restore = Restore(previous);
    let result = f();
    let pool = ACTIVE.with(|a| a.borrow_mut().take()).unwrap_or_default();
    drop(restore);
    (result, pool)
}

/// A buffer of `len` elements with unspecified contents: the caller must overwrite them all.
pub(crate) fn take_f32(len: usize) -> Vec<f32> {
    let reused = ACTIVE.with(|a| a.borrow_mut().as_mut().and_then(|p| p.take(len)));
    match reused {
        Some(mut b) => {
            // Only growth writes values; shrinking just forgets the tail.
            b.resize(len, 0.0);
            b
        }
        None => vec![0.0; len],
    }
}

/// Hands `buffer` to the running plan's pool (or frees it outside a run).
pub(crate) fn give_f32(buffer: Vec<f32>) {
    ACTIVE.with(|a| {
        if let Some(p) = a.borrow_mut().as_mut() {
            p.give(buffer);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_a_freed_buffer_of_a_fitting_size() {
        let (ptrs, pool) = with_pool(BufferPool::default(), || {
            let a = take_f32(1000);
            let pa = a.as_ptr();
            give_f32(a);
            let b = take_f32(900);
            let too_small = take_f32(400);
            (pa, b.as_ptr(), too_small.len())
        });
        assert_eq!(
            ptrs.0, ptrs.1,
            "the freed buffer serves the next request that fits"
        );
        assert_eq!(ptrs.2, 400);
        assert!(pool.free.is_empty());
    }

    #[test]
    fn outside_a_run_buffers_are_plain_allocations() {
        give_f32(vec![1.0; 10]);
        assert_eq!(take_f32(10), vec![0.0; 10]);
    }
}
