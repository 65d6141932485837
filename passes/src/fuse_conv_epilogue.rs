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

use crate::pattern::scalar;
use crate::Pass;
use crate::PassError;
use temblor_ir::{
    Activation, Affine, BinaryOp, Dim, Graph, NodeId, Op, Provenance, RemoveNodeError, UnaryOp,
    ValueRef,
};

pub struct FuseConvEpilogue;

const NAME: &str = "fuse_conv_epilogue";

/// The conv's residual input port.
const RESIDUAL: usize = 3;

impl Pass for FuseConvEpilogue {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, g: &mut Graph) -> Result<usize, PassError> {
        let convs: Vec<NodeId> = g
            .node_ids()
            .filter(|&id| matches!(g.node(id).op, Op::Conv(_) | Op::ConvTranspose(_)))
            .collect();
        let mut applied = 0;
        for conv in convs {
            // One conv can take a residual and then the activation that follows the Add.
            while let Some(fusion) = match_epilogue(g, conv) {
                fuse(g, conv, fusion).map_err(|source| PassError::Remove { pass: NAME, source })?;
                applied += 1;
            }
        }
        Ok(applied)
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
    if g.node(conv).outputs.len() != 1
        || !g.value_type(out).dtype.is_float()
        || is_graph_output(g, out)
    {
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

fn is_graph_output(g: &Graph, v: ValueRef) -> bool {
    g.outputs.iter().any(|o| o.value == v)
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

/// `out + r` (either order) where `r` has exactly the output's shape, so the Add does not
/// broadcast. `r` cannot depend on the conv: the Add is the conv's only reader, so a path from
/// the conv to `r` would run through the Add and back into it, a cycle the graph cannot hold.
fn match_residual(g: &Graph, out: ValueRef, add: NodeId) -> Option<Fusion> {
    if g.node(add).op != Op::Binary(BinaryOp::Add) {
        return None;
    }
    let other = match (g.input(add, 0)?, g.input(add, 1)?) {
        (a, r) if a == out => r,
        (r, b) if b == out => r,
        _ => return None,
    };
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
/// the identity `-0`), with `s` and `t` scalar constants and the layer's output of `out`'s
/// type (a scalar of higher rank would broadcast the output). A shift before a scale, or two
/// scales, would round differently as one affine, so those stay apart.
fn match_affine(g: &Graph, out: ValueRef, affine: Option<Affine>, next: NodeId) -> Option<Fusion> {
    let Op::Binary(op @ (BinaryOp::Mul | BinaryOp::Add)) = g.node(next).op else {
        return None;
    };
    let constant = match (g.input(next, 0)?, g.input(next, 1)?) {
        (a, c) if a == out => scalar(g, c)?,
        (c, b) if b == out => scalar(g, c)?,
        _ => return None,
    };
    let (ty, out_ty) = (g.value_type(ValueRef::new(next, 0)), g.value_type(out));
    if (&ty.shape, ty.dtype) != (&out_ty.shape, out_ty.dtype) {
        return None;
    }
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

/// `out * sigmoid(out)`, the sigmoid read by nothing but the Mul.
fn match_silu(g: &Graph, out: ValueRef, sigmoid: NodeId, mul: NodeId) -> Option<Fusion> {
    let gate = ValueRef::new(sigmoid, 0);
    if g.node(sigmoid).op != Op::Unary(UnaryOp::Sigmoid)
        || g.node(mul).op != Op::Binary(BinaryOp::Mul)
    {
        return None;
    }
    let gate_read_once = matches!(g.consumers(gate).as_slice(), [(reader, _)] if *reader == mul);
    let operands = (g.input(mul, 0)?, g.input(mul, 1)?);
    let reads_both = operands == (out, gate) || operands == (gate, out);
    (gate_read_once && reads_both && !is_graph_output(g, gate)).then_some(Fusion {
        tail: mul,
        inner: Some(sigmoid),
        change: Change::Activation(Activation::Silu),
    })
}

fn fuse(g: &mut Graph, conv: NodeId, fusion: Fusion) -> Result<(), RemoveNodeError> {
    let absorbed: Vec<NodeId> = fusion.inner.into_iter().chain([fusion.tail]).collect();
    let out = ValueRef::new(conv, 0);
    let provenance = Provenance::merged(
        NAME,
        std::iter::once(&g.node(conv).provenance)
            .chain(absorbed.iter().map(|&id| &g.node(id).provenance)),
    );
    let outputs = g.node(fusion.tail).outputs.clone();
    match fusion.change {
        Change::Residual(r) => g.connect(r, conv, RESIDUAL),
        Change::Activation(activation) => match &mut g.node_mut(conv).op {
            Op::Conv(a) => a.activation = Some(activation),
            Op::ConvTranspose(a) => a.activation = Some(activation),
            _ => {}
        },
        Change::Affine(affine) => {
            if let Op::Conv(a) = &mut g.node_mut(conv).op {
                a.affine = Some(affine);
            }
        }
    }
    g.replace_uses(ValueRef::new(fusion.tail, 0), out);
    g.remove_nodes(&absorbed)?;
    let node = g.node_mut(conv);
    node.outputs = outputs;
    node.provenance = provenance;
    Ok(())
}
