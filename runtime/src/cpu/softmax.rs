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

/// Softmax along the middle axis of an `[n, inner]` block, in place.
fn columns<T: Real>(b: &mut [T], n: usize, inner: usize, log: bool) {
    let mut max = b[..inner].to_vec();
    for j in 1..n {
        for (m, &e) in max.iter_mut().zip(&b[j * inner..(j + 1) * inner]) {
            if e > *m {
                *m = e;
            }
        }
    }
    let mut sum = vec![0.0f64; inner];
    for j in 0..n {
        let r = &mut b[j * inner..(j + 1) * inner];
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
    for j in 0..n {
        let r = &mut b[j * inner..(j + 1) * inner];
        for (e, &s) in r.iter_mut().zip(&scale) {
            *e = if log { *e - s } else { *e * s };
        }
    }
}
