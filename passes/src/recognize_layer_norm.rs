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

use crate::pattern::{is_exponent, operands, private, scalar};
use crate::rewrite::{Patch, Replacement, Rewrite};
use crate::{Pass, PassError, Rewriter};
use temblor_ir::{
    BinaryOp, Dim, Graph, Layout, NodeId, Op, ReduceOp, TensorType, UnaryOp, ValueRef, Weight,
};

pub struct RecognizeLayerNorm;

impl Pass for RecognizeLayerNorm {
    fn name(&self) -> &'static str {
        "recognize_layer_norm"
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        rw.each(
            |op| *op == Op::Binary(BinaryOp::Div),
            |g, div| {
                normalized(g, div)
                    .and_then(|core| affine(g, core))
                    .map(rewrite)
            },
        );
        Ok(())
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
    let (x, mean) = operands(g, d, BinaryOp::Sub)?;
    let axes = trailing_mean(g, mean, x)?;
    if g.node(s.node).op != Op::Unary(UnaryOp::Sqrt) {
        return None;
    }
    let shifted = g.input(s.node, 0)?;
    let (var, eps) = operands(g, shifted, BinaryOp::Add)?;
    let epsilon = scalar(g, eps).filter(|e| *e >= 0.0)?;
    let squared = g.input(var.node, 0)?;
    if trailing_mean(g, var, squared)? != axes {
        return None;
    }
    let (base, exponent) = operands(g, squared, BinaryOp::Pow)
        .or_else(|| operands(g, squared, BinaryOp::Mul))
        .filter(|&(base, _)| base == d)?;
    let is_square = match g.node(squared.node).op {
        Op::Binary(BinaryOp::Pow) => is_exponent(g, exponent, 2),
        _ => exponent == base,
    };
    is_square.then(|| Core {
        div,
        x,
        axes,
        epsilon,
        absorbed: vec![
            mean.node,
            d.node,
            squared.node,
            var.node,
            shifted.node,
            s.node,
        ],
    })
}

/// The number of trailing axes of `x` that `mean` (a keepdims ReduceMean of `input`) averages
/// over; `None` when it is anything else.
fn trailing_mean(g: &Graph, mean: ValueRef, input: ValueRef) -> Option<usize> {
    let reduce = Op::Reduce {
        op: ReduceOp::Mean,
        keepdims: true,
        noop_with_empty_axes: false,
    };
    if g.node(mean.node).op != reduce || g.input(mean.node, 0)? != input {
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
    // A constant operand is on the right (`commute_constants`).
    let param = g.input(next, 1).filter(|_| g.input(next, 0) == Some(y))?;
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
fn trimmed(p: &mut Patch, param: ValueRef, axes: usize) -> ValueRef {
    let g = p.graph();
    let Some(mut weight) = g.constant(param).filter(|w| w.dims.len() > axes).cloned() else {
        return param;
    };
    weight.dims.drain(..weight.dims.len() - axes);
    let name = format!("{}.trimmed", g.value_info(param).name);
    p.constant(name, weight, Layout::Any)
}

fn rewrite(m: Match) -> Rewrite {
    let matched: Vec<NodeId> = m.absorbed.iter().copied().chain([m.tail]).collect();
    // Node order is the order the frontend read the source in: origins listed that way read
    // like the source.
    let mut origins = matched.clone();
    origins.sort();
    let rewrite = Rewrite::new(matched, m.tail, move |p| {
        let scale = match m.scale {
            Scale::Gamma(gamma) => trimmed(p, gamma, m.axes),
            Scale::Ones(dims) => {
                let name = format!("{}.ones", p.graph().node(m.tail).name);
                let n = dims.iter().product();
                let ones = Weight::from_f32(dims, &vec![1.0; n]);
                p.constant(name, ones, Layout::Any)
            }
        };
        let bias = m.bias.map(|b| trimmed(p, b, m.axes));
        Replacement::Reuse {
            node: m.tail,
            op: Op::LayerNorm {
                axis: -(m.axes as i64),
                epsilon: m.epsilon,
            },
            inputs: vec![Some(m.x), Some(scale), bias],
        }
    });
    rewrite.reading(origins)
}
