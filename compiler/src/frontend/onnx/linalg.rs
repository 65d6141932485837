//! MatMul, Gemm and Einsum.

use super::ops::{unlisted, Family, Mapped, NodeCtx};

pub(super) const FAMILY: Family = Family {
    constant_inputs: &[],
    ops: &[],
    map,
};

fn map(ctx: &NodeCtx) -> Result<Mapped, String> {
    Err(unlisted(ctx))
}
