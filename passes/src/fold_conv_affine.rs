//! Folds a per-channel affine layer after a convolution into the convolution itself:
//! `conv(x) * s` scales the weight and bias, `conv(x) + b` adds to the bias, with `s` and `b`
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

use crate::add_constant;
use crate::conv_weights::{self, Rows};
use crate::Pass;
use crate::PassError;
use temblor_ir::{
    BinaryOp, DType, Graph, Layout, NodeId, Op, Provenance, RemoveNodeError, ValueRef, Weight,
};

pub struct FoldConvAffine;

const NAME: &str = "fold_conv_affine";

impl Pass for FoldConvAffine {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, g: &mut Graph) -> Result<usize, PassError> {
        let convs: Vec<NodeId> = g
            .node_ids()
            .filter(|&id| conv_weights::form(g, id).is_some())
            .collect();
        let mut applied = 0;
        for conv in convs {
            while let Some(m) = affine_after(g, conv) {
                fold(g, conv, m).map_err(|source| PassError::Remove { pass: NAME, source })?;
                applied += 1;
            }
        }
        Ok(applied)
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

/// The Mul or Add after `conv` and its per-channel values, when the conv's output feeds only
/// that layer, its bias (if any) is a constant, and for a Mul its weight is one too.
fn affine_after(g: &Graph, conv: NodeId) -> Option<Match> {
    let (rows, bias_port) = conv_weights::form(g, conv)?;
    let out = ValueRef::new(conv, 0);
    if g.outputs.iter().any(|o| o.value == out) {
        return None;
    }
    let [(layer, _)] = g.consumers(out)[..] else {
        return None;
    };
    let op = match g.node(layer).op {
        Op::Binary(op @ (BinaryOp::Add | BinaryOp::Mul)) => op,
        _ => return None,
    };
    let other = match (g.input(layer, 0)?, g.input(layer, 1)?) {
        (a, b) if a == out => b,
        (a, b) if b == out => a,
        _ => return None,
    };
    let constant = f32_constant(g, other)?;
    let out_type = g.value_type(out);
    if g.value_type(ValueRef::new(layer, 0)).shape != out_type.shape {
        return None;
    }
    let channels = out_type.shape.dims().get(1)?.known()?;
    let values = match &constant.dims[..] {
        [] | [1] | [1, 1, 1] | [1, 1, 1, 1] => constant.to_f32().map(|v| vec![v[0]; channels]),
        [o, 1, 1] | [1, o, 1, 1] if *o == channels => constant.to_f32(),
        _ => return None,
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

fn fold(g: &mut Graph, conv: NodeId, m: Match) -> Result<(), RemoveNodeError> {
    let provenance = Provenance::merged(
        NAME,
        [&g.node(conv).provenance, &g.node(m.layer).provenance],
    );
    let bias = match m.op {
        BinaryOp::Mul => m
            .bias
            .map(|b| combine(&b, &m.values, m.channels, |b, s| b * s)),
        _ => {
            let old = m.bias.unwrap_or_else(|| Some(vec![0.0; m.channels]));
            Some(combine(&old, &m.values, m.channels, |b, v| b + v))
        }
    };
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
        let name = format!("{}_weight", g.node(conv).name);
        let weight = add_constant(g, name, scaled, m.rows.layout(), &provenance);
        g.disconnect_input(conv, 1);
        g.connect(weight, conv, 1);
    }
    if let Some(bias) = bias {
        let name = format!("{}_bias", g.node(conv).name);
        let value = add_constant(g, name, bias, Layout::C, &provenance);
        g.disconnect_input(conv, m.bias_port);
        g.connect(value, conv, m.bias_port);
    }
    let outputs = g.node(m.layer).outputs.clone();
    g.replace_uses(ValueRef::new(m.layer, 0), ValueRef::new(conv, 0));
    g.remove_node(m.layer)?;
    let node = g.node_mut(conv);
    node.outputs = outputs;
    node.provenance = provenance;
    Ok(())
}
