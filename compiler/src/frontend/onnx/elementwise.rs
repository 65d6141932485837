//! Elementwise ops: activations, arithmetic, comparisons, logic, Where and Cast.

use super::ops::{floats, unlisted, Family, Mapped, NodeCtx};
use temblor_ir::{BinaryOp, Op, UnaryOp};

pub(super) const FAMILY: Family = Family {
    constant_inputs: &[("Clip", &[1, 2])],
    ops: &[
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Relu",
        "Sigmoid",
        "Identity",
        "HardSigmoid",
        "Clip",
    ],
    map,
};

fn map(ctx: &NodeCtx) -> Result<Mapped, String> {
    let a = &ctx.attrs;
    Ok(match ctx.op_type {
        "Add" => Op::Binary(BinaryOp::Add),
        "Sub" => Op::Binary(BinaryOp::Sub),
        "Mul" => Op::Binary(BinaryOp::Mul),
        "Div" => Op::Binary(BinaryOp::Div),
        "Relu" => Op::Unary(UnaryOp::Relu),
        "Sigmoid" => Op::Unary(UnaryOp::Sigmoid),
        "Identity" => Op::Unary(UnaryOp::Identity),
        "HardSigmoid" => Op::HardSigmoid {
            alpha: a.float("alpha", 0.2)?,
            beta: a.float("beta", 0.5)?,
        },
        "Clip" => Op::Clip {
            min: bound(ctx, 1, "min", f32::NEG_INFINITY)?,
            max: bound(ctx, 2, "max", f32::INFINITY)?,
        },
        _ => return Err(unlisted(ctx)),
    }
    .into())
}

/// A Clip bound: absent means unbounded; present must be a constant scalar.
fn bound(ctx: &NodeCtx, i: usize, what: &str, absent: f32) -> Result<f32, String> {
    if !ctx.present(i) {
        return Ok(absent);
    }
    let w = ctx.constant(i).ok_or_else(|| {
        format!("input {i} ('{what}') is computed at run time; only a constant is supported")
    })?;
    match floats(w)?[..] {
        [v] => Ok(v),
        _ => Err(format!(
            "input {i} ('{what}') has shape {:?}, expected a scalar",
            w.dims
        )),
    }
}
