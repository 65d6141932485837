//! Recognizes HardSwish written out by exporters that lack the op (paddle2onnx, older PyTorch):
//! `x * clip(x + 3, 0, 6) / 6`, with the division also written as a multiplication by 1/6, and
//! `x * hard_sigmoid(x)` with alpha 1/6 and beta 1/2. Four layers that each read and write the
//! whole tensor become one, which the conv epilogue fusion can then absorb.
//!
//! The rewrite is exact up to rounding: `x * clip(x/6 + 1/2, 0, 1)` and the written-out form
//! differ in the last bit at most.

use crate::pattern::{private, scalar};
use crate::Pass;
use crate::PassError;
use temblor_ir::{BinaryOp, Graph, NodeId, Op, Provenance, RemoveNodeError, UnaryOp, ValueRef};

pub struct RecognizeHardSwish;

const NAME: &str = "recognize_hard_swish";

impl Pass for RecognizeHardSwish {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, g: &mut Graph) -> Result<usize, PassError> {
        let tails: Vec<NodeId> = g
            .node_ids()
            .filter(|&id| matches!(g.node(id).op, Op::Binary(BinaryOp::Div | BinaryOp::Mul)))
            .collect();
        let mut applied = 0;
        for tail in tails {
            if !g.contains(tail) {
                continue;
            }
            if let Some(m) = written_out(g, tail).or_else(|| gated(g, tail)) {
                rewrite(g, m).map_err(|source| PassError::Remove { pass: NAME, source })?;
                applied += 1;
            }
        }
        Ok(applied)
    }
}

/// A match: the layer whose output becomes HardSwish's, the input `x`, and the layers absorbed.
struct Match {
    tail: NodeId,
    x: ValueRef,
    absorbed: Vec<NodeId>,
}

/// `(x * clip(x + 3, 0, 6)) / 6` or `* (1/6)`, operands of Add and Mul in either order.
fn written_out(g: &Graph, tail: NodeId) -> Option<Match> {
    let (product, by) = (g.input(tail, 0)?, g.input(tail, 1)?);
    let sixth = match g.node(tail).op {
        Op::Binary(BinaryOp::Div) => scalar(g, by)? == 6.0,
        Op::Binary(BinaryOp::Mul) => (scalar(g, by)? - 1.0 / 6.0).abs() < 1e-7,
        _ => false,
    };
    let mul = product.node;
    if !sixth || g.node(mul).op != Op::Binary(BinaryOp::Mul) || !private(g, product) {
        return None;
    }
    let (a, b) = (g.input(mul, 0)?, g.input(mul, 1)?);
    let (x, clipped) = [(a, b), (b, a)].into_iter().find(
        |&(_, c)| matches!(g.node(c.node).op, Op::Clip { min, max } if min == 0.0 && max == 6.0),
    )?;
    let clip = clipped.node;
    let shifted = g.input(clip, 0)?;
    let add = shifted.node;
    if !private(g, clipped) || !private(g, shifted) || g.node(add).op != Op::Binary(BinaryOp::Add) {
        return None;
    }
    let (p, q) = (g.input(add, 0)?, g.input(add, 1)?);
    let three = (p == x && scalar(g, q) == Some(3.0)) || (q == x && scalar(g, p) == Some(3.0));
    three.then(|| Match {
        tail,
        x,
        absorbed: vec![mul, clip, add],
    })
}

/// `x * hard_sigmoid(x)` with alpha 1/6 and beta 1/2, the gate read by nothing else.
fn gated(g: &Graph, tail: NodeId) -> Option<Match> {
    if g.node(tail).op != Op::Binary(BinaryOp::Mul) {
        return None;
    }
    let (a, b) = (g.input(tail, 0)?, g.input(tail, 1)?);
    [(a, b), (b, a)].into_iter().find_map(|(x, gate)| {
        let is_gate = matches!(g.node(gate.node).op, Op::HardSigmoid { alpha, beta }
            if (alpha - 1.0 / 6.0).abs() < 1e-7 && beta == 0.5);
        (is_gate && private(g, gate) && g.input(gate.node, 0) == Some(x)).then(|| Match {
            tail,
            x,
            absorbed: vec![gate.node],
        })
    })
}

fn rewrite(g: &mut Graph, m: Match) -> Result<(), RemoveNodeError> {
    let provenance = Provenance::merged(
        NAME,
        std::iter::once(m.tail)
            .chain(m.absorbed.iter().copied())
            .map(|id| &g.node(id).provenance)
            .collect::<Vec<_>>(),
    );
    g.disconnect_input(m.tail, 1);
    g.disconnect_input(m.tail, 0);
    g.connect(m.x, m.tail, 0);
    g.remove_nodes(&m.absorbed)?;
    let node = g.node_mut(m.tail);
    node.op = Op::Unary(UnaryOp::HardSwish);
    node.provenance = provenance;
    Ok(())
}
