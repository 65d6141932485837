//! Binary ops, Where and Cast, with numpy broadcasting. Axes are aligned from the right, size-1
//! axes stretch; adjacent axes that broadcast alike are merged first, so the common cases (equal
//! shapes, a scalar, a per-channel `[1,C,1,1]` operand) run as long contiguous inner loops.

use super::{buffers, dispatch, Element};
use crate::{RuntimeError, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::ops::Range;
use temblor_ir::DType;

pub(crate) fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, RuntimeError> {
    let r = a.len().max(b.len());
    let at = |s: &[usize], i: usize| {
        if i + s.len() >= r {
            s[i + s.len() - r]
        } else {
            1
        }
    };
    (0..r)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            _ => Err(RuntimeError::bad_input(format!(
                "shapes {a:?} and {b:?} do not broadcast"
            ))),
        })
        .collect()
}

/// An operand of a broadcasting kernel: its elements and shape.
pub(crate) type Operand<'a, T> = (&'a [T], &'a [usize]);

/// The elements of `t` as `T`, with its shape.
pub(crate) fn operand<T: Element>(t: &Tensor) -> Result<Operand<'_, T>, RuntimeError> {
    let data = T::slice(&t.data)
        .ok_or_else(|| RuntimeError::internal("tensor data disagrees with the kernel's dtype"))?;
    Ok((data, &t.shape))
}

/// Outputs with more elements than this are built in parallel chunks. At 1 << 16, the layers
/// just below it ran on one thread at 2 threads slower than at 1 (PicoDet's squeeze-excite Mul
/// over 96x26x26, 0.008 -> 0.024 ms; YOLOv8n's Splits and Adds), reading half their input from
/// the other core's cache, where the convolution before them had written it; at 1 << 14 the
/// Muls, Adds, Splits, Concats and Resizes of PicoDet and YOLOv8n took 0.02-0.05 ms less each.
const PARALLEL_MIN: usize = 1 << 14;

/// A chunk of an output under construction, written front to back.
pub(crate) struct Sink<'a, R> {
    buf: &'a mut [MaybeUninit<R>],
    len: usize,
}

impl<R> Sink<'_, R> {
    /// Appends the items of `it` that fit. Always inlined, so that the loop is compiled for its
    /// caller's instruction set (the activations' wide loops).
    #[inline(always)]
    pub(crate) fn extend(&mut self, it: impl IntoIterator<Item = R>) {
        let mut n = 0;
        for (slot, v) in self.buf[self.len..].iter_mut().zip(it) {
            slot.write(v);
            n += 1;
        }
        self.len += n;
    }

    /// Appends a copy of the last `n` items appended, which must fit (and exist).
    pub(crate) fn repeat_last(&mut self, n: usize)
    where
        R: Copy,
    {
        let (done, rest) = self.buf.split_at_mut(self.len);
        rest[..n].copy_from_slice(&done[self.len - n..]);
        self.len += n;
    }

    /// Appends each element of `src` `k` times over, which must fit: a nearest upsampling's
    /// row, in fixed-size groups the compiler vectorizes (element by element through
    /// [`Sink::extend`], YOLOv8n's 2x upsamplings took 6x onnxruntime's time).
    #[inline(always)]
    pub(crate) fn repeat_each(&mut self, src: &[R], k: usize)
    where
        R: Copy,
    {
        let dst = &mut self.buf[self.len..self.len + src.len() * k];
        match k {
            2 => {
                for (pair, &x) in dst.chunks_exact_mut(2).zip(src) {
                    pair[0].write(x);
                    pair[1].write(x);
                }
            }
            _ => {
                for (group, &x) in dst.chunks_exact_mut(k.max(1)).zip(src) {
                    for slot in group {
                        slot.write(x);
                    }
                }
            }
        }
        self.len += src.len() * k;
    }

    /// Appends `f` of each element of `src`, which must fit. An index loop with `f` called in
    /// it: a `Zip` of a `Map` was left outlined and scalar, whatever the caller's instruction
    /// set, once `f` was as large as GELU's erf.
    #[inline(always)]
    pub(crate) fn map_from<S: Copy>(&mut self, src: &[S], f: impl Fn(S) -> R) {
        let dst = &mut self.buf[self.len..self.len + src.len()];
        for i in 0..src.len() {
            dst[i].write(f(src[i]));
        }
        self.len += src.len();
    }
}

/// A vector of `total` elements, `fill` writing each range of it in order: in parallel chunks on
/// the current rayon pool when the output is large, in one piece otherwise. `fill` must write
/// exactly its range's length (checked).
pub(crate) fn build<R: Send + 'static>(
    total: usize,
    fill: impl Fn(Range<usize>, &mut Sink<R>) + Sync,
) -> Vec<R> {
    let mut out = buffers::empty(total);
    let spare = &mut out.spare_capacity_mut()[..total];
    huge_pages(spare);
    let run = |start: usize, buf: &mut [MaybeUninit<R>]| {
        let want = buf.len();
        let mut sink = Sink { buf, len: 0 };
        fill(start..start + want, &mut sink);
        assert_eq!(sink.len, want, "a chunk of the output was left unwritten");
    };
    let threads = rayon::current_num_threads();
    if total <= PARALLEL_MIN || threads <= 1 {
        run(0, spare);
    } else {
        // A few chunks per thread for balance, whole cache lines each.
        let chunk = total
            .div_ceil(4 * threads)
            .max(PARALLEL_MIN / 4)
            .next_multiple_of(64);
        spare
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, buf)| run(i * chunk, buf));
    }
    // SAFETY: every chunk of the first `total` slots was checked to be fully written above
    // (a panic there unwinds before this point, leaving the vector empty).
    unsafe { out.set_len(total) };
    out
}

/// Asks Linux to back a large fresh buffer with transparent huge pages, so that first touching
/// it takes a few faults rather than one per 4 KiB page. Only a hint; the contents are unaffected.
fn huge_pages<R>(buf: &mut [MaybeUninit<R>]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        const MADV_HUGEPAGE: i32 = 14;
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        let bytes = std::mem::size_of_val(buf);
        if bytes < 2 * HUGE {
            return;
        }
        let start = buf.as_mut_ptr() as usize;
        let (lo, hi) = (start.next_multiple_of(HUGE), (start + bytes) / HUGE * HUGE);
        if hi > lo {
            // SAFETY: the range lies inside `buf`, which this call borrows mutably; the advice
            // changes only how the kernel backs the pages, never their contents.
            unsafe { madvise(lo as *mut std::ffi::c_void, hi - lo, MADV_HUGEPAGE) };
        }
    }
}

/// `f` over the broadcast of `a` and `b` to `out_shape`.
pub(crate) fn apply<A: Copy + Sync, B: Copy + Sync, R: Send + 'static>(
    (a, ash): Operand<A>,
    (b, bsh): Operand<B>,
    out_shape: &[usize],
    f: impl Fn(A, B) -> R + Sync,
) -> Vec<R> {
    let total: usize = out_shape.iter().product();
    if total == 0 {
        return Vec::new();
    }
    let dims = merged_dims([ash, bsh], out_shape);
    let Some((&(inner, steps), outer)) = dims.split_last() else {
        return vec![f(a[0], b[0])];
    };
    let [ia, ib] = steps;
    build(total, |range, sink| {
        segments(outer, (inner, steps), range, |[oa, ob], n| match (ia, ib) {
            (1, 1) => sink.extend(
                a[oa..oa + n]
                    .iter()
                    .zip(&b[ob..ob + n])
                    .map(|(&p, &q)| f(p, q)),
            ),
            (1, 0) => {
                let q = b[ob];
                sink.extend(a[oa..oa + n].iter().map(|&p| f(p, q)))
            }
            (0, 1) => {
                let p = a[oa];
                sink.extend(b[ob..ob + n].iter().map(|&q| f(p, q)))
            }
            _ => sink.extend((0..n).map(|i| f(a[oa + i * ia], b[ob + i * ib]))),
        })
    })
}

/// Calls `seg` with each operand's offset and the length of every run of `range` (in output
/// order) that lies within one row of the innermost merged axis `inner`, the `outer` axes
/// counting like an odometer.
fn segments<const N: usize>(
    outer: &[(usize, [usize; N])],
    (inner, inner_steps): (usize, [usize; N]),
    range: Range<usize>,
    mut seg: impl FnMut([usize; N], usize),
) {
    let mut remaining = range.len();
    if remaining == 0 {
        return;
    }
    let mut within = range.start % inner;
    let mut row = range.start / inner;
    let mut index = vec![0usize; outer.len()];
    let mut offsets = [0usize; N];
    for (d, &(n, steps)) in outer.iter().enumerate().rev() {
        index[d] = row % n;
        row /= n;
        for (o, s) in offsets.iter_mut().zip(steps) {
            *o += index[d] * s;
        }
    }
    loop {
        let len = (inner - within).min(remaining);
        seg(
            std::array::from_fn(|k| offsets[k] + within * inner_steps[k]),
            len,
        );
        remaining -= len;
        if remaining == 0 {
            return;
        }
        within = 0;
        let mut d = outer.len();
        loop {
            // The range ends within the output, so the odometer never runs out here.
            d -= 1;
            let (n, steps) = outer[d];
            index[d] += 1;
            for (o, s) in offsets.iter_mut().zip(steps) {
                *o += s;
            }
            if index[d] < n {
                break;
            }
            for (o, s) in offsets.iter_mut().zip(steps) {
                *o -= s * n;
            }
            index[d] = 0;
        }
    }
}

pub(crate) fn where_(cond: &Tensor, x: &Tensor, y: &Tensor) -> Result<Tensor, RuntimeError> {
    let c = super::elements::<bool>(cond, "condition", DType::Bool)?;
    if x.dtype() != y.dtype() {
        return Err(RuntimeError::bad_input(format!(
            "x and y dtypes differ: {} and {}",
            x.dtype(),
            y.dtype()
        )));
    }
    let shape = broadcast_shape(&broadcast_shape(&x.shape, &y.shape)?, &cond.shape)?;
    let data = dispatch!(x.dtype(), T => T::wrap(select((c, &cond.shape), operand::<T>(x)?, operand::<T>(y)?, &shape)));
    Ok(Tensor { shape, data })
}

fn select<T: Copy>(
    (c, csh): Operand<bool>,
    (x, xsh): Operand<T>,
    (y, ysh): Operand<T>,
    out_shape: &[usize],
) -> Vec<T> {
    let total: usize = out_shape.iter().product();
    if total == 0 {
        return Vec::new();
    }
    let dims = merged_dims([csh, xsh, ysh], out_shape);
    let Some((&(inner, [ic, ix, iy]), outer)) = dims.split_last() else {
        return vec![if c[0] { x[0] } else { y[0] }];
    };
    let mut out = Vec::with_capacity(total);
    rows(outer, |[oc, ox, oy]| {
        out.extend((0..inner).map(|i| {
            if c[oc + i * ic] {
                x[ox + i * ix]
            } else {
                y[oy + i * iy]
            }
        }))
    });
    out
}

/// Calls `row` with each operand's offset at the start of every row of the innermost merged
/// axis, the `outer` axes counting like an odometer.
fn rows<const N: usize>(outer: &[(usize, [usize; N])], mut row: impl FnMut([usize; N])) {
    let mut index = vec![0usize; outer.len()];
    let mut offsets = [0usize; N];
    loop {
        row(offsets);
        let mut d = outer.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            let (n, steps) = outer[d];
            index[d] += 1;
            for (o, s) in offsets.iter_mut().zip(steps) {
                *o += s;
            }
            if index[d] < n {
                break;
            }
            for (o, s) in offsets.iter_mut().zip(steps) {
                *o -= s * n;
            }
            index[d] = 0;
        }
    }
}

/// The output axes as (extent, stride in each operand), size-1 axes dropped and neighbours
/// that every operand steps through contiguously (or holds still on) merged.
fn merged_dims<const N: usize>(
    shapes: [&[usize]; N],
    out_shape: &[usize],
) -> Vec<(usize, [usize; N])> {
    let r = out_shape.len();
    let strides = shapes.map(|s| {
        let mut st = vec![0; r];
        let mut acc = 1;
        for i in (0..s.len()).rev() {
            st[i + r - s.len()] = if s[i] == 1 { 0 } else { acc };
            acc *= s[i];
        }
        st
    });
    let mut dims: Vec<(usize, [usize; N])> = Vec::new();
    for (i, &n) in out_shape.iter().enumerate() {
        if n == 1 {
            continue;
        }
        let cur: [usize; N] = std::array::from_fn(|k| strides[k][i]);
        match dims.last_mut() {
            Some((m, prev)) if (0..N).all(|k| prev[k] == cur[k] * n) => {
                *m *= n;
                *prev = cur;
            }
            _ => dims.push((n, cur)),
        }
    }
    dims
}

#[cfg(test)]
mod tests {
    use super::{apply, broadcast_shape};

    /// The value at output index `i` of an operand of shape `sh` broadcast to `out`.
    fn naive(data: &[i64], sh: &[usize], out: &[usize], mut i: usize) -> i64 {
        let mut offset = 0;
        let mut stride = 1;
        for d in (0..out.len()).rev() {
            let coord = i % out[d];
            i /= out[d];
            if let Some(k) = (d + sh.len()).checked_sub(out.len()) {
                if sh[k] != 1 {
                    offset += coord * stride;
                }
                stride *= sh[k];
            }
        }
        data[offset]
    }

    #[test]
    fn parallel_broadcast_matches_naive() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let cases: [(&[usize], &[usize]); 6] = [
            (&[3, 96, 33, 37], &[3, 96, 33, 37]),
            (&[1], &[2, 32, 71, 53]),
            (&[2, 96, 41, 39], &[1, 96, 1, 1]),
            (&[7, 1, 61], &[1, 301, 1]),
            (&[5, 61, 1, 13], &[61, 23, 1]),
            (&[3, 3], &[2, 3, 3]),
        ];
        for (ash, bsh) in cases {
            let out = broadcast_shape(ash, bsh).unwrap();
            let a: Vec<i64> = (0..ash.iter().product::<usize>() as i64).collect();
            let b: Vec<i64> = (0..bsh.iter().product::<usize>() as i64)
                .map(|v| v * 1_000_003)
                .collect();
            let got = pool.install(|| apply((&a, ash), (&b, bsh), &out, |p, q| p * 7 + q));
            let total: usize = out.iter().product();
            assert_eq!(got.len(), total);
            for (i, &g) in got.iter().enumerate() {
                let want = naive(&a, ash, &out, i) * 7 + naive(&b, bsh, &out, i);
                assert_eq!(g, want, "{ash:?} with {bsh:?} at {i}");
            }
        }
    }
}
