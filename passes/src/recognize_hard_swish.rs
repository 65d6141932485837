//! Recognizes HardSwish written out by exporters that lack the op (paddle2onnx, older PyTorch):
//! `x * clip(x + 3, 0, 6) / 6`, with the division also written as a multiplication by 1/6, and
//! `x * hard_sigmoid(x)` with alpha 1/6 and beta 1/2. Four layers that each read and write the
//! whole tensor become one, which the conv epilogue fusion can then absorb.
//!
//! The rewrite is exact up to rounding: `x * clip(x/6 + 1/2, 0, 1)` and the written-out form
//! differ in the last bit at most. The rewriter checks that `x` has the tail's type, so a
//! constant that would broadcast the result leaves the layers as they are.

use crate::pattern::{either, operands, scalar, shifted};
use crate::rewrite::Rewrite;
use crate::{Pass, PassError, Rewriter};
use temblor_ir::{BinaryOp, Graph, NodeId, Op, UnaryOp, ValueRef};

pub struct RecognizeHardSwish;

impl Pass for RecognizeHardSwish {
    fn name(&self) -> &'static str {
        "recognize_hard_swish"
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        let tail = |op: &Op| matches!(op, Op::Binary(BinaryOp::Div | BinaryOp::Mul));
        rw.each(tail, |g, tail| {
            let (x, matched) = written_out(g, tail).or_else(|| gated(g, tail))?;
            let hard_swish = Op::Unary(UnaryOp::HardSwish);
            Some(Rewrite::in_place(matched, tail, hard_swish, vec![Some(x)]))
        });
        Ok(())
    }
}

/// `(x * clip(x + 3, 0, 6)) / 6` or `* (1/6)`: `x` and the layers matched, the tail first.
fn written_out(g: &Graph, tail: NodeId) -> Option<(ValueRef, Vec<NodeId>)> {
    let (product, by) = (g.input(tail, 0)?, g.input(tail, 1)?);
    let sixth = match g.node(tail).op {
        Op::Binary(BinaryOp::Div) => scalar(g, by)? == 6.0,
        Op::Binary(BinaryOp::Mul) => (scalar(g, by)? - 1.0 / 6.0).abs() < 1e-7,
        _ => false,
    };
    let (a, b) = operands(g, product, BinaryOp::Mul).filter(|_| sixth)?;
    let (x, clipped) = either(a, b).into_iter().find(
        |&(_, c)| matches!(g.node(c.node).op, Op::Clip { min, max } if min == 0.0 && max == 6.0),
    )?;
    let plus_three = g.input(clipped.node, 0)?;
    (shifted(g, plus_three, |c| c == 3.0)? == x).then(|| {
        let matched = vec![tail, product.node, clipped.node, plus_three.node];
        (x, matched)
    })
}

/// `x * hard_sigmoid(x)` with alpha 1/6 and beta 1/2.
fn gated(g: &Graph, tail: NodeId) -> Option<(ValueRef, Vec<NodeId>)> {
    let (a, b) = operands(g, ValueRef::new(tail, 0), BinaryOp::Mul)?;
    either(a, b).into_iter().find_map(|(x, gate)| {
        let is_gate = matches!(g.node(gate.node).op, Op::HardSigmoid { alpha, beta }
            if (alpha - 1.0 / 6.0).abs() < 1e-7 && beta == 0.5);
        (is_gate && g.input(gate.node, 0) == Some(x)).then(|| (x, vec![tail, gate.node]))
    })
}
