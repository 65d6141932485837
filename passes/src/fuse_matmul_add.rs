//! Fuses a fully connected layer written as `MatMul(a, w) + bias` into one Gemm (`alpha` and
//! `beta` 1, no transposes), so the bias is added in the product's epilogue instead of by a
//! second pass over the output.
//!
//! Gemm is 2-D: `a` must be a 2-D activation, `w` a 2-D constant `[K, N]` and the bias a
//! constant `[N]` or `[1, N]`. Batched MatMuls (the rank-3 projections of transformer blocks)
//! are left as they are.

use crate::pattern::private;
use crate::Pass;
use crate::PassError;
use temblor_ir::{BinaryOp, Dim, Graph, NodeId, Op, Provenance, RemoveNodeError, ValueRef};

pub struct FuseMatMulAdd;

const NAME: &str = "fuse_matmul_add";

impl Pass for FuseMatMulAdd {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, g: &mut Graph) -> Result<usize, PassError> {
        let adds: Vec<NodeId> = g
            .node_ids()
            .filter(|&id| g.node(id).op == Op::Binary(BinaryOp::Add))
            .collect();
        let mut applied = 0;
        for add in adds {
            if let Some(m) = matmul_add(g, add) {
                rewrite(g, m).map_err(|source| PassError::Remove { pass: NAME, source })?;
                applied += 1;
            }
        }
        Ok(applied)
    }
}

/// A match: the Add that becomes the Gemm, the MatMul it absorbs, and Gemm's three inputs.
struct Match {
    add: NodeId,
    matmul: NodeId,
    a: ValueRef,
    w: ValueRef,
    bias: ValueRef,
}

fn matmul_add(g: &Graph, add: NodeId) -> Option<Match> {
    let (p, q) = (g.input(add, 0)?, g.input(add, 1)?);
    let (product, bias) = [(p, q), (q, p)]
        .into_iter()
        .find(|&(m, _)| g.node(m.node).op == Op::MatMul)?;
    let matmul = product.node;
    let (a, w) = (g.input(matmul, 0)?, g.input(matmul, 1)?);
    let n = match g.constant(w)?.dims[..] {
        [_, n] => n,
        _ => return None,
    };
    let bias_fits = g.constant(bias).is_some()
        && matches!(g.value_type(bias).shape.dims(), [Dim::Known(b)] | [Dim::Known(1), Dim::Known(b)] if *b == n);
    let (pt, out) = (g.value_type(product), g.value_type(ValueRef::new(add, 0)));
    let shapes_fit =
        g.value_type(a).shape.rank() == 2 && pt.dtype == out.dtype && pt.shape == out.shape;
    (private(g, product) && bias_fits && shapes_fit).then_some(Match {
        add,
        matmul,
        a,
        w,
        bias,
    })
}

fn rewrite(g: &mut Graph, m: Match) -> Result<(), RemoveNodeError> {
    let provenance = Provenance::merged(
        NAME,
        [&g.node(m.matmul).provenance, &g.node(m.add).provenance],
    );
    g.disconnect_input(m.add, 1);
    g.disconnect_input(m.add, 0);
    g.remove_node(m.matmul)?;
    g.connect(m.a, m.add, 0);
    g.connect(m.w, m.add, 1);
    g.connect(m.bias, m.add, 2);
    let node = g.node_mut(m.add);
    node.op = Op::Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: false,
    };
    node.provenance = provenance;
    Ok(())
}
