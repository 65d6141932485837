//! Folds a per-channel affine layer after a convolution into the conv itself: `conv(x) * s`
//! scales the conv's weight and bias, `conv(x) + b` adds to its bias, with `s` and `b` constants
//! holding one value per output channel (shape `[O]`, `[O,1,1]` or `[1,O,1,1]`) or one for all.
//! paddle2onnx writes BatchNorm as exactly this Mul and Add (and a MobileOne block's learned
//! scale and shift as scalar ones), and splits a conv's bias into an Add; each such layer reads
//! and writes the whole output, and once folded an activation after it can fuse.

use crate::{add_constant, Pass, PassError};
use temblor_ir::{BinaryOp, DType, Graph, Layout, NodeId, Op, Provenance, ValueRef, Weight};

pub struct FoldConvAffine;

const NAME: &str = "fold_conv_affine";

impl Pass for FoldConvAffine {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, g: &mut Graph) -> Result<usize, PassError> {
        let convs: Vec<NodeId> = g
            .node_ids()
            .filter(|&id| matches!(&g.node(id).op, Op::Conv(a) if a.activation.is_none()))
            .collect();
        let mut applied = 0;
        for conv in convs {
            while let Some(m) = affine_after(g, conv) {
                fold(g, conv, m);
                applied += 1;
            }
        }
        Ok(applied)
    }
}

struct Match {
    layer: NodeId,
    op: BinaryOp,
    values: Vec<f32>,
}

/// The Mul or Add after `conv` and its per-channel values, when the conv's output feeds only
/// that layer, the conv has no residual (which would have to be scaled too), and a Mul finds
/// the conv's weight (and bias) constant.
fn affine_after(g: &Graph, conv: NodeId) -> Option<Match> {
    let out = ValueRef::new(conv, 0);
    if g.input(conv, 3).is_some() || g.outputs.iter().any(|o| o.value == out) {
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
    let w = g.constant(other)?;
    let channels = g.value_type(out).shape.dims().get(1)?.known()?;
    let values = w.to_f32()?;
    let values = match (&w.dims[..], &values[..]) {
        ([] | [1] | [1, 1, 1] | [1, 1, 1, 1], &[v]) => vec![v; channels],
        ([o] | [o, 1, 1] | [1, o, 1, 1], _) if *o == channels => values,
        _ => return None,
    };
    if w.dtype != DType::F32 {
        return None;
    }
    let conv_constants = g.constant(g.input(conv, 1)?).is_some()
        && g.input(conv, 2).is_none_or(|b| g.constant(b).is_some());
    if op == BinaryOp::Mul && !conv_constants {
        return None;
    }
    Some(Match { layer, op, values })
}

fn fold(g: &mut Graph, conv: NodeId, m: Match) {
    let provenance = Provenance::merged(
        NAME,
        [&g.node(conv).provenance, &g.node(m.layer).provenance],
    );
    let constant = |g: &Graph, port: usize| {
        g.input(conv, port)
            .and_then(|v| g.constant(v))
            .and_then(|w| Some((w.dims.clone(), w.to_f32()?)))
    };
    let old_bias = constant(g, 2).map(|(_, b)| b);
    let bias: Vec<f32> = match m.op {
        BinaryOp::Mul => old_bias.map(|b| b.iter().zip(&m.values).map(|(b, s)| b * s).collect()),
        _ => Some(match old_bias {
            Some(b) => b.iter().zip(&m.values).map(|(b, v)| b + v).collect(),
            None => m.values.clone(),
        }),
    }
    .unwrap_or_default();
    if m.op == BinaryOp::Mul {
        if let Some((dims, w)) = constant(g, 1) {
            let per_row = w.len() / m.values.len().max(1);
            let scaled: Vec<f32> = w
                .chunks(per_row.max(1))
                .zip(&m.values)
                .flat_map(|(row, s)| row.iter().map(move |v| v * s))
                .collect();
            let name = format!("{}_weight", g.node(conv).name);
            let weight = add_constant(
                g,
                name,
                Weight::from_f32(dims, &scaled),
                Layout::OIHW,
                &provenance,
            );
            g.disconnect_input(conv, 1);
            g.connect(weight, conv, 1);
        }
    }
    if !bias.is_empty() {
        let name = format!("{}_bias", g.node(conv).name);
        let weight = Weight::from_f32(vec![bias.len()], &bias);
        let value = add_constant(g, name, weight, Layout::C, &provenance);
        if g.input(conv, 2).is_some() {
            g.disconnect_input(conv, 2);
        }
        g.connect(value, conv, 2);
    }
    let outputs = g.node(m.layer).outputs.clone();
    g.replace_uses(ValueRef::new(m.layer, 0), ValueRef::new(conv, 0));
    g.remove_node(m.layer);
    let node = g.node_mut(conv);
    node.outputs = outputs;
    node.provenance = provenance;
}
