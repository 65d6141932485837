//! Reductions, arg-extremes, TopK, Softmax and LayerNorm. Operands that older opsets give as
//! attributes (reduction axes, TopK's k) become constant inputs.

use super::ctx::{unlisted, Family, Mapped, NodeCtx};
use temblor_ir::{Op, ReduceOp, Weight};

pub(super) const FAMILY: Family = Family {
    constant_inputs: &[],
    ops: &[
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ArgMax",
        "ArgMin",
        "TopK",
        "Softmax",
        "LogSoftmax",
        "LayerNormalization",
    ],
    map,
};

fn map(ctx: &NodeCtx) -> Result<Mapped, String> {
    let a = &ctx.attrs;
    let op = match ctx.op_type {
        "ReduceMean" => return reduce(ctx, ReduceOp::Mean),
        "ReduceSum" => return reduce(ctx, ReduceOp::Sum),
        "ReduceMax" => return reduce(ctx, ReduceOp::Max),
        "ReduceMin" => return reduce(ctx, ReduceOp::Min),
        "ReduceProd" => return reduce(ctx, ReduceOp::Prod),
        "TopK" => return top_k(ctx),
        "ArgMax" | "ArgMin" => Op::ArgExtreme {
            min: ctx.op_type == "ArgMin",
            axis: a.int("axis", 0)?,
            keepdims: a.int("keepdims", 1)? != 0,
            select_last_index: a.int("select_last_index", 0)? != 0,
        },
        "Softmax" | "LogSoftmax" => {
            // Before opset 13 the op worked on the input coerced to 2-D at `axis`.
            let flatten = ctx.opset < 13;
            Op::Softmax {
                axis: a.int("axis", if flatten { 1 } else { -1 })?,
                log: ctx.op_type == "LogSoftmax",
                flatten,
            }
        }
        "LayerNormalization" => {
            if ctx.n_outputs > 1 && a.int("stash_type", 1)? != 1 {
                return Err(
                    "mean and inverse standard deviation outputs are f32 only (stash_type 1)"
                        .into(),
                );
            }
            Op::LayerNorm {
                axis: a.int("axis", -1)?,
                epsilon: a.float("epsilon", 1e-5)?,
            }
        }
        _ => return Err(unlisted(ctx)),
    };
    Ok(op.into())
}

fn reduce(ctx: &NodeCtx, op: ReduceOp) -> Result<Mapped, String> {
    let axes_are_input = ctx.opset >= if op == ReduceOp::Sum { 13 } else { 18 };
    let operands = match ctx.attrs.ints("axes")? {
        Some(axes) if !axes_are_input => vec![(1, Weight::from_i64(vec![axes.len()], &axes))],
        _ => Vec::new(),
    };
    Ok(Mapped {
        op: Op::Reduce {
            op,
            keepdims: ctx.attrs.int("keepdims", 1)? != 0,
            noop_with_empty_axes: ctx.attrs.int("noop_with_empty_axes", 0)? != 0,
        },
        operands,
    })
}

fn top_k(ctx: &NodeCtx) -> Result<Mapped, String> {
    let a = &ctx.attrs;
    // Opset 1 gave k as an attribute.
    let operands = if ctx.opset < 10 {
        let k = a.int("k", -1)?;
        if k < 0 {
            return Err("attribute 'k' is missing".into());
        }
        vec![(1, Weight::from_i64(vec![1], &[k]))]
    } else {
        Vec::new()
    };
    Ok(Mapped {
        op: Op::TopK {
            axis: a.int("axis", -1)?,
            largest: a.int("largest", 1)? != 0,
            sorted: a.int("sorted", 1)? != 0,
        },
        operands,
    })
}
