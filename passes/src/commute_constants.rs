//! Puts the constant operand of a commutative Add or Mul on the right (input 1), as cranelift's
//! ISLE rules do, so every pattern after it looks for a constant on one side only.
//!
//! Exact: IEEE addition and multiplication are commutative bit for bit (NaN payloads aside),
//! and so are the integer ones. Min and Max are left alone: the runtime's `p < q ? p : q`
//! returns the second operand of `min(-0, +0)`, so swapping them could flip a zero's sign. A
//! swap keeps the layer's provenance: it computes what it did, from the same source layer.

use crate::{Pass, PassError, Rewriter};
use temblor_ir::{BinaryOp, Graph, NodeId, Op};

pub struct CommuteConstants;

impl Pass for CommuteConstants {
    fn name(&self) -> &'static str {
        "commute_constants"
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        let g = rw.graph();
        let swaps: Vec<NodeId> = g.node_ids().filter(|&id| constant_on_left(g, id)).collect();
        for id in swaps {
            let Some(g) = rw.step() else { break };
            let (a, b) = (g.input(id, 0), g.input(id, 1));
            g.disconnect_input(id, 0);
            g.disconnect_input(id, 1);
            for (port, v) in [b, a].into_iter().enumerate() {
                g.connect(v.expect("both operands checked"), id, port);
            }
        }
        Ok(())
    }
}

fn constant_on_left(g: &Graph, id: NodeId) -> bool {
    matches!(g.node(id).op, Op::Binary(BinaryOp::Add | BinaryOp::Mul))
        && match (g.input(id, 0), g.input(id, 1)) {
            (Some(a), Some(b)) => g.constant(a).is_some() && g.constant(b).is_none(),
            _ => false,
        }
}
