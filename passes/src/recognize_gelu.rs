//! Recognizes GELU written out by exporters that lack the op (paddle2onnx, PyTorch before opset
//! 20): the exact form `x * 0.5 * (1 + erf(x / sqrt(2)))` and the tanh approximation
//! `x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`. Exporters differ in where the
//! halving goes (on `x`, on the gate, or on the product), divide by `sqrt(2)` or multiply by its
//! inverse, write the cube as `Pow(x, 3)` or as products, and order the operands of commutative
//! ops either way; all of those are matched (constant operands on the right, where
//! `commute_constants` put them). Five to eight layers that each stream the whole tensor become
//! one.
//!
//! Constants are compared with a tolerance of a few f32 ulps, since exporters round `sqrt(2)`
//! and `sqrt(2/pi)` differently; the rewrite is exact up to that rounding.

use crate::pattern::{either, is_exponent, operands, scalar, scaled, shifted};
use crate::rewrite::Rewrite;
use crate::{Pass, PassError, Rewriter};
use std::f32::consts::{FRAC_1_SQRT_2, PI, SQRT_2};
use temblor_ir::{BinaryOp, Graph, NodeId, Op, UnaryOp, ValueRef};

pub struct RecognizeGelu;

impl Pass for RecognizeGelu {
    fn name(&self) -> &'static str {
        "recognize_gelu"
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        rw.each(
            |op| *op == Op::Binary(BinaryOp::Mul),
            |g, tail| {
                let (x, gate) = gelu(g, tail)?;
                let mut matched = gate.nodes;
                matched.push(tail);
                // Node order is the order the frontend read the source in: origins listed that
                // way read like the source.
                let mut origins = matched.clone();
                origins.sort();
                let op = Op::Gelu { tanh: gate.tanh };
                Some(Rewrite::in_place(matched, tail, op, vec![Some(x)]).reading(origins))
            },
        );
        Ok(())
    }
}

/// The gate `1 + erf(x / sqrt(2))` or `1 + tanh(...)`, and the layers it spans.
struct Gate {
    tanh: bool,
    nodes: Vec<NodeId>,
}

impl Gate {
    /// The gate with `node` absorbed too: the Mul that halves `x` or the gate, or that joins
    /// them.
    fn and(mut self, node: NodeId) -> Gate {
        self.nodes.push(node);
        self
    }
}

/// The tail Mul in any of the three places exporters put the halving: `x` and the gate.
fn gelu(g: &Graph, tail: NodeId) -> Option<(ValueRef, Gate)> {
    let out = ValueRef::new(tail, 0);
    // `(x * gate) * 0.5`
    if let Some(product) = scaled(g, out, near(0.5)) {
        let (a, b) = operands(g, product, BinaryOp::Mul)?;
        return either(a, b).into_iter().find_map(|(x, gate)| {
            let gate = gate_of(g, gate, x)?;
            Some((x, gate.and(product.node)))
        });
    }
    let (p, q) = operands(g, out, BinaryOp::Mul)?;
    either(p, q).into_iter().find_map(|(u, w)| {
        // `(x * 0.5) * gate`
        if let Some(x) = scaled(g, u, near(0.5)) {
            if let Some(gate) = gate_of(g, w, x) {
                return Some((x, gate.and(u.node)));
            }
        }
        // `x * (gate * 0.5)`
        let gate = gate_of(g, scaled(g, w, near(0.5))?, u)?;
        Some((u, gate.and(w.node)))
    })
}

/// `f(...) + 1` where `f` is Erf or Tanh over the matching argument of `x`.
fn gate_of(g: &Graph, v: ValueRef, x: ValueRef) -> Option<Gate> {
    let f = shifted(g, v, near(1.0))?;
    let arg = g.input(f.node, 0)?;
    let mut gate = match g.node(f.node).op {
        Op::Unary(UnaryOp::Erf) => erf_argument(g, arg, x)?,
        Op::Unary(UnaryOp::Tanh) => tanh_argument(g, arg, x)?,
        _ => return None,
    };
    gate.nodes.extend([v.node, f.node]);
    Some(gate)
}

/// `x / sqrt(2)` or `x * (1/sqrt(2))`.
fn erf_argument(g: &Graph, v: ValueRef, x: ValueRef) -> Option<Gate> {
    let divided = operands(g, v, BinaryOp::Div)
        .is_some_and(|(a, by)| a == x && scalar(g, by).is_some_and(near(SQRT_2)));
    (divided || scaled(g, v, near(FRAC_1_SQRT_2)) == Some(x)).then(|| Gate {
        tanh: false,
        nodes: vec![v.node],
    })
}

/// `sqrt(2/pi) * (x + 0.044715 * x^3)`, the operands of the Add in either order.
fn tanh_argument(g: &Graph, v: ValueRef, x: ValueRef) -> Option<Gate> {
    let poly = scaled(g, v, near((2.0 / PI).sqrt()))?;
    let (a, b) = operands(g, poly, BinaryOp::Add)?;
    let (_, term) = either(a, b).into_iter().find(|&(p, _)| p == x)?;
    let mut nodes = cubed(g, scaled(g, term, near(0.044715))?, x)?;
    nodes.extend([v.node, poly.node, term.node]);
    Some(Gate { tanh: true, nodes })
}

/// `x^3` as `Pow(x, 3)`, `x * (x * x)` or `(x * x) * x`: the layers it spans.
fn cubed(g: &Graph, v: ValueRef, x: ValueRef) -> Option<Vec<NodeId>> {
    if let Some((base, exponent)) = operands(g, v, BinaryOp::Pow) {
        return (base == x && is_exponent(g, exponent, 3)).then(|| vec![v.node]);
    }
    let (a, b) = operands(g, v, BinaryOp::Mul)?;
    let square = if a == x { b } else { a };
    let (s, t) = operands(g, square, BinaryOp::Mul)?;
    ((a == x || b == x) && s == x && t == x).then(|| vec![v.node, square.node])
}

/// Whether a constant is within a few ulps of `c`.
fn near(c: f32) -> impl Fn(f32) -> bool {
    move |s| (s - c).abs() <= 4.0 * f32::EPSILON * c.abs()
}
