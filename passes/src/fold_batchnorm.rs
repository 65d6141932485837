//! Folds an inference BatchNormalization into the convolution that feeds it:
//! `bn(conv(x, w) + b) = conv(x, w * s) + (b - mean) * s + beta`, with `s = gamma / sqrt(var + eps)`
//! per output channel. Applies only when the convolution's output feeds nothing but the
//! BatchNorm and every operand involved is an f32 constant.

use crate::{add_constant, Pass, PassError};
use temblor_ir::{Graph, Layout, Node, NodeId, Op, Provenance, ValueRef, Weight};

pub struct FoldBatchNorm;

const NAME: &str = "fold_batchnorm";

impl Pass for FoldBatchNorm {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, g: &mut Graph) -> Result<usize, PassError> {
        let candidates: Vec<NodeId> = g
            .node_ids()
            .filter(|&id| matches!(g.node(id).op, Op::BatchNorm { .. }))
            .collect();
        let mut applied = 0;
        for bn in candidates {
            if let Some(m) = match_conv_bn(g, bn) {
                fold(g, m);
                applied += 1;
            }
        }
        Ok(applied)
    }
}

struct Match {
    conv: NodeId,
    bn: NodeId,
    x: ValueRef,
    weight: Weight,
    scale: Vec<f32>,
    shift: Vec<f32>,
}

fn const_f32(g: &Graph, v: Option<ValueRef>) -> Option<Vec<f32>> {
    g.constant(v?)?.to_f32()
}

fn match_conv_bn(g: &Graph, bn: NodeId) -> Option<Match> {
    let Op::BatchNorm { epsilon } = g.node(bn).op else {
        return None;
    };
    let conv_out = g.input(bn, 0)?;
    let conv = conv_out.node;
    if !matches!(g.node(conv).op, Op::Conv(_))
        || g.consumers(conv_out).len() != 1
        || g.outputs.iter().any(|o| o.value == conv_out)
    {
        return None;
    }
    let weight = g.constant(g.input(conv, 1)?)?.clone();
    let w = weight.to_f32()?;
    let channels = *weight.dims.first()?;
    let bias = match g.input(conv, 2) {
        Some(b) => const_f32(g, Some(b))?,
        None => vec![0.0; channels],
    };
    let [gamma, beta, mean, var] =
        [1, 2, 3, 4].map(|p| const_f32(g, g.input(bn, p)).filter(|v| v.len() == channels));
    let (gamma, beta, mean, var) = (gamma?, beta?, mean?, var?);
    if bias.len() != channels || w.is_empty() {
        return None;
    }
    let scale: Vec<f32> = (0..channels)
        .map(|c| gamma[c] / (var[c] + epsilon).sqrt())
        .collect();
    let shift: Vec<f32> = (0..channels)
        .map(|c| (bias[c] - mean[c]) * scale[c] + beta[c])
        .collect();
    Some(Match {
        conv,
        bn,
        x: g.input(conv, 0)?,
        weight,
        scale,
        shift,
    })
}

fn fold(g: &mut Graph, m: Match) {
    let channels = m.scale.len();
    let per_channel = m.weight.element_count() / channels;
    let w: Vec<f32> = m
        .weight
        .to_f32()
        .expect("matched as f32")
        .chunks(per_channel)
        .zip(&m.scale)
        .flat_map(|(row, s)| row.iter().map(move |v| v * s))
        .collect();

    let (conv, bn) = (g.node(m.conv).clone(), g.node(m.bn).clone());
    let prov = Provenance::merged(NAME, [&conv.provenance, &bn.provenance]);
    let w_val = add_constant(
        g,
        format!("{}.folded_weight", conv.name),
        Weight::from_f32(m.weight.dims.clone(), &w),
        Layout::OIHW,
        &prov,
    );
    let b_val = add_constant(
        g,
        format!("{}.folded_bias", conv.name),
        Weight::from_f32(vec![channels], &m.shift),
        Layout::C,
        &prov,
    );
    let mut fused = Node::new(conv.name.clone(), conv.op.clone(), bn.outputs.clone());
    fused.provenance = prov;
    let fused = g.add_node(fused);
    g.connect(m.x, fused, 0);
    g.connect(w_val, fused, 1);
    g.connect(b_val, fused, 2);
    g.replace_uses(ValueRef::new(m.bn, 0), ValueRef::new(fused, 0));
    g.remove_node(m.bn);
    g.remove_node(m.conv);
}
