//! Elementwise binary ops with numpy broadcasting.

use super::{dims, not_in_family, one, Inferred, Ins};
use temblor_ir::{Layout, Op, Shape, TensorType};

pub(super) fn infer(op: &Op, ins: &Ins) -> Result<Inferred, String> {
    match op {
        Op::Unary(_) | Op::HardSigmoid { .. } | Op::Clip { .. } => one(ins.ty(0)?.clone()),
        Op::Binary(_) => one(binary(ins.ty(0)?, ins.ty(1)?)?),
        Op::LeakyRelu { .. } | Op::Gelu { .. } | Op::Where | Op::Cast { .. } => {
            Err(format!("no shape rule for {} yet", op.name()))
        }
        _ => Err(not_in_family(op)),
    }
}

pub(super) fn binary(a: &TensorType, b: &TensorType) -> Result<TensorType, String> {
    if a.dtype != b.dtype {
        return Err(format!(
            "operand dtypes differ: {} and {}",
            a.dtype, b.dtype
        ));
    }
    let rank = a.shape.rank().max(b.shape.rank());
    let pad = |s: &Shape| {
        let mut d = vec![temblor_ir::Dim::Known(1); rank - s.rank()];
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
