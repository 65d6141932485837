//! MatMul, Gemm and Einsum.

use super::ctx::{unlisted, Family, Mapped, NodeCtx};
use temblor_ir::Op;

pub(super) const FAMILY: Family = Family {
    constant_inputs: &[],
    ops: &["MatMul", "Gemm", "Einsum"],
    map,
};

fn map(ctx: &NodeCtx) -> Result<Mapped, String> {
    let a = &ctx.attrs;
    Ok(match ctx.op_type {
        "MatMul" => Op::MatMul,
        "Gemm" => Op::Gemm {
            alpha: a.float("alpha", 1.0)?,
            beta: a.float("beta", 1.0)?,
            trans_a: a.int("transA", 0)? != 0,
            trans_b: a.int("transB", 0)? != 0,
        },
        "Einsum" => {
            let equation = a.string("equation", "")?;
            if equation.is_empty() {
                return Err("attribute 'equation' is missing".into());
            }
            Op::Einsum { equation }
        }
        _ => return Err(unlisted(ctx)),
    }
    .into())
}
