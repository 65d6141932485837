//! Rules of reductions, arg-extremes, TopK, Gemm's bias, Softmax and LayerNorm (pooling and
//! linear algebra have their own files).

use super::{dims, linalg, Inferred, Ins};
use temblor_ir::{DType, Dim, Shape, TensorType};

/// `dims` with the masked axes set to 1 (`keepdims`) or removed.
fn drop_axes(dims: &[Dim], mask: &[bool], keepdims: bool) -> Shape {
    Shape(
        dims.iter()
            .zip(mask)
            .filter_map(|(d, &m)| match (m, keepdims) {
                (false, _) => Some(d.clone()),
                (true, true) => Some(Dim::Known(1)),
                (true, false) => None,
            })
            .collect(),
    )
}

pub(super) fn reduce(ins: &Ins, keepdims: bool, noop: bool) -> Result<TensorType, String> {
    let x = ins.ty(0)?;
    let r = x.shape.rank();
    let axes = match ins.opt(1) {
        None => Some(Vec::new()),
        Some(_) => ins.ints(1),
    };
    let shape = match axes {
        Some(list) if list.is_empty() && noop => x.shape.clone(),
        Some(list) if list.is_empty() => drop_axes(x.shape.dims(), &vec![true; r], keepdims),
        Some(list) => {
            let mut mask = vec![false; r];
            for a in list {
                mask[dims::axis(a, r)?] = true;
            }
            drop_axes(x.shape.dims(), &mask, keepdims)
        }
        None if keepdims => Shape(vec![Dim::Unknown; r]),
        // Computed axes: the output rank still follows from how many there are.
        None => {
            let count = ins.ty(1)?.shape.dims().first().and_then(Dim::known);
            let rank = match count {
                Some(0) if noop => r,
                Some(0) => 0,
                Some(n) => r
                    .checked_sub(n)
                    .ok_or_else(|| format!("{n} axes to reduce for an input of rank {r}"))?,
                None => {
                    return Err(
                        "the axes are computed and their count is unknown, so the output rank \
                         (keepdims 0) is unknown"
                            .into(),
                    )
                }
            };
            Shape(vec![Dim::Unknown; rank])
        }
    };
    Ok(TensorType::new(x.dtype, shape))
}

/// ArgMax and ArgMin: int64 indices with `axis` dropped or, with `keepdims`, kept as 1.
pub(super) fn arg_extreme(x: &TensorType, axis: i64, keepdims: bool) -> Result<TensorType, String> {
    let a = dims::axis(axis, x.shape.rank())?;
    let mut mask = vec![false; x.shape.rank()];
    mask[a] = true;
    Ok(TensorType::new(
        DType::I64,
        drop_axes(x.shape.dims(), &mask, keepdims),
    ))
}

pub(super) fn gemm(ins: &Ins, trans_a: bool, trans_b: bool) -> Result<TensorType, String> {
    let out = linalg::gemm(ins.ty(0)?, ins.ty(1)?, trans_a, trans_b)?;
    if let Some(c) = ins.opt(2) {
        check_stretch(c, &out, "C")?;
    }
    Ok(out)
}

/// The input's type; a scalar has no axis to check.
pub(super) fn softmax(x: &TensorType, axis: i64) -> Result<TensorType, String> {
    if x.shape.rank() > 0 {
        dims::axis(axis, x.shape.rank())?;
    }
    Ok(x.clone())
}

pub(super) fn top_k(ins: &Ins, axis: i64) -> Result<Inferred, String> {
    let x = ins.ty(0)?;
    let a = dims::axis(axis, x.shape.rank())?;
    let mut d = x.shape.dims().to_vec();
    d[a] = match ins.ints(1).as_deref() {
        Some([k]) => Dim::Known(usize::try_from(*k).map_err(|_| format!("k is {k}"))?),
        _ => Dim::Unknown,
    };
    let values = TensorType::new(x.dtype, Shape(d.clone()));
    let indices = TensorType::new(DType::I64, Shape(d));
    Ok((
        None,
        [values, indices]
            .into_iter()
            .take(ins.n_outputs.max(1))
            .collect(),
    ))
}

/// `t` must stretch to `to` by numpy's rules without changing it.
fn check_stretch(t: &TensorType, to: &TensorType, what: &str) -> Result<(), String> {
    let (td, od) = (t.shape.dims(), to.shape.dims());
    let fits = td.len() <= od.len()
        && td
            .iter()
            .rev()
            .zip(od.iter().rev())
            .all(|(a, b)| match (a, b) {
                (Dim::Known(x), Dim::Known(y)) => x == y || *x == 1,
                _ => true,
            });
    if fits {
        Ok(())
    } else {
        Err(format!(
            "{what} of shape {} does not broadcast to {}",
            t.shape, to.shape
        ))
    }
}

pub(super) fn layer_norm(ins: &Ins, axis: i64) -> Result<Inferred, String> {
    let x = ins.ty(0)?;
    let r = x.shape.rank();
    let a = dims::axis(axis, r)?;
    let normalized = TensorType::new(x.dtype, Shape(x.shape.dims()[a..].to_vec()));
    for (p, what) in [(1, "scale"), (2, "bias")] {
        if let Some(t) = ins.opt(p) {
            check_stretch(t, &normalized, what)?;
        }
    }
    let mut stat = x.shape.dims().to_vec();
    stat[a..].fill(Dim::Known(1));
    let stat = TensorType::new(DType::F32, Shape(stat));
    Ok((
        None,
        [x.clone(), stat.clone(), stat]
            .into_iter()
            .take(ins.n_outputs.max(1))
            .collect(),
    ))
}
