//! Fuses what follows a convolution into its epilogue, so the output is written once instead of
//! being read back by one elementwise layer after another:
//!  * `conv(x) + r` with `r` of the output's exact shape becomes the conv's residual input;
//!  * an activation (Relu, Sigmoid, HardSwish, Mish, LeakyRelu, HardSigmoid, Clip, and SiLU
//!    written as `y * sigmoid(y)`) becomes the conv's `activation` attribute;
//!  * after an activation, a Mul by a scalar constant and then an Add of one (either alone)
//!    become its `affine` attribute.
//!
//! A ConvTranspose takes the activation alone, into its own `activation` attribute.
//!
//! The conv computes `affine(act(conv(x) + bias + residual))`, so a residual fuses only into a
//! conv without an activation, an affine only into one with, and each fusion needs the conv's
//! output to feed nothing but the fused layers (it is not kept anywhere else). The conv node is
//! rewritten in place: it takes over the last fused layer's output, so its readers and graph
//! outputs stay as they were.

use crate::pattern::{either, scalar};
use crate::rewrite::{Replacement, Rewrite};
use crate::{Pass, PassError, Rewriter};
use temblor_ir::{Activation, Affine, BinaryOp, Dim, Graph, NodeId, Op, UnaryOp, ValueRef};

pub struct FuseConvEpilogue;

/// The conv's residual input port.
const RESIDUAL: usize = 3;

impl Pass for FuseConvEpilogue {
    fn name(&self) -> &'static str {
        "fuse_conv_epilogue"
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        // One conv can take a residual and then the activation that follows the Add.
        rw.each_repeatedly(
            |op| matches!(op, Op::Conv(_) | Op::ConvTranspose(_)),
            |g, conv| match_epilogue(g, conv).map(|fusion| fuse(g, conv, fusion)),
        );
        Ok(())
    }
}

/// What to fold into a conv: the layer whose output becomes the conv's, a layer between them
/// (SiLU's sigmoid), and how the conv's attributes or inputs change.
struct Fusion {
    tail: NodeId,
    inner: Option<NodeId>,
    change: Change,
}

enum Change {
    Residual(ValueRef),
    Activation(Activation),
    Affine(Affine),
}

fn match_epilogue(g: &Graph, conv: NodeId) -> Option<Fusion> {
    // A ConvTranspose takes an activation alone.
    let (activation, affine, full) = match &g.node(conv).op {
        Op::Conv(a) => (a.activation, a.affine, true),
        Op::ConvTranspose(a) => (a.activation, None, false),
        _ => return None,
    };
    let out = ValueRef::new(conv, 0);
    if g.node(conv).outputs.len() != 1 || !g.value_type(out).dtype.is_float() {
        return None;
    }
    let consumers = g.consumers(out);
    if activation.is_some() {
        return match consumers.as_slice() {
            [(next, _)] if full => match_affine(g, out, affine, *next),
            _ => None,
        };
    }
    match consumers.as_slice() {
        [(next, _)] => {
            let next = *next;
            if let Some(activation) = activation_of(&g.node(next).op) {
                return Some(Fusion {
                    tail: next,
                    inner: None,
                    change: Change::Activation(activation),
                });
            }
            if !full || g.input(conv, RESIDUAL).is_some() {
                return None;
            }
            match_residual(g, out, next)
        }
        [(a, _), (b, _)] => match_silu(g, out, *a, *b).or_else(|| match_silu(g, out, *b, *a)),
        _ => None,
    }
}

/// The epilogue form of a standalone activation layer.
fn activation_of(op: &Op) -> Option<Activation> {
    Some(match *op {
        Op::Unary(UnaryOp::Relu) => Activation::Relu,
        Op::Unary(UnaryOp::Sigmoid) => Activation::Sigmoid,
        Op::Unary(UnaryOp::HardSwish) => Activation::HardSwish,
        Op::Unary(UnaryOp::Mish) => Activation::Mish,
        Op::LeakyRelu { alpha } => Activation::LeakyRelu { alpha },
        Op::HardSigmoid { alpha, beta } => Activation::HardSigmoid { alpha, beta },
        Op::Clip { min, max } => Activation::Clip { min, max },
        _ => return None,
    })
}

/// `out + r` (either order: `r` is no constant) where `r` has exactly the output's shape, so the
/// Add does not broadcast. `r` cannot depend on the conv: the Add is the conv's only reader, so a path from
/// the conv to `r` would run through the Add and back into it, a cycle the graph cannot hold.
fn match_residual(g: &Graph, out: ValueRef, add: NodeId) -> Option<Fusion> {
    if g.node(add).op != Op::Binary(BinaryOp::Add) {
        return None;
    }
    let (a, b) = (g.input(add, 0)?, g.input(add, 1)?);
    let (_, other) = either(a, b).into_iter().find(|&(o, _)| o == out)?;
    let (ty, other_ty) = (g.value_type(out), g.value_type(other));
    let same_shape = ty.shape.rank() == other_ty.shape.rank()
        && ty
            .shape
            .dims()
            .iter()
            .zip(other_ty.shape.dims())
            .all(|(a, b)| same_extent(a, b));
    (same_shape && ty.dtype == other_ty.dtype).then_some(Fusion {
        tail: add,
        inner: None,
        change: Change::Residual(other),
    })
}

/// `out * s` after no affine yet, or `out + t` after none or after a lone scale (whose shift is
/// the identity `-0`), with `s` and `t` scalar constants (on the right, where
/// `commute_constants` put them; the rewriter checks that a scalar of higher rank does not
/// broadcast the output). A shift before a scale, or two scales, would round differently as one
/// affine, so those stay apart.
fn match_affine(g: &Graph, out: ValueRef, affine: Option<Affine>, next: NodeId) -> Option<Fusion> {
    let Op::Binary(op @ (BinaryOp::Mul | BinaryOp::Add)) = g.node(next).op else {
        return None;
    };
    if g.input(next, 0)? != out {
        return None;
    }
    let constant = scalar(g, g.input(next, 1)?)?;
    let identity = Affine::IDENTITY;
    let affine = match (op, affine) {
        (BinaryOp::Mul, None) => Affine {
            scale: constant,
            ..identity
        },
        (BinaryOp::Add, None) => Affine {
            shift: constant,
            ..identity
        },
        (BinaryOp::Add, Some(a)) if a.shift.to_bits() == identity.shift.to_bits() => Affine {
            shift: constant,
            ..a
        },
        _ => return None,
    };
    Some(Fusion {
        tail: next,
        inner: None,
        change: Change::Affine(affine),
    })
}

/// Whether two dims are provably equal: the same number, or the same named symbol.
fn same_extent(a: &Dim, b: &Dim) -> bool {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => x == y,
        (Dim::Symbol(s), Dim::Symbol(t)) => s == t,
        _ => false,
    }
}

/// `out * sigmoid(out)`.
fn match_silu(g: &Graph, out: ValueRef, sigmoid: NodeId, mul: NodeId) -> Option<Fusion> {
    let gate = ValueRef::new(sigmoid, 0);
    if g.node(sigmoid).op != Op::Unary(UnaryOp::Sigmoid)
        || g.node(mul).op != Op::Binary(BinaryOp::Mul)
    {
        return None;
    }
    let operands = (g.input(mul, 0)?, g.input(mul, 1)?);
    let reads_both = operands == (out, gate) || operands == (gate, out);
    reads_both.then_some(Fusion {
        tail: mul,
        inner: Some(sigmoid),
        change: Change::Activation(Activation::Silu),
    })
}

/// The conv with the fused layers' work in its attributes or residual input, taking over the
/// last fused layer's output.
fn fuse(g: &Graph, conv: NodeId, fusion: Fusion) -> Rewrite {
    let matched: Vec<NodeId> = [Some(conv), fusion.inner, Some(fusion.tail)]
        .into_iter()
        .flatten()
        .collect();
    let mut op = g.node(conv).op.clone();
    let mut inputs = g.inputs_of(conv);
    match fusion.change {
        Change::Residual(r) => {
            inputs.resize(inputs.len().max(RESIDUAL + 1), None);
            inputs[RESIDUAL] = Some(r);
        }
        Change::Activation(activation) => match &mut op {
            Op::Conv(a) => a.activation = Some(activation),
            Op::ConvTranspose(a) => a.activation = Some(activation),
            _ => {}
        },
        Change::Affine(affine) => {
            if let Op::Conv(a) = &mut op {
                a.affine = Some(affine);
            }
        }
    }
    Rewrite::new(matched, fusion.tail, move |_| Replacement::Reuse {
        node: conv,
        op,
        inputs,
    })
}
