//! Removes layers that compute nothing: Identity (and Dropout, which imports as Identity), a Cast
//! to the dtype it already has, a Reshape whose static output shape is its input's, and a
//! Transpose by the identity permutation. Their readers, and any graph output, read the input.

use crate::Pass;
use crate::PassError;
use temblor_ir::{Graph, NodeId, Op, UnaryOp, ValueRef};

pub struct RemoveNoOps;

impl Pass for RemoveNoOps {
    fn name(&self) -> &'static str {
        "remove_no_ops"
    }

    fn run(&self, g: &mut Graph) -> Result<usize, PassError> {
        let ids: Vec<NodeId> = g.node_ids().collect();
        let mut removed = 0;
        for id in ids {
            if !is_no_op(g, id) {
                continue;
            }
            let Some(x) = g.input(id, 0) else { continue };
            g.replace_uses(ValueRef::new(id, 0), x);
            g.remove_node(id).map_err(|source| PassError::Remove {
                pass: self.name(),
                source,
            })?;
            removed += 1;
        }
        Ok(removed)
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
        Op::Reshape { .. } | Op::Squeeze | Op::Unsqueeze | Op::Flatten { .. } => {
            same_static_shape && from.dtype == to.dtype
        }
        Op::Transpose { perm } => perm.iter().enumerate().all(|(i, &p)| i == p),
        _ => false,
    }
}
