//! Folds a per-channel affine layer after a convolution into the convolution itself:
//! `conv(x) * s` scales the weight and bias, `conv(x) + b` adds to the bias (and
//! `conv(x) - b` subtracts, as models converted from Keras write BatchNorm), with `s` and `b`
//! constants holding one value per output channel (shape `[O,1,1]` or `[1,O,1,1]`; a `[O]` would
//! broadcast along the width) or one for all. Conv, DeformConv and ConvTranspose all fold; as in
//! `fold_batchnorm`, they differ only in where the output channels lie in the weight and in
//! which port holds the bias.
//! paddle2onnx writes BatchNorm as exactly this Mul and Add (and a MobileOne block's learned
//! scale and shift as scalar ones), and splits a conv's bias into an Add; each such layer reads
//! and writes the whole output, and once folded an activation after it can fuse.
//!
//! A model given without its parameters folds the same way: where the constant or the conv's
//! weight or bias is known by shape alone, so is what the fold makes.

use crate::conv_weights::{self, Rows};
use crate::rewrite::{Replacement, Rewrite};
use crate::{Pass, PassError, Rewriter};
use temblor_ir::{BinaryOp, DType, Graph, Layout, NodeId, Op, ValueRef, Weight};

pub struct FoldConvAffine;

impl Pass for FoldConvAffine {
    fn name(&self) -> &'static str {
        "fold_conv_affine"
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        // A conv may fold a Mul and then the Add after it.
        rw.each_repeatedly(
            |op| matches!(op, Op::Conv(_) | Op::DeformConv(_) | Op::ConvTranspose(_)),
            |g, conv| affine_after(g, conv).map(|m| fold(conv, m)),
        );
        Ok(())
    }
}

/// An f32 tensor's values, or `None` when it is known by shape alone.
type Values = Option<Vec<f32>>;

struct Match {
    layer: NodeId,
    op: BinaryOp,
    rows: Rows,
    bias_port: usize,
    channels: usize,
    /// One value per output channel.
    values: Values,
    /// The conv's weight, which a Mul scales.
    weight: Option<Weight>,
    /// The conv's bias: `None` when it has none.
    bias: Option<Values>,
}

/// The f32 constant feeding `v`.
fn f32_constant(g: &Graph, v: ValueRef) -> Option<&Weight> {
    g.constant(v).filter(|w| w.dtype == DType::F32)
}

/// The Mul, Add or Sub after `conv` and its per-channel values, when the conv's output feeds only
/// that layer, its bias (if any) is a constant, and for a Mul its weight is one too. (The
/// rewriter checks that the layer does not broadcast the conv's output.)
fn affine_after(g: &Graph, conv: NodeId) -> Option<Match> {
    let (rows, bias_port) = conv_weights::form(g, conv)?;
    let out = ValueRef::new(conv, 0);
    let [(layer, _)] = g.consumers(out)[..] else {
        return None;
    };
    let op = match g.node(layer).op {
        Op::Binary(op @ (BinaryOp::Add | BinaryOp::Mul | BinaryOp::Sub)) => op,
        _ => return None,
    };
    // A constant operand is on the right (`commute_constants`).
    if g.input(layer, 0)? != out {
        return None;
    }
    let constant = f32_constant(g, g.input(layer, 1)?)?;
    let out_type = g.value_type(out);
    let channels = out_type.shape.dims().get(1)?.known()?;
    let values = match &constant.dims[..] {
        [] | [1] | [1, 1, 1] | [1, 1, 1, 1] => constant.to_f32().map(|v| vec![v[0]; channels]),
        [o, 1, 1] | [1, o, 1, 1] if *o == channels => constant.to_f32(),
        _ => return None,
    };
    // `conv(x) - c` is `conv(x) + (-c)`, bit for bit.
    let (op, values) = match op {
        BinaryOp::Sub => (
            BinaryOp::Add,
            values.map(|v| v.iter().map(|x| -x).collect()),
        ),
        op => (op, values),
    };
    let bias = match g.input(conv, bias_port) {
        Some(b) => {
            let b = f32_constant(g, b).filter(|b| b.element_count() == channels)?;
            Some(b.to_f32())
        }
        None => None,
    };
    let weight = match op {
        BinaryOp::Mul => {
            let w = f32_constant(g, g.input(conv, 1)?)?;
            if rows.channels(&w.dims) != Some(channels) {
                return None;
            }
            Some(w.clone())
        }
        _ => None,
    };
    Some(Match {
        layer,
        op,
        rows,
        bias_port,
        channels,
        values,
        weight,
        bias,
    })
}

/// `f` applied to each pair of per-channel values, or a shape-only vector when either is
/// unknown.
fn combine(a: &Values, b: &Values, channels: usize, f: impl Fn(f32, f32) -> f32) -> Weight {
    match (a, b) {
        (Some(a), Some(b)) => {
            let v: Vec<f32> = a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect();
            Weight::from_f32(vec![channels], &v)
        }
        _ => Weight::shape_only(DType::F32, vec![channels]),
    }
}

/// The conv with its weight scaled (a Mul) and its bias scaled or shifted, taking over the
/// layer's output.
fn fold(conv: NodeId, m: Match) -> Rewrite {
    Rewrite::new(vec![conv, m.layer], m.layer, move |p| {
        let bias = match m.op {
            BinaryOp::Mul => m
                .bias
                .map(|b| combine(&b, &m.values, m.channels, |b, s| b * s)),
            _ => {
                let old = m.bias.unwrap_or_else(|| Some(vec![0.0; m.channels]));
                Some(combine(&old, &m.values, m.channels, |b, v| b + v))
            }
        };
        let node = p.graph().node(conv);
        let (name, op) = (node.name.clone(), node.op.clone());
        let mut inputs = p.graph().inputs_of(conv);
        inputs.resize(inputs.len().max(m.bias_port + 1), None);
        if let (BinaryOp::Mul, Some(w)) = (m.op, &m.weight) {
            let scaled = match (w.to_f32(), &m.values) {
                (Some(values), Some(scale)) => {
                    let scaled: Vec<f32> = values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| v * scale[m.rows.channel_of(&w.dims, i)])
                        .collect();
                    Weight::from_f32(w.dims.clone(), &scaled)
                }
                _ => Weight::shape_only(DType::F32, w.dims.clone()),
            };
            inputs[1] = Some(p.constant(format!("{name}_weight"), scaled, m.rows.layout()));
        }
        if let Some(bias) = bias {
            inputs[m.bias_port] = Some(p.constant(format!("{name}_bias"), bias, Layout::C));
        }
        Replacement::Reuse {
            node: conv,
            op,
            inputs,
        }
    })
}
