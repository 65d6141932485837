//! Ops that only move elements: Concat, Reshape, Transpose, Split, for every dtype.

use super::execute::{not_in_family, Args};
use super::{dispatch, elements, normalize_axis, strides, Element};
use crate::{RuntimeError, Tensor};
use temblor_ir::{Op, SplitSizes};

pub(crate) fn execute(op: &Op, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
    let x = args.required(0)?;
    let one = |t: Tensor| Ok(vec![t]);
    match op {
        Op::Concat { axis } => one(concat(&args.all()?, *axis)?),
        Op::Reshape { allowzero } => one(reshape(x, args.required(1)?, *allowzero)?),
        Op::Transpose { perm } => one(transpose(x, perm)?),
        Op::Split { axis, sizes } => split(x, *axis, sizes, args.outputs),
        Op::Slice
        | Op::Flatten { .. }
        | Op::Squeeze
        | Op::Unsqueeze
        | Op::Expand
        | Op::Tile
        | Op::Gather { .. }
        | Op::GatherElements { .. }
        | Op::GatherNd { .. }
        | Op::ScatterNd { .. }
        | Op::Shape { .. }
        | Op::Size
        | Op::ConstantOfShape { .. }
        | Op::Range
        | Op::Pad { .. }
        | Op::NonZero => Err(RuntimeError::unsupported(format!(
            "no CPU kernel for {} yet",
            op.name()
        ))),
        _ => Err(not_in_family(op, "data movement")),
    }
}

pub(crate) fn concat(inputs: &[&Tensor], axis: i64) -> Result<Tensor, RuntimeError> {
    let Some(first) = inputs.first() else {
        return Err(RuntimeError::internal("Concat has no inputs"));
    };
    let axis = normalize_axis(axis, first.shape.len())?;
    let mut shape = first.shape.clone();
    shape[axis] = 0;
    for t in inputs {
        let fits = t.dtype() == first.dtype()
            && t.shape.len() == shape.len()
            && (0..shape.len()).all(|i| i == axis || t.shape[i] == shape[i]);
        if !fits {
            return Err(RuntimeError::bad_input(format!(
                "cannot concatenate {} {:?} with {} {:?} on axis {axis}",
                t.dtype(),
                t.shape,
                first.dtype(),
                first.shape
            )));
        }
        shape[axis] += t.shape[axis];
    }
    let outer: usize = shape[..axis].iter().product();
    dispatch!(first.dtype(), T => {
        let parts = inputs
            .iter()
            .map(|t| {
                let chunk: usize = t.shape[axis..].iter().product();
                elements::<T>(t, "input", first.dtype()).map(|v| (v, chunk))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(shape.iter().product());
        for o in 0..outer {
            for (v, chunk) in &parts {
                out.extend_from_slice(&v[o * chunk..(o + 1) * chunk]);
            }
        }
        Ok(Tensor { shape, data: T::wrap(out) })
    })
}

/// The target shape of a Reshape: `0` copies the input's extent there (unless `allowzero`),
/// `-1` takes whatever extent keeps the element count.
pub(crate) fn reshape_target(
    input: &[usize],
    target: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>, RuntimeError> {
    let bad = |why: String| {
        RuntimeError::bad_input(format!("cannot reshape {input:?} to {target:?}: {why}"))
    };
    let mut shape = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &d) in target.iter().enumerate() {
        shape.push(match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            -1 => return Err(bad("more than one -1".into())),
            0 if allowzero => 0,
            0 => *input
                .get(i)
                .ok_or_else(|| bad(format!("0 at position {i} copies no input axis")))?,
            d if d > 0 => d as usize,
            d => return Err(bad(format!("extent {d}"))),
        });
    }
    let count: usize = input.iter().product();
    let known = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad("the element count overflows".into()))?;
    if let Some(i) = infer {
        if known == 0 || count % known != 0 {
            return Err(bad("no extent for -1 keeps the element count".into()));
        }
        shape[i] = count / known;
    } else if known != count {
        return Err(bad(format!("{count} elements cannot become {known}")));
    }
    Ok(shape)
}

pub(crate) fn reshape(
    x: &Tensor,
    target: &Tensor,
    allowzero: bool,
) -> Result<Tensor, RuntimeError> {
    let dims: Vec<i64> = match &target.data {
        crate::TensorData::I64(v) => v.clone(),
        crate::TensorData::I32(v) => v.iter().map(|&d| d as i64).collect(),
        _ => {
            return Err(RuntimeError::bad_input(format!(
                "the shape input is {}, not int64",
                target.dtype()
            )))
        }
    };
    if target.shape.len() != 1 {
        return Err(RuntimeError::bad_input(format!(
            "the shape input must be 1-D, got shape {:?}",
            target.shape
        )));
    }
    let shape = reshape_target(&x.shape, &dims, allowzero)?;
    Ok(Tensor {
        shape,
        data: x.data.clone(),
    })
}

/// An empty `perm` reverses the axes, as ONNX's default does.
pub(crate) fn transpose(x: &Tensor, perm: &[usize]) -> Result<Tensor, RuntimeError> {
    let r = x.shape.len();
    let perm: Vec<usize> = if perm.is_empty() {
        (0..r).rev().collect()
    } else {
        perm.to_vec()
    };
    let mut seen = vec![false; r];
    let valid = perm.len() == r
        && perm
            .iter()
            .all(|&p| p < r && !std::mem::replace(&mut seen[p], true));
    if !valid {
        return Err(RuntimeError::bad_input(format!(
            "perm {perm:?} is not a permutation of {r} axes"
        )));
    }
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let in_strides = strides(&x.shape);
    // The input stride of each output axis, walked in output order.
    let walk: Vec<(usize, usize)> = perm.iter().map(|&p| (x.shape[p], in_strides[p])).collect();
    dispatch!(x.dtype(), T => {
        let v = elements::<T>(x, "input", x.dtype())?;
        Ok(Tensor { shape, data: T::wrap(gather(v, &walk)) })
    })
}

/// Reads `v` along `walk` (extent, stride) axes, last axis fastest.
fn gather<T: Element>(v: &[T], walk: &[(usize, usize)]) -> Vec<T> {
    let total: usize = walk.iter().map(|w| w.0).product();
    let mut out = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    let Some((&(n, s), outer)) = walk.split_last() else {
        out.push(v[0]);
        return out;
    };
    let mut index = vec![0usize; outer.len()];
    let mut base = 0;
    loop {
        out.extend((0..n).map(|i| v[base + i * s]));
        let mut d = outer.len();
        loop {
            if d == 0 {
                return out;
            }
            d -= 1;
            index[d] += 1;
            base += outer[d].1;
            if index[d] < outer[d].0 {
                break;
            }
            base -= outer[d].1 * outer[d].0;
            index[d] = 0;
        }
    }
}

pub(crate) fn split(
    x: &Tensor,
    axis: i64,
    sizes: &SplitSizes,
    outputs: usize,
) -> Result<Vec<Tensor>, RuntimeError> {
    let axis = normalize_axis(axis, x.shape.len())?;
    let sizes = sizes
        .resolve(x.shape[axis])
        .filter(|s| s.len() == outputs)
        .ok_or_else(|| {
            RuntimeError::bad_input(format!(
                "{sizes:?} does not split axis {axis} of {:?} into {outputs} outputs",
                x.shape
            ))
        })?;
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    dispatch!(x.dtype(), T => {
        let v = elements::<T>(x, "input", x.dtype())?;
        let row = x.shape[axis] * inner;
        let mut start = 0;
        let mut result = Vec::with_capacity(sizes.len());
        for &size in &sizes {
            let mut out = Vec::with_capacity(outer * size * inner);
            for o in 0..outer {
                out.extend_from_slice(&v[o * row + start * inner..o * row + (start + size) * inner]);
            }
            start += size;
            let mut shape = x.shape.clone();
            shape[axis] = size;
            result.push(Tensor { shape, data: T::wrap(out) });
        }
        Ok(result)
    })
}
