//! Recognizes GELU written out by exporters that lack the op (paddle2onnx, PyTorch before opset
//! 20): the exact form `x * 0.5 * (1 + erf(x / sqrt(2)))` and the tanh approximation
//! `x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`. Exporters differ in where the
//! halving goes (on `x`, on the gate, or on the product), divide by `sqrt(2)` or multiply by its
//! inverse, write the cube as `Pow(x, 3)` or as products, and order the operands of commutative
//! ops either way; all of those are matched. Five to eight layers that each stream the whole
//! tensor become one.
//!
//! Constants are compared with a tolerance of a few f32 ulps, since exporters round `sqrt(2)`
//! and `sqrt(2/pi)` differently; the rewrite is exact up to that rounding.

use crate::pattern::{is_exponent, private, private_operands, scalar};
use crate::Pass;
use crate::PassError;
use temblor_ir::{BinaryOp, Graph, NodeId, Op, Provenance, RemoveNodeError, UnaryOp, ValueRef};

pub struct RecognizeGelu;

const NAME: &str = "recognize_gelu";

impl Pass for RecognizeGelu {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, g: &mut Graph) -> Result<usize, PassError> {
        let tails: Vec<NodeId> = g
            .node_ids()
            .filter(|&id| g.node(id).op == Op::Binary(BinaryOp::Mul))
            .collect();
        let mut applied = 0;
        for tail in tails {
            if !g.contains(tail) {
                continue;
            }
            if let Some(m) = gelu(g, tail) {
                rewrite(g, m).map_err(|source| PassError::Remove { pass: NAME, source })?;
                applied += 1;
            }
        }
        Ok(applied)
    }
}

/// A match: the Mul whose output becomes GELU's, its input `x`, which form, and the layers
/// absorbed.
struct Match {
    tail: NodeId,
    x: ValueRef,
    tanh: bool,
    absorbed: Vec<NodeId>,
}

/// The gate `1 + erf(x / sqrt(2))` or `1 + tanh(...)`, with `x` and the layers it spans.
struct Gate {
    x: ValueRef,
    tanh: bool,
    nodes: Vec<NodeId>,
}

/// The tail Mul in any of the three places exporters put the halving.
fn gelu(g: &Graph, tail: NodeId) -> Option<Match> {
    let (p, q) = (g.input(tail, 0)?, g.input(tail, 1)?);
    let found = [(p, q), (q, p)].into_iter().find_map(|(u, w)| {
        // `(x * gate) * 0.5`
        if is_near(g, w, 0.5) {
            let (a, b) = private_operands(g, u, BinaryOp::Mul)?;
            return [(a, b), (b, a)].into_iter().find_map(|(x, gate)| {
                let gate = gate_of(g, gate).filter(|gt| gt.x == x)?;
                Some(gate.and(u.node))
            });
        }
        // `(x * 0.5) * gate`
        if let Some(x) = scaled(g, u, 0.5) {
            if let Some(gate) = gate_of(g, w).filter(|gt| gt.x == x) {
                return Some(gate.and(u.node));
            }
        }
        // `x * (gate * 0.5)`
        let gate = gate_of(g, scaled(g, w, 0.5)?).filter(|gt| gt.x == u)?;
        Some(gate.and(w.node))
    })?;
    let (x, y) = (g.value_type(found.x), g.value_type(ValueRef::new(tail, 0)));
    (x.dtype == y.dtype && x.shape == y.shape).then_some(Match {
        tail,
        x: found.x,
        tanh: found.tanh,
        absorbed: found.nodes,
    })
}

impl Gate {
    /// The gate with `node` absorbed too: the Mul that halves `x` or the gate, or that joins
    /// them.
    fn and(mut self, node: NodeId) -> Gate {
        self.nodes.push(node);
        self
    }
}

/// `1 + f(...)` or `f(...) + 1` where `f` is Erf or Tanh over the matching argument of `x`.
fn gate_of(g: &Graph, v: ValueRef) -> Option<Gate> {
    let (a, b) = private_operands(g, v, BinaryOp::Add)?;
    let f = if is_near(g, a, 1.0) {
        b
    } else {
        is_near(g, b, 1.0).then_some(a)?
    };
    if !private(g, f) {
        return None;
    }
    let arg = g.input(f.node, 0)?;
    let mut gate = match g.node(f.node).op {
        Op::Unary(UnaryOp::Erf) => erf_argument(g, arg)?,
        Op::Unary(UnaryOp::Tanh) => tanh_argument(g, arg)?,
        _ => return None,
    };
    gate.nodes.extend([v.node, f.node]);
    Some(gate)
}

/// `x / sqrt(2)` or `x * (1/sqrt(2))`, operands of the Mul in either order.
fn erf_argument(g: &Graph, v: ValueRef) -> Option<Gate> {
    let x = private_operands(g, v, BinaryOp::Div)
        .and_then(|(x, by)| is_near(g, by, std::f32::consts::SQRT_2).then_some(x))
        .or_else(|| scaled(g, v, std::f32::consts::FRAC_1_SQRT_2))?;
    Some(Gate {
        x,
        tanh: false,
        nodes: vec![v.node],
    })
}

/// `sqrt(2/pi) * (x + 0.044715 * x^3)`, operands of each Mul and the Add in either order.
fn tanh_argument(g: &Graph, v: ValueRef) -> Option<Gate> {
    let sqrt_2_over_pi = (2.0 / std::f32::consts::PI).sqrt();
    let poly = scaled(g, v, sqrt_2_over_pi)?;
    let (a, b) = private_operands(g, poly, BinaryOp::Add)?;
    [(a, b), (b, a)].into_iter().find_map(|(x, term)| {
        let cube = scaled(g, term, 0.044715)?;
        let mut nodes = cubed(g, cube, x)?;
        nodes.extend([v.node, poly.node, term.node]);
        Some(Gate {
            x,
            tanh: true,
            nodes,
        })
    })
}

/// `x^3` as `Pow(x, 3)`, `x * (x * x)` or `(x * x) * x`: the layers it spans.
fn cubed(g: &Graph, v: ValueRef, x: ValueRef) -> Option<Vec<NodeId>> {
    if let Some((base, exponent)) = private_operands(g, v, BinaryOp::Pow) {
        return (base == x && is_exponent(g, exponent, 3)).then(|| vec![v.node]);
    }
    let (a, b) = private_operands(g, v, BinaryOp::Mul)?;
    let square = if a == x { b } else { a };
    let (s, t) = private_operands(g, square, BinaryOp::Mul)?;
    ((a == x || b == x) && s == x && t == x).then(|| vec![v.node, square.node])
}

/// `v * c` or `c * v` for the scalar constant `c`, read only by the pattern: `v`.
fn scaled(g: &Graph, v: ValueRef, c: f32) -> Option<ValueRef> {
    let (a, b) = private_operands(g, v, BinaryOp::Mul)?;
    if is_near(g, b, c) {
        Some(a)
    } else {
        is_near(g, a, c).then_some(b)
    }
}

/// Whether `v` is a one-element f32 constant within a few ulps of `c`.
fn is_near(g: &Graph, v: ValueRef, c: f32) -> bool {
    scalar(g, v).is_some_and(|s| (s - c).abs() <= 4.0 * f32::EPSILON * c.abs())
}

fn rewrite(g: &mut Graph, m: Match) -> Result<(), RemoveNodeError> {
    let mut parts: Vec<NodeId> = m.absorbed.iter().copied().chain([m.tail]).collect();
    // Node order is the order the frontend read the source in: origins listed that way read
    // like the source.
    parts.sort();
    let provenance = Provenance::merged(NAME, parts.iter().map(|&id| &g.node(id).provenance));
    g.disconnect_input(m.tail, 1);
    g.disconnect_input(m.tail, 0);
    g.connect(m.x, m.tail, 0);
    g.remove_nodes(&m.absorbed)?;
    let node = g.node_mut(m.tail);
    node.op = Op::Gelu { tanh: m.tanh };
    node.provenance = provenance;
    Ok(())
}
