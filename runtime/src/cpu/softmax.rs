//! Softmax and LogSoftmax along one axis (or, with `flatten`, over every axis from it on, as
//! opsets before 13 define it). The last axis runs row by row over contiguous memory; an inner
//! axis runs on whole rows of the trailing block at once, so memory is still read in order.

use super::real::{dispatch_real, sum_f64, values, Real};
use super::reduce::around;
use super::{normalize_axis, Element};
use crate::RuntimeError;
use crate::Tensor;
use rayon::prelude::*;

pub(crate) fn softmax(
    x: &Tensor,
    axis: i64,
    log: bool,
    flatten: bool,
) -> Result<Tensor, RuntimeError> {
    let what = if log { "LogSoftmax" } else { "Softmax" };
    let r = x.shape.len();
    // A scalar is one row of one element.
    let (outer, n, inner) = if r == 0 {
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
        let mut out = v.to_vec();
        if n > 0 && inner > 0 {
            out.par_chunks_mut(n * inner).take(outer).for_each(|block| {
                if inner == 1 {
                    row(block, log);
                } else {
                    columns(block, n, inner, log);
                }
            });
        }
        Ok(Tensor { shape: x.shape.clone(), data: T::wrap(out) })
    })
}

/// Softmax of one contiguous row, in place, in passes simple enough to vectorize. The sum runs
/// in f64 so long rows keep every digit.
fn row<T: Real>(v: &mut [T], log: bool) {
    let max = v
        .iter()
        .copied()
        .fold(v[0], |m, e| if e > m { e } else { m });
    if log {
        let sum = sum_f64(v, |e| (e - max).exp().to_f64());
        let ln = T::from_f64(sum.ln());
        v.iter_mut().for_each(|e| *e = (*e - max) - ln);
    } else {
        v.iter_mut().for_each(|e| *e = (*e - max).exp());
        let inv = T::from_f64(1.0 / sum_f64(v, T::to_f64));
        v.iter_mut().for_each(|e| *e = *e * inv);
    }
}

/// Softmax along the middle axis of an `[n, inner]` block, in place, in stripes of columns
/// that run in parallel: each column is independent, and a stripe's `n` rows stay in cache
/// through the three passes. (YOLOv8's box head is one block of 16 x 8400: by blocks alone it
/// ran on one thread, each pass over the whole block.)
fn columns<T: Real>(b: &mut [T], n: usize, inner: usize, log: bool) {
    const STRIPE: usize = 512;
    let mut stripes: Vec<Vec<&mut [T]>> = (0..inner.div_ceil(STRIPE))
        .map(|_| Vec::with_capacity(n))
        .collect();
    for row in b.chunks_exact_mut(inner) {
        for (s, piece) in row.chunks_mut(STRIPE).enumerate() {
            stripes[s].push(piece);
        }
    }
    stripes
        .into_par_iter()
        .for_each(|mut rows| stripe(&mut rows, log));
}

/// Softmax down the columns of `rows` (equally long), in place.
fn stripe<T: Real>(rows: &mut [&mut [T]], log: bool) {
    let mut max = rows[0].to_vec();
    for r in &rows[1..] {
        for (m, &e) in max.iter_mut().zip(r.iter()) {
            if e > *m {
                *m = e;
            }
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
