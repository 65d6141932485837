//! Recognizes layer normalization written out by exporters that lack the op (paddle2onnx, and
//! PyTorch before opset 17):
//!
//! ```text
//! mean = ReduceMean(x, axes, keepdims)        d = x - mean
//! var  = ReduceMean(Pow(d, 2) or d * d, axes, keepdims)
//! y    = d / Sqrt(var + epsilon)              [* gamma]  [+ beta]
//! ```
//!
//! becomes one `LayerNorm { axis, epsilon }` with inputs x, gamma (ones when absent) and beta.
//! LayerNorm normalizes every axis from `axis` on, so the reduced axes must be exactly the
//! trailing ones of x's inferred shape, and gamma and beta must vary along those axes only.
//! Eight to ten layers, two of them reductions, become one that reads x once.

use crate::add_constant;
use crate::pattern::{is_exponent, private, private_operands as operands, scalar};
use crate::Pass;
use crate::PassError;
use temblor_ir::{
    BinaryOp, Dim, Graph, Layout, NodeId, Op, Provenance, ReduceOp, RemoveNodeError, TensorType,
    UnaryOp, ValueRef, Weight,
};

pub struct RecognizeLayerNorm;

const NAME: &str = "recognize_layer_norm";

impl Pass for RecognizeLayerNorm {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, g: &mut Graph) -> Result<usize, PassError> {
        let divs: Vec<NodeId> = g
            .node_ids()
            .filter(|&id| g.node(id).op == Op::Binary(BinaryOp::Div))
            .collect();
        let mut applied = 0;
        for div in divs {
            if !g.contains(div) {
                continue;
            }
            if let Some(m) = normalized(g, div).and_then(|core| affine(g, core)) {
                rewrite(g, m).map_err(|source| PassError::Remove { pass: NAME, source })?;
                applied += 1;
            }
        }
        Ok(applied)
    }
}

/// The normalization `d / sqrt(var + eps)` ending at `div`, before any scale and shift.
struct Core {
    div: NodeId,
    x: ValueRef,
    /// How many trailing axes are normalized.
    axes: usize,
    epsilon: f32,
    absorbed: Vec<NodeId>,
}

/// A whole match: the layer whose output becomes LayerNorm's and its inputs.
struct Match {
    tail: NodeId,
    x: ValueRef,
    axes: usize,
    epsilon: f32,
    scale: Scale,
    bias: Option<ValueRef>,
    absorbed: Vec<NodeId>,
}

/// LayerNorm's scale: the pattern's gamma, or ones of the normalized extents when it has none.
enum Scale {
    Gamma(ValueRef),
    Ones(Vec<usize>),
}

fn normalized(g: &Graph, div: NodeId) -> Option<Core> {
    let (d, s) = (g.input(div, 0)?, g.input(div, 1)?);
    let sub = d.node;
    if g.node(sub).op != Op::Binary(BinaryOp::Sub) || g.outputs.iter().any(|o| o.value == d) {
        return None;
    }
    let (x, mean) = (g.input(sub, 0)?, g.input(sub, 1)?);
    let axes = trailing_mean(g, mean, x)?;

    let sqrt = s.node;
    if g.node(sqrt).op != Op::Unary(UnaryOp::Sqrt) || !private(g, s) {
        return None;
    }
    let shifted = g.input(sqrt, 0)?;
    let (var, epsilon) = operands(g, shifted, BinaryOp::Add).and_then(|(a, b)| {
        let eps = |v| scalar(g, v).filter(|e| *e >= 0.0);
        eps(b).map(|e| (a, e)).or_else(|| eps(a).map(|e| (b, e)))
    })?;
    let squared = g.input(var.node, 0)?;
    if trailing_mean(g, var, squared)? != axes {
        return None;
    }
    let square = squared.node;
    let (base, exponent) = operands(g, squared, BinaryOp::Pow)
        .or_else(|| operands(g, squared, BinaryOp::Mul))
        .filter(|&(base, _)| base == d)?;
    let is_square = match g.node(square).op {
        Op::Binary(BinaryOp::Pow) => is_exponent(g, exponent, 2),
        _ => exponent == base,
    };
    // `d` is read by the square (once or twice) and the division, and by nothing else.
    let readers = if exponent == d { 3 } else { 2 };
    if !is_square || g.consumers(d).len() != readers {
        return None;
    }
    let (xt, yt) = (g.value_type(x), g.value_type(ValueRef::new(div, 0)));
    (xt.dtype == yt.dtype && xt.shape == yt.shape).then(|| Core {
        div,
        x,
        axes,
        epsilon,
        absorbed: vec![mean.node, sub, square, var.node, shifted.node, sqrt],
    })
}

/// The number of trailing axes of `x` that `mean` (a private keepdims ReduceMean of `input`)
/// averages over; `None` when it is anything else.
fn trailing_mean(g: &Graph, mean: ValueRef, input: ValueRef) -> Option<usize> {
    let reduce = Op::Reduce {
        op: ReduceOp::Mean,
        keepdims: true,
        noop_with_empty_axes: false,
    };
    if g.node(mean.node).op != reduce || !private(g, mean) || g.input(mean.node, 0)? != input {
        return None;
    }
    let rank = g.value_type(input).shape.rank() as i64;
    let mut axes = match g.input(mean.node, 1) {
        Some(v) => g.constant(v)?.to_i64()?,
        None => Vec::new(),
    };
    if axes.is_empty() {
        // No axes: every axis is reduced.
        axes = (0..rank).collect();
    }
    let mut axes: Vec<i64> = axes
        .into_iter()
        .map(|a| if a < 0 { a + rank } else { a })
        .collect();
    axes.sort_unstable();
    let k = axes.len() as i64;
    (axes.iter().copied().eq(rank - k..rank) && k > 0).then_some(k as usize)
}

/// Extends the core with a following `* gamma` and `+ beta`, each optional, when they are
/// constants that vary along the normalized axes only.
fn affine(g: &Graph, core: Core) -> Option<Match> {
    let (mut tail, mut absorbed) = (core.div, core.absorbed);
    let (mut gamma, mut bias) = (None, None);
    for op in [BinaryOp::Mul, BinaryOp::Add] {
        let Some((next, param)) = follower(g, ValueRef::new(tail, 0), op, core.axes) else {
            continue;
        };
        absorbed.push(tail);
        tail = next;
        let slot = if op == BinaryOp::Mul {
            &mut gamma
        } else {
            &mut bias
        };
        *slot = Some(param);
    }
    let scale = match gamma {
        Some(gamma) => Scale::Gamma(gamma),
        None => {
            let dims = g.value_type(core.x).shape.dims();
            let normalized = &dims[dims.len() - core.axes..];
            Scale::Ones(normalized.iter().map(Dim::known).collect::<Option<_>>()?)
        }
    };
    Some(Match {
        tail,
        x: core.x,
        axes: core.axes,
        epsilon: core.epsilon,
        scale,
        bias,
        absorbed,
    })
}

/// The only reader of `y` when it is `op` with a per-feature constant: (that layer, the constant).
fn follower(g: &Graph, y: ValueRef, op: BinaryOp, axes: usize) -> Option<(NodeId, ValueRef)> {
    if !private(g, y) {
        return None;
    }
    let (next, _) = g.consumers(y)[0];
    if g.node(next).op != Op::Binary(op) {
        return None;
    }
    let (a, b) = (g.input(next, 0)?, g.input(next, 1)?);
    let param = if a == y { b } else { a };
    let (yt, out) = (g.value_type(y), g.value_type(ValueRef::new(next, 0)));
    let fits = g.constant(param).is_some() && per_feature(g, param, axes) && keeps(yt, out);
    fits.then_some((next, param))
}

/// Whether an elementwise layer from `from` to `to` keeps the shape: same dtype and rank, and
/// every extent the same unless `from`'s is not known statically. A parameter that reveals a
/// dynamic extent (a `[120]` gamma on `[?,?,?]`, as paddle2onnx models with dynamic input
/// sizes have) is accepted: the only extent it could stretch is 1, a normalization over a
/// single element, which no model computes.
fn keeps(from: &TensorType, to: &TensorType) -> bool {
    from.dtype == to.dtype
        && from.shape.rank() == to.shape.rank()
        && from
            .shape
            .dims()
            .iter()
            .zip(to.shape.dims())
            .all(|(f, t)| f == t || f.known().is_none())
}

/// Whether a parameter varies along the last `axes` axes only: its dims before those are 1.
fn per_feature(g: &Graph, param: ValueRef, axes: usize) -> bool {
    let dims = g.value_type(param).shape.dims();
    let lead = dims.len().saturating_sub(axes);
    dims[..lead].iter().all(|d| *d == Dim::Known(1))
}

/// A parameter as LayerNorm takes it, with no more axes than are normalized: the leading ones
/// of size 1 are dropped, in a new constant sharing the weight's data.
fn trimmed(g: &mut Graph, param: ValueRef, axes: usize, prov: &Provenance) -> ValueRef {
    let Some(mut weight) = g.constant(param).filter(|w| w.dims.len() > axes).cloned() else {
        return param;
    };
    weight.dims.drain(..weight.dims.len() - axes);
    let name = format!("{}.trimmed", g.value_info(param).name);
    add_constant(g, name, weight, Layout::Any, prov)
}

fn rewrite(g: &mut Graph, m: Match) -> Result<(), RemoveNodeError> {
    let mut parts: Vec<NodeId> = m.absorbed.iter().copied().chain([m.tail]).collect();
    // Node order is the order the frontend read the source in: origins listed that way read
    // like the source.
    parts.sort();
    let provenance = Provenance::merged(NAME, parts.iter().map(|&id| &g.node(id).provenance));
    let scale = match m.scale {
        Scale::Gamma(gamma) => trimmed(g, gamma, m.axes, &provenance),
        Scale::Ones(dims) => {
            let name = format!("{}.ones", g.node(m.tail).name);
            let ones = vec![1.0; dims.iter().product()];
            add_constant(
                g,
                name,
                Weight::from_f32(dims, &ones),
                Layout::Any,
                &provenance,
            )
        }
    };
    let bias = m.bias.map(|b| trimmed(g, b, m.axes, &provenance));
    g.disconnect_input(m.tail, 1);
    g.disconnect_input(m.tail, 0);
    g.connect(m.x, m.tail, 0);
    g.connect(scale, m.tail, 1);
    if let Some(b) = bias {
        g.connect(b, m.tail, 2);
    }
    g.remove_nodes(&m.absorbed)?;
    let node = g.node_mut(m.tail);
    node.op = Op::LayerNorm {
        axis: -(m.axes as i64),
        epsilon: m.epsilon,
    };
    node.provenance = provenance;
    Ok(())
}
