//! Fuses a fully connected layer written as `MatMul(a, w) + bias` into one Gemm (`alpha` and
//! `beta` 1, no transposes), so the bias is added in the product's epilogue instead of by a
//! second pass over the output.
//!
//! Gemm is 2-D: `a` must be a 2-D activation, `w` a 2-D constant `[K, N]` and the bias a
//! constant `[N]` or `[1, N]`. Batched MatMuls (the rank-3 projections of transformer blocks)
//! are left as they are.

use crate::pattern::operands;
use crate::rewrite::Rewrite;
use crate::{Pass, PassError, Rewriter};
use temblor_ir::{BinaryOp, Dim, Graph, NodeId, Op, ValueRef};

pub struct FuseMatMulAdd;

impl Pass for FuseMatMulAdd {
    fn name(&self) -> &'static str {
        "fuse_matmul_add"
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        rw.each(|op| *op == Op::Binary(BinaryOp::Add), matmul_add);
        Ok(())
    }
}

/// `MatMul(a, w) + bias` (the bias a constant, so on the right) as one Gemm.
fn matmul_add(g: &Graph, add: NodeId) -> Option<Rewrite> {
    let (product, bias) = operands(g, ValueRef::new(add, 0), BinaryOp::Add)?;
    let matmul = product.node;
    if g.node(matmul).op != Op::MatMul {
        return None;
    }
    let (a, w) = (g.input(matmul, 0)?, g.input(matmul, 1)?);
    let n = match g.constant(w)?.dims[..] {
        [_, n] => n,
        _ => return None,
    };
    let bias_fits = g.constant(bias).is_some()
        && matches!(g.value_type(bias).shape.dims(), [Dim::Known(b)] | [Dim::Known(1), Dim::Known(b)] if *b == n);
    let gemm = Op::Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: false,
    };
    let inputs = vec![Some(a), Some(w), Some(bias)];
    (bias_fits && g.value_type(a).shape.rank() == 2)
        .then(|| Rewrite::in_place(vec![matmul, add], add, gemm, inputs))
}
