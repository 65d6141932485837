//! Rules of the indexing ops: Slice, Gather, GatherElements, GatherND, ScatterND, NonZero.

use super::movement::operand_len;
use super::{dims, Ins};
use temblor_ir::{DType, Dim, Shape, TensorType};

fn check_indices(t: &TensorType) -> Result<(), String> {
    match t.dtype {
        DType::I64 | DType::I32 => Ok(()),
        other => Err(format!("indices are {other}, expected int32 or int64")),
    }
}

/// The number of elements `start:end:step` selects from an axis of `extent`, with ONNX's
/// clamping (negative bounds count from the end; out-of-range bounds are clamped).
fn slice_len(extent: usize, start: i64, end: i64, step: i64) -> usize {
    if extent == 0 {
        return 0;
    }
    let n = extent as i64;
    let wrap = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
    let (start, end) = (wrap(start), wrap(end));
    let span = if step > 0 {
        end.clamp(0, n) - start.clamp(0, n)
    } else {
        start.clamp(0, n - 1) - end.clamp(-1, n - 1)
    };
    let step = step.unsigned_abs() as i64;
    if span <= 0 {
        0
    } else {
        ((span + step - 1) / step) as usize
    }
}

/// Constant starts, ends, axes and steps give exact extents; an axis that keeps everything
/// (`0:INT_MAX:1`) keeps its dim even when that is not known. Computed bounds leave the axes
/// they touch unknown, and every axis when the axes themselves are computed.
pub(super) fn slice(ins: &Ins) -> Result<TensorType, String> {
    let x = ins.ty(0)?;
    let d = x.shape.dims();
    let n = operand_len(ins.ty(1)?, "starts")?;
    let axes: Option<Vec<usize>> = match ins.opt(3) {
        // Without axes, starts name the leading axes: no more of them than the input has.
        None if n > d.len() => {
            return Err(format!(
                "{n} starts for an input of rank {} and no axes",
                d.len()
            ))
        }
        None => Some((0..n).collect()),
        Some(_) => ins
            .ints(3)
            .map(|a| {
                a.iter()
                    .map(|&v| dims::axis(v, d.len()))
                    .collect::<Result<_, _>>()
            })
            .transpose()?,
    };
    let Some(axes) = axes else {
        return Ok(TensorType::new(x.dtype, Shape(vec![Dim::Unknown; d.len()])));
    };
    let steps = match ins.opt(4) {
        None => Some(vec![1; axes.len()]),
        Some(_) => ins.ints(4),
    };
    let mut shape = d.to_vec();
    match (ins.ints(1), ins.ints(2), steps) {
        (Some(starts), Some(ends), Some(steps)) => {
            if starts.len() != axes.len() || ends.len() != axes.len() || steps.len() != axes.len() {
                return Err(format!(
                    "starts {starts:?}, ends {ends:?}, steps {steps:?} and axes {axes:?} differ \
                     in length"
                ));
            }
            for (i, &a) in axes.iter().enumerate() {
                let (start, end, step) = (starts[i], ends[i], steps[i]);
                if step == 0 {
                    return Err("a slice step is 0".into());
                }
                shape[a] = match &d[a] {
                    Dim::Known(e) => Dim::Known(slice_len(*e, start, end, step)),
                    other if start == 0 && step == 1 && end >= i32::MAX as i64 => other.clone(),
                    _ => Dim::Unknown,
                };
            }
        }
        _ => axes.iter().for_each(|&a| shape[a] = Dim::Unknown),
    }
    Ok(TensorType {
        dtype: x.dtype,
        shape: Shape(shape),
        layout: x.layout,
    })
}

/// `[rank, count]` int64 indices; the count depends on the data.
pub(super) fn non_zero(x: &TensorType) -> TensorType {
    TensorType::new(
        DType::I64,
        Shape(vec![Dim::Known(x.shape.rank()), Dim::Unknown]),
    )
}

pub(super) fn gather(
    axis: i64,
    data: &TensorType,
    indices: &TensorType,
) -> Result<TensorType, String> {
    check_indices(indices)?;
    let d = data.shape.dims();
    let ax = dims::axis(axis, d.len())?;
    let mut shape = d[..ax].to_vec();
    shape.extend_from_slice(indices.shape.dims());
    shape.extend_from_slice(&d[ax + 1..]);
    Ok(TensorType::new(data.dtype, Shape(shape)))
}

pub(super) fn gather_elements(
    axis: i64,
    data: &TensorType,
    indices: &TensorType,
) -> Result<TensorType, String> {
    check_indices(indices)?;
    let rank = data.shape.rank();
    dims::axis(axis, rank)?;
    if indices.shape.rank() != rank {
        return Err(format!(
            "indices have shape {}, data has {}; the ranks must agree",
            indices.shape, data.shape
        ));
    }
    Ok(TensorType::new(data.dtype, indices.shape.clone()))
}

/// The last axis of the indices addresses that many data axes after the batch axes; the
/// result is the indices' leading axes followed by the data axes left.
pub(super) fn gather_nd(
    batch_dims: usize,
    data: &TensorType,
    indices: &TensorType,
) -> Result<TensorType, String> {
    check_indices(indices)?;
    let (d, id) = (data.shape.dims(), indices.shape.dims());
    let Some((last, lead)) = id.split_last() else {
        return Err("indices are a scalar; they need at least one axis".into());
    };
    let k = last.known().ok_or_else(|| {
        format!(
            "indices have shape {}; the last axis must be known to know the result's rank",
            indices.shape
        )
    })?;
    if batch_dims >= id.len() || batch_dims + k > d.len() {
        return Err(format!(
            "indices of shape {} with {batch_dims} batch axes do not index data of shape {}",
            indices.shape, data.shape
        ));
    }
    let mut shape = lead.to_vec();
    for (i, s) in shape.iter_mut().enumerate().take(batch_dims) {
        *s = dims::unify(s, &d[i]).map_err(|e| format!("batch axis {i}: {e}"))?;
    }
    shape.extend_from_slice(&d[batch_dims + k..]);
    Ok(TensorType::new(data.dtype, Shape(shape)))
}

pub(super) fn scatter_nd(
    data: &TensorType,
    indices: &TensorType,
    updates: &TensorType,
) -> Result<TensorType, String> {
    if indices.dtype != DType::I64 {
        return Err(format!("indices are {}, expected int64", indices.dtype));
    }
    if updates.dtype != data.dtype {
        return Err(format!(
            "updates are {}, data is {}",
            updates.dtype, data.dtype
        ));
    }
    Ok(data.clone())
}

#[cfg(test)]
mod tests {
    use super::slice_len;

    #[test]
    fn slice_lengths_follow_onnx_clamping() {
        assert_eq!(slice_len(10, 0, i64::MAX, 1), 10);
        assert_eq!(slice_len(10, -3, -1, 1), 2);
        assert_eq!(slice_len(10, 20, 1000, 1), 0);
        assert_eq!(slice_len(10, i64::MAX, i64::MIN, -1), 10);
        assert_eq!(slice_len(10, -1, -11, -3), 4);
        assert_eq!(slice_len(0, 0, 5, 1), 0);
        assert_eq!(slice_len(20, 0, 3, 2), 2);
    }
}
