//! A run's memory: when a value's last reader has run, its buffer goes back to a pool owned by
//! the run state, and later outputs are carved from the pool instead of the allocator. Buffers
//! follow tensor lifetimes, so a run's memory is the plan's widest cut plus what best fit
//! wastes, and a state in steady state allocates nothing. Fresh memory is what this avoids:
//! every new 4 KiB page costs a page fault when first written, and PicoDet at 416x416 wrote
//! about 2,200 of them per run, several milliseconds. Each state has a pool of its own, so
//! concurrent runs of one plan never wait for each other's lock.
//!
//! While a plan runs, the state's pool is the current one of the thread running the steps (see
//! [`Buffers::scope`]); kernels take their outputs with [`reuse`], [`zeros`] and [`empty`], which
//! fall back to the allocator outside a plan (compile-time folding) and on rayon's helper threads.

use crate::{bf16, f16, Tensor, TensorData};
use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

thread_local! {
    static CURRENT: RefCell<Option<Arc<Buffers>>> = const { RefCell::new(None) };
}

/// Where the data of a scratch buffer starting at `at` starts, in elements: its first 64-byte
/// boundary, where the GEMMs pack their columns so that each row a kernel loads is one cache
/// line (unaligned, AMX's tile loads took about twice as long, and the VNNI kernel 1.4 times).
/// The packer and the kernel each find it from the same buffer.
pub(crate) fn aligned_start<T>(at: *const T) -> usize {
    at.align_offset(64)
}

/// A buffer of `len` elements whose contents are unspecified (values of an earlier tensor): for
/// kernels that write every element.
pub(crate) fn reuse(len: usize) -> Vec<f32> {
    with_current(|b| b.reuse(len)).unwrap_or_else(|| vec![0.0; len])
}

/// A half (f16 or bf16) or byte buffer of `len` elements whose contents are unspecified: the
/// outputs of fp16 and bf16 layers, each of which wrote a fresh 2 MB buffer (a page fault per
/// 4 KiB) on every run of PicoDet, and the quantized outputs of layers that int8 layers read.
pub(crate) fn reuse_typed<H: Pooled>(len: usize) -> Vec<H> {
    with_current(|b| b.reuse(len)).unwrap_or_else(|| vec![H::default(); len])
}

/// A buffer of `len` zeros.
pub(crate) fn zeros(len: usize) -> Vec<f32> {
    with_current(|b| b.zeros(len)).unwrap_or_else(|| vec![0.0; len])
}

/// An empty vector with room for `capacity` elements, from the pool when `R` is `f32`.
pub(crate) fn empty<R: 'static>(capacity: usize) -> Vec<R> {
    if TypeId::of::<R>() == TypeId::of::<f32>() {
        if let Some(mut v) = with_current(|b| b.best_fit::<f32>(capacity)).flatten() {
            v.clear();
            let any: Box<dyn Any> = Box::new(v);
            if let Ok(v) = any.downcast::<Vec<R>>() {
                return *v;
            }
        }
        let v = Vec::with_capacity(capacity);
        with_current(|b| b.count_fresh(bytes(&v)));
        return v;
    }
    Vec::with_capacity(capacity)
}

/// A buffer of `len` copies of `zero`, from the pool when `R` is `f32`: for the generic kernels
/// (MatMul, pooling, normalization), whose fresh outputs faulted their pages in on every run.
pub(crate) fn zeros_of<R: Copy + 'static>(len: usize, zero: R) -> Vec<R> {
    let mut v = empty(len);
    v.resize(len, zero);
    v
}

/// A buffer of `len` elements for a kernel that writes every one: an f32 buffer comes from the
/// pool with the values of an earlier tensor, any other is `len` copies of `fill`.
pub(crate) fn overwritten<R: Copy + 'static>(len: usize, fill: R) -> Vec<R> {
    if TypeId::of::<R>() == TypeId::of::<f32>() {
        let any: Box<dyn Any> = Box::new(reuse(len));
        if let Ok(v) = any.downcast::<Vec<R>>() {
            return *v;
        }
    }
    zeros_of(len, fill)
}

/// Returns a kernel's scratch buffer to the pool.
pub(crate) fn give_back<T: Pooled>(v: Vec<T>) {
    with_current(|b| b.give(v));
}

/// Returns the storage of a kernel's intermediate f32 tensor to the pool.
pub(crate) fn give_back_f32(t: Tensor) {
    if let TensorData::F32(v) = t.data {
        give_back(v);
    }
}

/// The pool of the run on this thread, for kernels whose tasks take buffers on other threads
/// (through [`Buffers::scope`] there).
pub(crate) fn current() -> Option<Arc<Buffers>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// `f` with `pool` ([`current`] on the thread that started a parallel kernel) as the current
/// pool of whichever thread runs it, for tasks that take buffers: on a helper thread with none,
/// each would be a fresh allocation, zeroed (calloc) every time.
pub(crate) fn within<T>(pool: Option<&Arc<Buffers>>, f: impl FnOnce() -> T) -> T {
    match pool {
        Some(p) => p.scope(f),
        None => f(),
    }
}

fn with_current<T>(f: impl FnOnce(&Buffers) -> T) -> Option<T> {
    CURRENT.with(|c| c.borrow().as_deref().map(f))
}

/// Free f32, f16, bf16 and byte buffers, kept for the life of the run state.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    pool: Mutex<Pool>,
}

#[derive(Debug, Default)]
pub(crate) struct Pool {
    free: Vec<Vec<f32>>,
    halves: Vec<Vec<f16>>,
    bfloats: Vec<Vec<bf16>>,
    octets: Vec<Vec<u8>>,
    /// Bytes held in the lists.
    bytes: usize,
    /// The most bytes of values a run has held at once, or of buffers the pool has lent at
    /// once, whichever is more: the pool keeps no more than this, since the kernels that do not
    /// take their outputs from it (shape ops, reductions) would otherwise grow it by their
    /// outputs on every run.
    limit: usize,
    /// Bytes (of capacity) of the buffers lent and not yet given back. Values count their
    /// length, but a lent buffer may be longer than its value, and kernels borrow scratch (a
    /// convolution's padded input) that no value counts: with the limit at the values' peak
    /// alone, U^2-Net's pool dropped buffers of 12-48 MB after every run and allocated them
    /// again, 10% of its time in page faults.
    lent: usize,
    /// The lent buffers, as (address, capacity in bytes), that were initialized through their
    /// whole capacity when lent, so that their length can grow back to it when they return.
    /// Without this, a buffer that held a short tensor and then a long one zeroed the
    /// difference: 82 MB a run of YOLO11s-seg, on one thread while the other waited (4% of its
    /// samples). Forgotten at the end of each run ([`Buffers::end_run`]).
    whole: HashSet<(usize, usize)>,
}

impl Pool {
    /// Counts `bytes` more as lent, raising the limit to what is lent at once.
    fn lend(&mut self, bytes: usize) {
        self.lent += bytes;
        self.limit = self.limit.max(self.lent);
    }
}

impl Buffers {
    /// Runs `f` with this pool as the current one of this thread.
    pub fn scope<T>(self: &Arc<Self>, f: impl FnOnce() -> T) -> T {
        /// Restores the previous pool, also when `f` unwinds.
        struct Restore(Option<Arc<Buffers>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| *c.borrow_mut() = self.0.take());
            }
        }
        let _restore = Restore(CURRENT.with(|c| c.borrow_mut().replace(Arc::clone(self))));
        f()
    }

    fn reuse<T: Pooled>(&self, len: usize) -> Vec<T> {
        match self.best_fit(len) {
            Some(mut v) => {
                // Only a buffer that came from outside the pool shorter than its capacity (and
                // then held a shorter tensor than this) grows here.
                v.resize(len, T::default());
                v
            }
            None => self.fresh(len),
        }
    }

    fn zeros(&self, len: usize) -> Vec<f32> {
        match self.best_fit(len) {
            Some(mut v) => {
                v.clear();
                v.resize(len, 0.0);
                v
            }
            None => self.fresh(len),
        }
    }

    /// Counts a buffer of `bytes` fresh from the allocator as lent.
    fn count_fresh(&self, bytes: usize) {
        self.lock().lend(bytes);
    }

    /// A buffer of `len` zeros fresh from the allocator, lent.
    fn fresh<T: Pooled>(&self, len: usize) -> Vec<T> {
        let v = vec![T::default(); len];
        let mut pool = self.lock();
        pool.lend(bytes(&v));
        if v.len() == v.capacity() {
            pool.whole.insert(key(&v));
        }
        v
    }

    /// Takes back the storage of a value no step will read again; past the limit, the smallest
    /// buffers go back to the allocator, which serves small sizes without fresh pages anyway.
    pub fn recycle(&self, t: Tensor) {
        match t.data {
            TensorData::F32(v) => self.give(v),
            TensorData::F16(v) => self.give(v),
            TensorData::BF16(v) => self.give(v),
            TensorData::U8(v) => self.give(v),
            _ => {}
        }
    }

    fn give<T: Pooled>(&self, mut v: Vec<T>) {
        if v.capacity() == 0 {
            return;
        }
        let mut pool = self.lock();
        if pool.whole.remove(&key(&v)) {
            // SAFETY: this address and capacity were lent in this run with the whole capacity
            // initialized, and neither truncating nor writing a vector uninitializes any
            // element. They could name another allocation only if the lent vector had been
            // freed within the run and a new one of the same capacity, its spare capacity
            // uninitialized, had been made at the same address and given here; the steps and
            // kernels hand what they take back to the pool (values when their last reader has
            // run, scratch when done), and the record is cleared at the end of every run.
            unsafe { v.set_len(v.capacity()) };
        }
        pool.bytes += bytes(&v);
        pool.lent = pool.lent.saturating_sub(bytes(&v));
        T::list(&mut pool).push(v);
        while pool.bytes > pool.limit {
            let lists = [
                smallest(&pool.free),
                smallest(&pool.halves),
                smallest(&pool.bfloats),
                smallest(&pool.octets),
            ];
            let Some((list, (at, _))) = (0..lists.len())
                .filter_map(|l| lists[l].map(|s| (l, s)))
                .min_by_key(|(_, (_, b))| *b)
            else {
                break;
            };
            let dropped = match list {
                0 => bytes(&pool.free.swap_remove(at)),
                1 => bytes(&pool.halves.swap_remove(at)),
                2 => bytes(&pool.bfloats.swap_remove(at)),
                _ => bytes(&pool.octets.swap_remove(at)),
            };
            pool.bytes -= dropped;
        }
    }

    /// Forgets which lent buffers were whole: after a run, a buffer still lent (a graph output)
    /// is its caller's, and its address may be another allocation's by the next run.
    pub fn end_run(&self) {
        self.lock().whole.clear();
    }

    /// Bytes of the buffers lent and not yet given back.
    pub fn lent_bytes(&self) -> usize {
        self.lock().lent
    }

    /// Raises the pool's limit to `live` bytes, the values a run holds at one point.
    pub fn allow(&self, live: usize) {
        let mut pool = self.lock();
        pool.limit = pool.limit.max(live);
    }

    /// The smallest free buffer that holds `len` elements, truncated to at most `len`.
    fn best_fit<T: Pooled>(&self, len: usize) -> Option<Vec<T>> {
        if len == 0 {
            return None;
        }
        let mut pool = self.lock();
        let list = T::list(&mut pool);
        let (at, _) = list
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())?;
        let mut v = list.swap_remove(at);
        pool.bytes -= bytes(&v);
        pool.lend(bytes(&v));
        if v.len() == v.capacity() {
            pool.whole.insert(key(&v));
        }
        v.truncate(len);
        Some(v)
    }

    /// The pool, even if a kernel panicked while holding it: the pool is updated only by the
    /// short sections above, which do not panic.
    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An element type the pool keeps buffers of, each in a list of its own.
pub(crate) trait Pooled: Copy + Default + Send + 'static {
    fn list(pool: &mut Pool) -> &mut Vec<Vec<Self>>;
}

impl Pooled for f32 {
    fn list(pool: &mut Pool) -> &mut Vec<Vec<f32>> {
        &mut pool.free
    }
}

impl Pooled for f16 {
    fn list(pool: &mut Pool) -> &mut Vec<Vec<f16>> {
        &mut pool.halves
    }
}

impl Pooled for bf16 {
    fn list(pool: &mut Pool) -> &mut Vec<Vec<bf16>> {
        &mut pool.bfloats
    }
}

impl Pooled for u8 {
    fn list(pool: &mut Pool) -> &mut Vec<Vec<u8>> {
        &mut pool.octets
    }
}

/// The position and size of the smallest buffer of `list`.
fn smallest<T>(list: &[Vec<T>]) -> Option<(usize, usize)> {
    list.iter().map(bytes).enumerate().min_by_key(|e| e.1)
}

/// What identifies a lent buffer in [`Pool::whole`].
fn key<T>(v: &Vec<T>) -> (usize, usize) {
    (v.as_ptr() as usize, bytes(v))
}

fn bytes<T>(v: &Vec<T>) -> usize {
    v.capacity() * size_of::<T>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_fit_reuses_the_smallest_buffer_that_holds_the_request() {
        let pool = Buffers::default();
        pool.allow(1 << 20);
        for len in [100, 10, 50] {
            pool.recycle(Tensor::f32(vec![len], vec![1.0; len]));
        }
        let v = pool.reuse::<f32>(40);
        assert_eq!((v.len(), v.capacity()), (40, 50));
        let z = pool.zeros(60);
        assert_eq!(z.capacity(), 100);
        assert!(z.iter().all(|&x| x == 0.0));
        // Nothing left that fits: a fresh buffer.
        assert_eq!(pool.reuse::<f32>(20).capacity(), 20);
        assert_eq!(pool.lock().free.len(), 1);
    }

    #[test]
    fn past_the_limit_the_smallest_buffers_are_dropped() {
        let pool = Buffers::default();
        pool.allow(4 * 120);
        for len in [100, 10, 15] {
            pool.recycle(Tensor::f32(vec![len], vec![0.0; len]));
        }
        let sizes: Vec<usize> = pool.lock().free.iter().map(|v| v.capacity()).collect();
        assert_eq!(sizes, [100, 15]);
    }

    /// A buffer lent with its whole capacity initialized comes back whole, however short the
    /// tensor it held: a longer request takes it without writing it (the old values are still
    /// there). After the run has ended, it is taken back like any other vector.
    #[test]
    fn a_buffer_lent_whole_grows_back_without_writing() {
        let pool = Buffers::default();
        pool.allow(1 << 20);
        pool.recycle(Tensor::f32(vec![8], vec![2.0; 8]));
        let mut short = pool.reuse::<f32>(3);
        short.fill(5.0);
        pool.recycle(Tensor::f32(vec![3], short));
        let v = pool.reuse::<f32>(6);
        assert_eq!(v, [5.0, 5.0, 5.0, 2.0, 2.0, 2.0]);
        pool.end_run();
        pool.recycle(Tensor::f32(vec![6], v));
        let v = pool.reuse::<f32>(8);
        assert_eq!(&v[6..], &[0.0; 2], "a buffer lent before the run ended");
    }

    /// A vector from outside the pool whose capacity is longer than its length grows with
    /// zeros: the pool never takes its spare capacity as initialized.
    #[test]
    fn a_shorter_vector_from_outside_grows_back_with_zeros() {
        let pool = Buffers::default();
        pool.allow(1 << 20);
        let mut outside = Vec::with_capacity(8);
        outside.extend([2.0f32; 3]);
        pool.recycle(Tensor::f32(vec![3], outside));
        let v = pool.reuse::<f32>(6);
        assert_eq!(v, [2.0, 2.0, 2.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn half_buffers_are_pooled_beside_float_ones_under_one_limit() {
        let pool = Buffers::default();
        pool.allow(4 * 100 + 2 * 70);
        pool.recycle(Tensor::f32(vec![100], vec![1.0; 100]));
        let half = |n: usize| Tensor {
            shape: vec![n],
            data: TensorData::F16(vec![f16::ONE; n]),
        };
        pool.recycle(half(60));
        // A float request never takes a half buffer, nor a half request a float one.
        assert_eq!(pool.reuse::<f16>(50).capacity(), 60);
        assert_eq!(pool.reuse::<f16>(50).capacity(), 50);
        pool.recycle(half(60));
        // Past the limit the smallest buffer goes, whatever its type: 120 bytes of halves.
        pool.recycle(half(70));
        let lock = pool.lock();
        let halves: Vec<usize> = lock.halves.iter().map(|v| v.capacity()).collect();
        assert_eq!((lock.free.len(), halves), (1, vec![70]));
    }

    /// Buffers lent at once raise the limit though no value counted them (scratch, or values
    /// shorter than their buffers), so all of them are kept when they come back.
    #[test]
    fn what_was_lent_at_once_is_kept() {
        let pool = Buffers::default();
        pool.allow(4 * 100);
        let lent: Vec<Vec<f32>> = (0..3).map(|_| pool.reuse::<f32>(100)).collect();
        assert_eq!(pool.lock().lent, 3 * 4 * 100);
        for v in lent {
            pool.give(v);
        }
        let lock = pool.lock();
        assert_eq!(
            (lock.free.len(), lock.lent, lock.limit),
            (3, 0, 3 * 4 * 100)
        );
    }
}
