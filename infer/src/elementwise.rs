//! Elementwise ops: the output has the input's shape, or the numpy broadcast of the operands'.

use super::dims;
use temblor_ir::{BinaryOp, DType, Dim, Layout, Shape, TensorType};

/// Comparisons give bool; Pow keeps the base's dtype whatever the exponent's; the others need
/// operands of one dtype.
pub(super) fn binary_op(
    op: BinaryOp,
    a: &TensorType,
    b: &TensorType,
) -> Result<TensorType, String> {
    if op != BinaryOp::Pow {
        same_dtype(a, b)?;
    }
    let mut out = broadcast(a, b)?;
    if op.is_comparison() {
        out.dtype = DType::Bool;
    }
    Ok(out)
}

pub(super) fn where_(
    cond: &TensorType,
    x: &TensorType,
    y: &TensorType,
) -> Result<TensorType, String> {
    if cond.dtype != DType::Bool {
        return Err(format!("condition is {}, expected bool", cond.dtype));
    }
    same_dtype(x, y)?;
    let values = broadcast(x, y)?;
    let mut out = broadcast(&values, cond)?;
    out.dtype = x.dtype;
    Ok(out)
}

fn same_dtype(a: &TensorType, b: &TensorType) -> Result<(), String> {
    if a.dtype == b.dtype {
        Ok(())
    } else {
        Err(format!(
            "operand dtypes differ: {} and {}",
            a.dtype, b.dtype
        ))
    }
}

/// The broadcast of `a` and `b`, with `a`'s dtype.
fn broadcast(a: &TensorType, b: &TensorType) -> Result<TensorType, String> {
    let rank = a.shape.rank().max(b.shape.rank());
    let pad = |s: &Shape| {
        let mut d = vec![Dim::Known(1); rank - s.rank()];
        d.extend(s.0.iter().cloned());
        d
    };
    let (da, db) = (pad(&a.shape), pad(&b.shape));
    let out = da
        .iter()
        .zip(&db)
        .map(|(x, y)| dims::broadcast(x, y))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("shapes {} and {} do not broadcast: {e}", a.shape, b.shape))?;
    // The full-rank operand's layout describes the result (x * per-channel scale stays NCHW).
    let layout = [a, b]
        .iter()
        .find(|t| t.shape.rank() == rank && t.layout != Layout::Any)
        .map_or(Layout::Any, |t| t.layout);
    Ok(TensorType {
        dtype: a.dtype,
        shape: Shape(out),
        layout,
    })
}
