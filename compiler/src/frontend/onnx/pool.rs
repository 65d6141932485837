//! Pooling ops.

use super::ops::{unlisted, Family, Mapped, NodeCtx};
use temblor_ir::Op;

pub(super) const FAMILY: Family = Family {
    constant_inputs: &[],
    ops: &["GlobalAveragePool"],
    map,
};

fn map(ctx: &NodeCtx) -> Result<Mapped, String> {
    match ctx.op_type {
        "GlobalAveragePool" => Ok(Op::GlobalAveragePool.into()),
        _ => Err(unlisted(ctx)),
    }
}
