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

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_ir::{DType, Layout, Node, Shape, TensorInfo, TensorType, ValueRef, Weight};

    fn add(g: &mut Graph, name: &str, op: Op, ins: &[ValueRef]) -> ValueRef {
        let ty = TensorType::new(DType::F32, Shape::from_known(&[2]));
        let id = g.add_node(Node::new(
            name,
            op,
            vec![TensorInfo {
                name: name.into(),
                ty,
            }],
        ));
        for (port, &v) in ins.iter().enumerate() {
            g.connect(v, id, port);
        }
        ValueRef::new(id, 0)
    }

    #[test]
    fn constants_move_right_of_add_and_mul_only() {
        let mut g = Graph::new("commute");
        let x = add(&mut g, "x", Op::Input { index: 0 }, &[]);
        let weight = Weight::from_f32(vec![2], &[1.0, 2.0]);
        let c = crate::add_constant(&mut g, "c".into(), weight, Layout::Any, &Default::default());
        let sum = add(&mut g, "sum", Op::Binary(BinaryOp::Add), &[c, x]);
        let min = add(&mut g, "min", Op::Binary(BinaryOp::Min), &[c, x]);
        let mut rw = Rewriter::new(&mut g, "commute_constants", None);
        CommuteConstants.run(&mut rw).unwrap();
        assert_eq!(rw.applied(), 1);
        assert_eq!(
            (g.input(sum.node, 0), g.input(sum.node, 1)),
            (Some(x), Some(c))
        );
        assert_eq!(
            (g.input(min.node, 0), g.input(min.node, 1)),
            (Some(c), Some(x))
        );
    }
}
