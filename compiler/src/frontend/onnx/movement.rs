//! Data movement and indexing ops.

use super::ops::{non_negative, unlisted, Family, Mapped, NodeCtx};
use temblor_ir::{Op, SplitSizes};

pub(super) const FAMILY: Family = Family {
    constant_inputs: &[("Split", &[1])],
    ops: &["Concat", "Reshape", "Transpose", "Split"],
    map,
};

fn map(ctx: &NodeCtx) -> Result<Mapped, String> {
    let a = &ctx.attrs;
    Ok(match ctx.op_type {
        "Concat" => Op::Concat {
            axis: a.get("axis").ok_or("attribute 'axis' is missing")?.i,
        },
        "Reshape" => Op::Reshape {
            allowzero: a.int("allowzero", 0)? != 0,
        },
        // An empty perm means "reverse the axes", resolved by shape inference once the rank is
        // known (for a rank-0 tensor both readings agree).
        "Transpose" => Op::Transpose {
            perm: match a.ints("perm")? {
                Some(p) => non_negative(&p, "perm")?,
                None => Vec::new(),
            },
        },
        "Split" => split(ctx)?,
        _ => return Err(unlisted(ctx)),
    }
    .into())
}

/// Split sizes come from input 1 (opset 13+) or the `split` attribute (before); absent means an
/// equal split, stored as all zeros until shape inference knows the axis extent.
fn split(ctx: &NodeCtx) -> Result<Op, String> {
    let axis = ctx.attrs.int("axis", 0)?;
    let sizes = if ctx.opset >= 13 {
        match ctx.present(1) {
            true => {
                let w = ctx.constant(1).ok_or(
                    "input 1 ('split') is computed at run time; only a constant is supported",
                )?;
                Some(
                    w.to_i64()
                        .ok_or("input 1 ('split') is not an integer tensor")?,
                )
            }
            false => None,
        }
    } else {
        ctx.attrs.ints("split")?
    };
    let sizes = match sizes {
        Some(v) => SplitSizes::Explicit(non_negative(&v, "split")?),
        None => SplitSizes::Equal(ctx.n_outputs),
    };
    if sizes.count() != ctx.n_outputs || ctx.n_outputs == 0 {
        return Err(format!(
            "{} split sizes for {} outputs",
            sizes.count(),
            ctx.n_outputs
        ));
    }
    Ok(Op::Split { axis, sizes })
}
