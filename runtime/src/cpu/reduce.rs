//! Reductions (Reduce*), arg-extremes and TopK, for every element type. A reduction walks its
//! input once, in memory order, after merging adjacent axes that are alike (all reduced or all
//! kept), so reducing trailing axes folds contiguous rows and reducing leading ones adds whole
//! rows.

use super::real::{sum_f64, values, Ordered};
use super::{bf16, dispatch, f16, normalize_axis};
use crate::{RuntimeError, Tensor};
use std::cmp::Ordering;
use temblor_ir::ReduceOp;

/// `op` over `axes` (absent or empty: every axis, unless `noop_with_empty_axes`).
pub(crate) fn reduce(
    op: ReduceOp,
    x: &Tensor,
    axes: Option<&Tensor>,
    (keepdims, noop_with_empty_axes): (bool, bool),
) -> Result<Tensor, RuntimeError> {
    let Some(axes) = reduced_axes(x, axes, noop_with_empty_axes)? else {
        return Ok(x.clone());
    };
    let shape = reduced_shape(&x.shape, &axes, keepdims);
    dispatch!(x.dtype(), T => reduce_t::<T>(op, x, &axes, shape))
}

/// The index of the smallest (`min`) or largest element along `axis`, the last of equal ones
/// with `select_last_index`.
pub(crate) fn arg_extreme(
    x: &Tensor,
    axis: i64,
    keepdims: bool,
    (min, select_last_index): (bool, bool),
) -> Result<Tensor, RuntimeError> {
    let axis = normalize_axis(axis, x.shape.len())?;
    let pick = Pick {
        min,
        last: select_last_index,
    };
    dispatch!(x.dtype(), T => arg_extreme_t::<T>(x, axis, keepdims, pick))
}

/// The `k` largest (or smallest) elements along `axis`, sorted, and their indices.
pub(crate) fn top_k(
    x: &Tensor,
    k: &Tensor,
    axis: i64,
    largest: bool,
) -> Result<Vec<Tensor>, RuntimeError> {
    let axis = normalize_axis(axis, x.shape.len())?;
    let k = top_k_count(k, x.shape[axis])?;
    dispatch!(x.dtype(), T => top_k_t::<T>(x, axis, k, largest))
}

/// Per axis, whether it is reduced; `None` when empty axes make the op an identity.
fn reduced_axes(
    x: &Tensor,
    axes: Option<&Tensor>,
    noop_with_empty_axes: bool,
) -> Result<Option<Vec<bool>>, RuntimeError> {
    let r = x.shape.len();
    let list = match axes {
        Some(t) => values::<i64>(t, "axes")?,
        None => &[],
    };
    if list.is_empty() {
        return Ok((!noop_with_empty_axes).then(|| vec![true; r]));
    }
    let mut mask = vec![false; r];
    for &a in list {
        mask[normalize_axis(a, r)?] = true;
    }
    Ok(Some(mask))
}

fn reduced_shape(shape: &[usize], axes: &[bool], keepdims: bool) -> Vec<usize> {
    shape
        .iter()
        .zip(axes)
        .filter_map(|(&d, &red)| match (red, keepdims) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}

/// An element type with the accumulator its sums and products run in: f64 for floats, i128
/// (wrapping back on output, as integer arithmetic does) for integers and bool.
trait Reducible: Ordered + Send + Sync {
    type Acc: Copy;
    const ACC_ZERO: Self::Acc;
    const ACC_ONE: Self::Acc;
    fn acc(self) -> Self::Acc;
    fn add(a: Self::Acc, b: Self::Acc) -> Self::Acc;
    fn mul(a: Self::Acc, b: Self::Acc) -> Self::Acc;
    fn finish(a: Self::Acc) -> Self;
    fn mean(a: Self::Acc, count: usize) -> Self;
    /// `acc` plus the sum of a contiguous row.
    fn sum_row(acc: Self::Acc, row: &[Self]) -> Self::Acc {
        row.iter().fold(acc, |a, &e| Self::add(a, e.acc()))
    }
}

macro_rules! reducible_float {
    ($t:ty, $to:expr, $from:expr) => {
        impl Reducible for $t {
            type Acc = f64;
            const ACC_ZERO: f64 = 0.0;
            const ACC_ONE: f64 = 1.0;
            fn acc(self) -> f64 {
                $to(self)
            }
            fn add(a: f64, b: f64) -> f64 {
                a + b
            }
            fn mul(a: f64, b: f64) -> f64 {
                a * b
            }
            fn finish(a: f64) -> Self {
                $from(a)
            }
            fn mean(a: f64, count: usize) -> Self {
                $from(a / count as f64)
            }
            fn sum_row(acc: f64, row: &[Self]) -> f64 {
                acc + sum_f64(row, $to)
            }
        }
    };
}

reducible_float!(f32, f64::from, |a| a as f32);
reducible_float!(f64, |a| a, |a| a);
reducible_float!(f16, f64::from, f16::from_f64);
reducible_float!(bf16, f64::from, bf16::from_f64);

macro_rules! reducible_int {
    ($($t:ty),*) => {
        $(impl Reducible for $t {
            type Acc = i128;
            const ACC_ZERO: i128 = 0;
            const ACC_ONE: i128 = 1;
            fn acc(self) -> i128 {
                self as i128
            }
            fn add(a: i128, b: i128) -> i128 {
                a.wrapping_add(b)
            }
            fn mul(a: i128, b: i128) -> i128 {
                a.wrapping_mul(b)
            }
            fn finish(a: i128) -> Self {
                a as $t
            }
            fn mean(a: i128, count: usize) -> Self {
                a.checked_div(count as i128).unwrap_or(0) as $t
            }
        })*
    };
}

reducible_int!(i8, u8, i16, u16, i32, u32, i64, u64);

impl Reducible for bool {
    type Acc = i128;
    const ACC_ZERO: i128 = 0;
    const ACC_ONE: i128 = 1;
    fn acc(self) -> i128 {
        self as i128
    }
    fn add(a: i128, b: i128) -> i128 {
        a.wrapping_add(b)
    }
    fn mul(a: i128, b: i128) -> i128 {
        a.wrapping_mul(b)
    }
    fn finish(a: i128) -> Self {
        a != 0
    }
    fn mean(a: i128, count: usize) -> Self {
        a.checked_div(count as i128).unwrap_or(0) != 0
    }
}

/// The axes after dropping extent-1 ones and merging neighbours that are alike:
/// (extent, reduced) pairs.
fn merged(shape: &[usize], axes: &[bool]) -> Vec<(usize, bool)> {
    let mut out: Vec<(usize, bool)> = Vec::new();
    for (&d, &red) in shape.iter().zip(axes) {
        match out.last_mut() {
            _ if d == 1 => {}
            Some(last) if last.1 == red => last.0 *= d,
            _ => out.push((d, red)),
        }
    }
    out
}

/// Folds `x` (laid out as `dims`) into `out`, one slot per kept position; `row` folds a
/// contiguous reduced row at once.
fn walk<A: Copy, T: Copy>(
    x: &[T],
    dims: &[(usize, bool)],
    out: &mut [A],
    f: &impl Fn(A, T) -> A,
    row: &impl Fn(A, &[T]) -> A,
) {
    match dims {
        [] => out[0] = f(out[0], x[0]),
        [(n, true)] => out[0] = row(out[0], &x[..*n]),
        [(n, false)] => {
            for (o, &e) in out[..*n].iter_mut().zip(x) {
                *o = f(*o, e);
            }
        }
        [(n, red), rest @ ..] => {
            let in_step: usize = rest.iter().map(|d| d.0).product();
            let out_step: usize = rest.iter().filter(|d| !d.1).map(|d| d.0).product();
            for i in 0..*n {
                let o = if *red { 0 } else { i * out_step };
                walk(&x[i * in_step..], rest, &mut out[o..], f, row);
            }
        }
    }
}

fn reduce_t<T: Reducible>(
    op: ReduceOp,
    x: &Tensor,
    axes: &[bool],
    shape: Vec<usize>,
) -> Result<Tensor, RuntimeError> {
    let v = values::<T>(x, "input")?;
    let dims = merged(&x.shape, axes);
    let n_out: usize = shape.iter().product();
    let count = x
        .shape
        .iter()
        .zip(axes)
        .filter(|p| *p.1)
        .map(|p| *p.0)
        .product();
    let fold = |init: T::Acc, f: fn(T::Acc, T::Acc) -> T::Acc, sum: bool| {
        let mut acc = vec![init; n_out];
        let each = |a, e: T| f(a, e.acc());
        let row = |a, r: &[T]| {
            if sum {
                T::sum_row(a, r)
            } else {
                r.iter().fold(a, |a, &e| each(a, e))
            }
        };
        if !v.is_empty() {
            walk(v, &dims, &mut acc, &each, &row);
        }
        acc
    };
    let extreme = |init: T, want: Ordering| {
        let mut out = vec![init; n_out];
        let each = |a: T, e: T| if e.order(&a) == want { e } else { a };
        if !v.is_empty() {
            walk(v, &dims, &mut out, &each, &|a, r: &[T]| {
                r.iter().fold(a, |a, &e| each(a, e))
            });
        }
        out
    };
    let out: Vec<T> = match op {
        ReduceOp::Sum => fold(T::ACC_ZERO, T::add, true)
            .into_iter()
            .map(T::finish)
            .collect(),
        ReduceOp::Prod => fold(T::ACC_ONE, T::mul, false)
            .into_iter()
            .map(T::finish)
            .collect(),
        ReduceOp::Mean => fold(T::ACC_ZERO, T::add, true)
            .into_iter()
            .map(|a| T::mean(a, count))
            .collect(),
        ReduceOp::Max => extreme(T::LOWEST, Ordering::Greater),
        ReduceOp::Min => extreme(T::HIGHEST, Ordering::Less),
    };
    Ok(Tensor {
        shape,
        data: T::wrap(out),
    })
}

/// Which extreme an arg-extreme looks for, and which of equal ones it reports.
#[derive(Clone, Copy)]
struct Pick {
    min: bool,
    last: bool,
}

/// `(outer, extent, inner)` of `shape` around `axis`.
pub(crate) fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

fn arg_extreme_t<T: Ordered>(
    x: &Tensor,
    axis: usize,
    keepdims: bool,
    pick: Pick,
) -> Result<Tensor, RuntimeError> {
    let v = values::<T>(x, "input")?;
    let (outer, n, inner) = around(&x.shape, axis);
    if n == 0 {
        return Err(RuntimeError::bad_input(format!(
            "{} of an empty axis {axis} (shape {:?})",
            if pick.min { "ArgMin" } else { "ArgMax" },
            x.shape
        )));
    }
    let want = if pick.min {
        Ordering::Less
    } else {
        Ordering::Greater
    };
    let mut idx = vec![0i64; outer * inner];
    for o in 0..outer {
        let block = &v[o * n * inner..(o + 1) * n * inner];
        let best = &mut idx[o * inner..(o + 1) * inner];
        for j in 1..n {
            let row = &block[j * inner..(j + 1) * inner];
            for (l, (b, &e)) in best.iter_mut().zip(row).enumerate() {
                let cmp = e.order(&block[*b as usize * inner + l]);
                if cmp == want || (pick.last && cmp == Ordering::Equal) {
                    *b = j as i64;
                }
            }
        }
    }
    let mask: Vec<bool> = (0..x.shape.len()).map(|a| a == axis).collect();
    Ok(Tensor::i64(reduced_shape(&x.shape, &mask, keepdims), idx))
}

/// TopK's `k` (an int64 of one element), checked against the axis extent.
fn top_k_count(k: &Tensor, extent: usize) -> Result<usize, RuntimeError> {
    let kv = values::<i64>(k, "k")?;
    let [k] = kv[..] else {
        return Err(RuntimeError::bad_input(format!(
            "k must hold one value, got shape {:?}",
            k.shape
        )));
    };
    usize::try_from(k)
        .ok()
        .filter(|&k| k <= extent)
        .ok_or_else(|| {
            RuntimeError::bad_input(format!("k is {k}, expected 0..={extent} (the axis extent)"))
        })
}

/// The `k` largest (or smallest) along `axis`, best first; equal values keep their order, as
/// ONNX requires.
fn top_k_t<T: Ordered>(
    x: &Tensor,
    axis: usize,
    k: usize,
    largest: bool,
) -> Result<Vec<Tensor>, RuntimeError> {
    let v = values::<T>(x, "input")?;
    let (outer, n, inner) = around(&x.shape, axis);
    let mut vals = vec![T::default(); outer * k * inner];
    let mut idx = vec![0i64; outer * k * inner];
    let cmp = |a: &(T, usize), b: &(T, usize)| {
        let by_value = if largest {
            b.0.order(&a.0)
        } else {
            a.0.order(&b.0)
        };
        by_value.then(a.1.cmp(&b.1))
    };
    let mut lane: Vec<(T, usize)> = Vec::with_capacity(n);
    for o in 0..outer {
        for l in 0..inner {
            lane.clear();
            lane.extend((0..n).map(|j| (v[(o * n + j) * inner + l], j)));
            if k > 0 && k < n {
                lane.select_nth_unstable_by(k - 1, cmp);
            }
            lane[..k].sort_unstable_by(cmp);
            for (j, &(e, i)) in lane[..k].iter().enumerate() {
                let at = (o * k + j) * inner + l;
                vals[at] = e;
                idx[at] = i as i64;
            }
        }
    }
    let mut shape = x.shape.clone();
    shape[axis] = k;
    Ok(vec![
        Tensor {
            shape: shape.clone(),
            data: T::wrap(vals),
        },
        Tensor::i64(shape, idx),
    ])
}
