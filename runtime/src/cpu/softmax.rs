//! Softmax and LogSoftmax along one axis (or, with `flatten`, over every axis from it on, as
//! opsets before 13 define it). The last axis runs row by row over contiguous memory; an inner
//! axis runs on whole rows of the trailing block at once, so memory is still read in order.

use super::buffers;
use super::isa::Isa;
use super::real::{dispatch_real, sum_f64, values, Real};
use super::reduce::around;
use super::{normalize_axis, Element};
use crate::RuntimeError;
use crate::Tensor;
use rayon::prelude::*;
use std::mem::MaybeUninit;

pub(crate) fn softmax(
    x: &Tensor,
    axis: i64,
    log: bool,
    flatten: bool,
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    let what = if log { "LogSoftmax" } else { "Softmax" };
    let r = x.shape.len();
    // A scalar is one row of one element.
    let (_, n, inner) = if r == 0 {
        (1, 1, 1)
    } else {
        let a = normalize_axis(axis, r)?;
        if flatten {
            let n = x.shape[a..].iter().product();
            (x.shape[..a].iter().product(), n, 1)
        } else {
            around(&x.shape, a)
        }
    };
    dispatch_real!(x.dtype(), what, T => {
        let v = values::<T>(x, "input")?;
        let mut out = buffers::empty(v.len());
        let block = n * inner;
        if block == 0 {
            out.extend_from_slice(v);
        } else {
            // Each task computes its blocks into the output while they are in cache, `TASK`
            // elements or more at a time (rows along the last axis straight from the input,
            // blocks along an inner axis copied first and computed in place): copied whole
            // beforehand, on one thread, and a task a row, ViT-S's attention softmax (rows of
            // 257) took 2.5x onnxruntime's time, and longer on two threads than on one.
            const TASK: usize = 1 << 14;
            let per_task = block * TASK.div_ceil(block);
            let spare = &mut out.spare_capacity_mut()[..v.len()];
            spare
                .par_chunks_mut(per_task)
                .zip(v.par_chunks(per_task))
                .for_each(|(dst, src)| {
                    if inner == 1 && n <= SHORT {
                        return short_rows(src, dst, n, log, isa);
                    }
                    for (dst, src) in dst.chunks_exact_mut(block).zip(src.chunks_exact(block)) {
                        if inner == 1 {
                            isa.widest(
                                #[inline(always)]
                                || row(src, dst, log),
                            );
                            continue;
                        }
                        for (d, &s) in dst.iter_mut().zip(src) {
                            d.write(s);
                        }
                        // SAFETY: every element of `dst` was written just above.
                        let dst = unsafe { &mut *(dst as *mut [MaybeUninit<T>] as *mut [T]) };
                        columns(dst, n, inner, log, isa);
                    }
                });
            // SAFETY: the tasks' chunks cover the first `v.len()` elements (whole blocks each,
            // the input being blocks end to end), and each wrote every element of its blocks.
            unsafe { out.set_len(v.len()) };
        }
        Ok(Tensor { shape: x.shape.clone(), data: T::wrap(out) })
    })
}

/// Rows at most this long run down the columns of their transpose ([`short_rows`]).
const SHORT: usize = 16;

/// Softmax of the rows of `n` elements of `src` into `dst`, computed down the columns of their
/// transpose, where the vectors run across rows: row by row, each row of 8 paid for a vector
/// pass's setup and its reductions, and PicoDet's box distributions (10816 rows of 8) took
/// 3x onnxruntime's time. Each element takes the steps [`row`] gives it.
fn short_rows<T: Real>(src: &[T], dst: &mut [MaybeUninit<T>], n: usize, log: bool, isa: Isa) {
    let rows = src.len() / n;
    let mut t = Vec::with_capacity(src.len());
    for j in 0..n {
        t.extend(src.iter().skip(j).step_by(n).copied());
    }
    let mut columns: Vec<&mut [T]> = t.chunks_exact_mut(rows).collect();
    isa.widest(
        #[inline(always)]
        || stripe(&mut columns, log),
    );
    for (i, d) in dst.chunks_exact_mut(n).enumerate() {
        for (j, e) in d.iter_mut().enumerate() {
            e.write(t[j * rows + i]);
        }
    }
}

/// Softmax of one contiguous row `src` into `dst`, in passes simple enough to vectorize, the
/// first of which writes `dst` whole. The sum runs in f64 so long rows keep every digit.
#[inline(always)]
fn row<T: Real>(src: &[T], dst: &mut [MaybeUninit<T>], log: bool) {
    let max = max_of(src);
    if log {
        let sum = sum_f64(src, |e| (e - max).exp().to_f64());
        let ln = T::from_f64(sum.ln());
        for (d, &e) in dst.iter_mut().zip(src) {
            d.write((e - max) - ln);
        }
    } else {
        for (d, &e) in dst.iter_mut().zip(src) {
            d.write((e - max).exp());
        }
        // SAFETY: every element of `dst` was written just above.
        let v = unsafe { &mut *(dst as *mut [MaybeUninit<T>] as *mut [T]) };
        let inv = T::from_f64(1.0 / sum_f64(v, T::to_f64));
        v.iter_mut().for_each(|e| *e = *e * inv);
    }
}

/// The largest element of `v` (not empty) by `>`, so a NaN counts only as the first element,
/// over 32 running maxima (two vectors at AVX-512's width): one chain of dependent selects was
/// a third of ViT-S's attention softmax over rows of 257, and one of eight a quarter.
#[inline(always)]
fn max_of<T: Real>(v: &[T]) -> T {
    let pick = |m: T, e: T| if e > m { e } else { m };
    let mut wide = [v[0]; 32];
    let chunks = v.chunks_exact(32);
    let rest = chunks.remainder().iter().copied().fold(v[0], pick);
    for c in chunks {
        for (l, &e) in wide.iter_mut().zip(c) {
            *l = pick(*l, e);
        }
    }
    wide.into_iter().fold(rest, pick)
}

/// Softmax along the middle axis of an `[n, inner]` block, in place, in stripes of columns
/// that run in parallel: each column is independent, and a stripe's `n` rows stay in cache
/// through the three passes. (YOLOv8's box head is one block of 16 x 8400: by blocks alone it
/// ran on one thread, each pass over the whole block.)
fn columns<T: Real>(b: &mut [T], n: usize, inner: usize, log: bool, isa: Isa) {
    const STRIPE: usize = 512;
    let mut stripes: Vec<Vec<&mut [T]>> = (0..inner.div_ceil(STRIPE))
        .map(|_| Vec::with_capacity(n))
        .collect();
    for row in b.chunks_exact_mut(inner) {
        for (s, piece) in row.chunks_mut(STRIPE).enumerate() {
            stripes[s].push(piece);
        }
    }
    stripes.into_par_iter().for_each(|mut rows| {
        isa.widest(
            #[inline(always)]
            || stripe(&mut rows, log),
        )
    });
}

/// Softmax down the columns of `rows` (equally long), in place.
#[inline(always)]
fn stripe<T: Real>(rows: &mut [&mut [T]], log: bool) {
    let mut max = rows[0].to_vec();
    for r in &rows[1..] {
        for (m, &e) in max.iter_mut().zip(r.iter()) {
            // A select, not a conditional store, so that it vectorizes.
            *m = if e > *m { e } else { *m };
        }
    }
    let mut sum = vec![0.0f64; max.len()];
    for r in rows.iter_mut() {
        for ((e, &m), s) in r.iter_mut().zip(&max).zip(sum.iter_mut()) {
            let d = *e - m;
            let ex = d.exp();
            *s += ex.to_f64();
            *e = if log { d } else { ex };
        }
    }
    let scale: Vec<T> = sum
        .iter()
        .map(|&s| T::from_f64(if log { s.ln() } else { 1.0 / s }))
        .collect();
    for r in rows.iter_mut() {
        for (e, &s) in r.iter_mut().zip(&scale) {
            *e = if log { *e - s } else { *e * s };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Along the last axis and along an inner one (in stripes), Softmax and LogSoftmax give the
    /// same bits on every instruction set here, within 1e-6 of the f64 definition.
    #[test]
    fn every_width_computes_the_definition_bit_for_bit() {
        let mut values = super::super::test_values(5);
        let mut next = || values() * 40.0;
        // Long rows, an inner axis, and short rows (run across rows) in several tasks and in one.
        let cases = [
            (
                vec![2, 16, 3, 700],
                vec![(3, false), (3, true), (1, false), (1, true)],
            ),
            (vec![3, 1000, 8], vec![(2, false), (2, true)]),
            (vec![5, 7], vec![(1, false), (1, true)]),
        ];
        for (shape, axis, log) in cases
            .iter()
            .flat_map(|(shape, axes)| axes.iter().map(move |&(a, l)| (shape.clone(), a, l)))
        {
            let x = Tensor::f32(
                shape.clone(),
                (0..shape.iter().product()).map(|_| next()).collect(),
            );
            let xv = x.as_f32().unwrap();
            let (outer, n, inner) = around(&shape, axis as usize);
            let mut first: Option<Vec<f32>> = None;
            for isa in Isa::available() {
                let y = softmax(&x, axis, log, false, isa).unwrap();
                let yv = y.as_f32().unwrap().to_vec();
                for o in 0..outer {
                    for i in 0..inner {
                        let at = |j: usize| (o * n + j) * inner + i;
                        let max = (0..n)
                            .map(|j| f64::from(xv[at(j)]))
                            .fold(f64::MIN, f64::max);
                        let sum: f64 = (0..n).map(|j| (f64::from(xv[at(j)]) - max).exp()).sum();
                        for j in 0..n {
                            let d = f64::from(xv[at(j)]) - max;
                            let want = if log { d - sum.ln() } else { d.exp() / sum };
                            let got = f64::from(yv[at(j)]);
                            assert!(
                                (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                                "{isa}, axis {axis}, log {log}: {got} vs {want}"
                            );
                        }
                    }
                }
                match &first {
                    None => first = Some(yv),
                    Some(f) => assert!(
                        f.iter().zip(&yv).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{isa}, axis {axis}, log {log}: bits differ from the first instruction set"
                    ),
                }
            }
        }
    }
}
