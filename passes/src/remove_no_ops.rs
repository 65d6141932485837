//! Removes layers that compute nothing: Identity (and Dropout, which imports as Identity), a Cast
//! to the dtype it already has, a Reshape whose static output shape is its input's, and a
//! Transpose by the identity permutation. Their readers, and any graph output, read the input.

use crate::rewrite::{Replacement, Rewrite};
use crate::{Pass, PassError, Rewriter};
use temblor_ir::{Graph, NodeId, Op, UnaryOp};

pub struct RemoveNoOps;

impl Pass for RemoveNoOps {
    fn name(&self) -> &'static str {
        "remove_no_ops"
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        rw.each(
            |_| true,
            |g, id| {
                let x = g.input(id, 0).filter(|_| is_no_op(g, id))?;
                Some(Rewrite::new(vec![id], id, move |_| Replacement::Value(x)))
            },
        );
        Ok(())
    }
}

fn is_no_op(g: &Graph, id: NodeId) -> bool {
    let node = g.node(id);
    let Some(x) = g.input(id, 0) else {
        return false;
    };
    let (from, to) = (g.value_type(x), &node.outputs[0].ty);
    let same_static_shape = from.shape.known().is_some() && from.shape == to.shape;
    match &node.op {
        Op::Unary(UnaryOp::Identity) => true,
        Op::Cast { to: dtype } => *dtype == from.dtype,
        Op::CastLike => to.dtype == from.dtype,
        Op::Reshape { .. } | Op::Squeeze | Op::Unsqueeze | Op::Flatten { .. } => {
            same_static_shape && from.dtype == to.dtype
        }
        Op::Transpose { perm } => perm.iter().enumerate().all(|(i, &p)| i == p),
        _ => false,
    }
}
