//! Indexing ops: Slice, Gather, GatherElements, GatherND, ScatterND and NonZero, for every
//! dtype. Indices are checked and turned into element offsets before any element moves, so the
//! copy loops need no checks and copy whole runs where they can.

use super::args::Args;
use super::buffers;
use super::number::Number;
use super::shape_ops::{distinct_axes, int_list, int_values};
use super::{dispatch, elements, normalize_axis, strided, strides, Element};
use crate::{RuntimeError, Tensor};
use temblor_ir::ScatterReduction;

/// Indices of the non-zero elements of `x`, `[rank, count]` int64.
pub(crate) fn nonzero(x: &Tensor) -> Result<Tensor, RuntimeError> {
    Ok(dispatch!(x.dtype(), T => {
        nonzero_of(elements::<T>(x, "input", x.dtype())?, &x.shape)
    }))
}

/// An index into an axis of extent `n`; negative counts from the end.
fn resolve(i: i64, n: usize) -> Result<usize, RuntimeError> {
    let j = if i < 0 { i.saturating_add(n as i64) } else { i };
    usize::try_from(j)
        .ok()
        .filter(|&j| j < n)
        .ok_or_else(|| RuntimeError::bad_input(format!("index {i} is out of range for extent {n}")))
}

fn product(d: &[usize]) -> usize {
    d.iter().product()
}

/// The first index `start:end:step` selects on an axis of extent `n`, and how many it selects,
/// with ONNX's clamping of out-of-range bounds.
pub(crate) fn slice_bounds(n: usize, start: i64, end: i64, step: i64) -> (usize, usize) {
    if n == 0 {
        return (0, 0);
    }
    let n = n as i64;
    let wrap = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
    let (first, span) = if step > 0 {
        let s = wrap(start).clamp(0, n);
        (s, wrap(end).clamp(0, n) - s)
    } else {
        let s = wrap(start).clamp(0, n - 1);
        (s, s - wrap(end).clamp(-1, n - 1))
    };
    let step = step.unsigned_abs();
    let len = if span > 0 {
        (span as u64 - 1) / step + 1
    } else {
        0
    };
    (first as usize, len as usize)
}

pub(crate) fn slice(x: &Tensor, args: &Args) -> Result<Tensor, RuntimeError> {
    let r = x.shape.len();
    let starts = int_list(args.required(1)?, "starts")?;
    let ends = int_list(args.required(2)?, "ends")?;
    let axes = match args.optional(3) {
        Some(t) => distinct_axes(&int_list(t, "axes")?, r)?,
        None => (0..starts.len()).collect(),
    };
    let steps = match args.optional(4) {
        Some(t) => int_list(t, "steps")?,
        None => vec![1; starts.len()],
    };
    let n = axes.len();
    if starts.len() != n || ends.len() != n || steps.len() != n || axes.iter().any(|&a| a >= r) {
        return Err(RuntimeError::bad_input(format!(
            "starts {starts:?}, ends {ends:?}, axes {axes:?} and steps {steps:?} do not slice \
             shape {:?}",
            x.shape
        )));
    }
    let xs = strides(&x.shape);
    let mut walk: Vec<strided::Axis> = x
        .shape
        .iter()
        .zip(&xs)
        .map(|(&d, &s)| (d, s as isize))
        .collect();
    let mut offset = 0;
    for (i, &a) in axes.iter().enumerate() {
        if steps[i] == 0 {
            return Err(RuntimeError::bad_input("a slice step is 0"));
        }
        let (first, len) = slice_bounds(x.shape[a], starts[i], ends[i], steps[i]);
        // With one element or none the stride is never taken, and a huge step must not
        // overflow it.
        let stride = if len > 1 {
            steps[i] as isize * xs[a] as isize
        } else {
            0
        };
        walk[a] = (len, stride);
        offset += first * xs[a];
    }
    let shape = walk.iter().map(|w| w.0).collect();
    dispatch!(x.dtype(), T => {
        let v = elements::<T>(x, "input", x.dtype())?;
        Ok(Tensor { shape, data: T::wrap(strided::copy(v, offset, &walk)) })
    })
}

pub(crate) fn gather(x: &Tensor, indices: &Tensor, axis: i64) -> Result<Tensor, RuntimeError> {
    let ax = normalize_axis(axis, x.shape.len())?;
    let n = x.shape[ax];
    let idx = int_values(indices, "indices")?
        .into_iter()
        .map(|i| resolve(i, n))
        .collect::<Result<Vec<_>, _>>()?;
    let outer = product(&x.shape[..ax]);
    let inner = product(&x.shape[ax + 1..]);
    let mut shape = x.shape[..ax].to_vec();
    shape.extend_from_slice(&indices.shape);
    shape.extend_from_slice(&x.shape[ax + 1..]);
    dispatch!(x.dtype(), T => {
        let v = elements::<T>(x, "input", x.dtype())?;
        let mut out = buffers::empty(outer * idx.len() * inner);
        for o in 0..outer {
            let block = &v[o * n * inner..(o + 1) * n * inner];
            if inner == 1 {
                out.extend(idx.iter().map(|&i| block[i]));
            } else {
                for &i in &idx {
                    out.extend_from_slice(&block[i * inner..(i + 1) * inner]);
                }
            }
        }
        Ok(Tensor { shape, data: T::wrap(out) })
    })
}

/// Each output element reads the input at its own position, with the axis coordinate taken
/// from the indices.
pub(crate) fn gather_elements(
    x: &Tensor,
    indices: &Tensor,
    axis: i64,
) -> Result<Tensor, RuntimeError> {
    let r = x.shape.len();
    let ax = normalize_axis(axis, r)?;
    let is = &indices.shape;
    if is.len() != r || (0..r).any(|k| k != ax && is[k] > x.shape[k]) {
        return Err(RuntimeError::bad_input(format!(
            "indices of shape {is:?} do not fit data of shape {:?} on axis {ax}",
            x.shape
        )));
    }
    let xs = strides(&x.shape);
    let idx = int_values(indices, "indices")?;
    let mut offsets = Vec::with_capacity(idx.len());
    for (flat, &i) in idx.iter().enumerate() {
        let mut rest = flat;
        let mut offset = resolve(i, x.shape[ax])? * xs[ax];
        for k in (0..r).rev() {
            if k != ax {
                offset += (rest % is[k]) * xs[k];
            }
            rest /= is[k];
        }
        offsets.push(offset);
    }
    dispatch!(x.dtype(), T => {
        let v = elements::<T>(x, "input", x.dtype())?;
        Ok(Tensor { shape: is.clone(), data: T::wrap(offsets.iter().map(|&o| v[o]).collect()) })
    })
}

/// The offsets of the runs the index tuples (the last axis of `indices`) address in a tensor
/// of `shape` after `batch_dims` batch axes; a tuple of `k` entries addresses a run of the
/// extents after axis `batch_dims + k`.
fn tuple_offsets(
    shape: &[usize],
    indices: &Tensor,
    batch_dims: usize,
) -> Result<(Vec<usize>, usize), RuntimeError> {
    let is = &indices.shape;
    let k = is.last().copied().unwrap_or(0);
    let fits = !is.is_empty()
        && batch_dims < is.len()
        && batch_dims + k <= shape.len()
        && is[..batch_dims] == shape[..batch_dims];
    if !fits {
        return Err(RuntimeError::bad_input(format!(
            "indices of shape {is:?} with {batch_dims} batch axes do not index shape {shape:?}"
        )));
    }
    let idx = int_values(indices, "indices")?;
    let st = strides(shape);
    let count = product(&is[..is.len() - 1]);
    let per_batch = product(&is[batch_dims..is.len() - 1]);
    let batch_stride = product(&shape[batch_dims..]);
    let mut offsets = Vec::with_capacity(count);
    for t in 0..count {
        let mut offset = t.checked_div(per_batch).unwrap_or(0) * batch_stride;
        for (j, &i) in idx[t * k..(t + 1) * k].iter().enumerate() {
            offset += resolve(i, shape[batch_dims + j])? * st[batch_dims + j];
        }
        offsets.push(offset);
    }
    Ok((offsets, product(&shape[batch_dims + k..])))
}

pub(crate) fn gather_nd(
    x: &Tensor,
    indices: &Tensor,
    batch_dims: usize,
) -> Result<Tensor, RuntimeError> {
    let (offsets, inner) = tuple_offsets(&x.shape, indices, batch_dims)?;
    let k = indices.shape.last().copied().unwrap_or(0);
    let mut shape = indices.shape[..indices.shape.len() - 1].to_vec();
    shape.extend_from_slice(&x.shape[batch_dims + k..]);
    dispatch!(x.dtype(), T => {
        let v = elements::<T>(x, "input", x.dtype())?;
        let mut out = Vec::with_capacity(offsets.len() * inner);
        for &o in &offsets {
            out.extend_from_slice(&v[o..o + inner]);
        }
        Ok(Tensor { shape, data: T::wrap(out) })
    })
}

pub(crate) fn scatter_nd(
    x: &Tensor,
    indices: &Tensor,
    updates: &Tensor,
    reduction: ScatterReduction,
) -> Result<Tensor, RuntimeError> {
    let (offsets, inner) = tuple_offsets(&x.shape, indices, 0)?;
    let k = indices.shape.last().copied().unwrap_or(0);
    let mut want = indices.shape[..indices.shape.len() - 1].to_vec();
    want.extend_from_slice(&x.shape[k..]);
    if updates.shape != want || updates.dtype() != x.dtype() {
        return Err(RuntimeError::bad_input(format!(
            "updates are {} {:?}; {} {want:?} expected",
            updates.dtype(),
            updates.shape,
            x.dtype()
        )));
    }
    dispatch!(x.dtype(), T => {
        let v = elements::<T>(x, "input", x.dtype())?;
        let u = elements::<T>(updates, "updates", x.dtype())?;
        Ok(Tensor { shape: x.shape.clone(), data: T::wrap(scatter(v, u, &offsets, inner, reduction)) })
    })
}

fn scatter<T: Number>(
    v: &[T],
    updates: &[T],
    offsets: &[usize],
    inner: usize,
    reduction: ScatterReduction,
) -> Vec<T> {
    let mut out = v.to_vec();
    for (&o, src) in offsets.iter().zip(updates.chunks_exact(inner.max(1))) {
        let dst = &mut out[o..o + inner];
        let combine: fn(T, T) -> T = match reduction {
            ScatterReduction::None => {
                dst.copy_from_slice(&src[..inner]);
                continue;
            }
            ScatterReduction::Add => T::plus,
            ScatterReduction::Mul => T::times,
            ScatterReduction::Max => T::larger,
            ScatterReduction::Min => T::smaller,
        };
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = combine(*d, s);
        }
    }
    out
}

/// The coordinates of the non-zero elements, one column each, in row-major order.
fn nonzero_of<T: Element + PartialEq>(v: &[T], shape: &[usize]) -> Tensor {
    let hits: Vec<usize> = (0..v.len()).filter(|&i| v[i] != T::default()).collect();
    let st = strides(shape);
    let mut out = vec![0i64; shape.len() * hits.len()];
    for (j, &flat) in hits.iter().enumerate() {
        for (a, (&s, &d)) in st.iter().zip(shape).enumerate() {
            out[a * hits.len() + j] = ((flat / s) % d) as i64;
        }
    }
    Tensor::i64(vec![shape.len(), hits.len()], out)
}
