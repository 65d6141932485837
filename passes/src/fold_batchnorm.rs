//! Folds an inference BatchNormalization into the convolution that feeds it:
//! `bn(conv(x, w) + b) = conv(x, w * s) + (b - mean) * s + beta`, with `s = gamma / sqrt(var + eps)`
//! per output channel. Conv, DeformConv and ConvTranspose all fold; they differ only in where
//! the output channels lie in the weight and in which port holds the bias.
//!
//! Applies only when the convolution's output feeds nothing but the BatchNorm, the conv has no
//! fused activation or residual (the scale would have to pass through them), and every operand
//! involved is an f32 constant. A model given without its parameters (weights known by shape
//! alone) folds the same way into shape-only weights, so its optimized graph has the structure
//! the full model would have.

use crate::add_constant;
use crate::conv_weights::{self, Rows};
use crate::Pass;
use crate::PassError;
use temblor_ir::{
    DType, Graph, Layout, Node, NodeId, Op, Provenance, RemoveNodeError, ValueRef, Weight,
};

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
                fold(g, m).map_err(|source| PassError::Remove { pass: NAME, source })?;
                applied += 1;
            }
        }
        Ok(applied)
    }
}

struct Match {
    conv: NodeId,
    bn: NodeId,
    rows: Rows,
    bias_port: usize,
    weight: Weight,
    channels: usize,
    /// Per-channel scale and shift; `None` when some operand is known by shape alone.
    affine: Option<(Vec<f32>, Vec<f32>)>,
}

/// The f32 constant at `v` holding `len` elements: `Some(None)` when it is known by shape alone.
fn per_channel(g: &Graph, v: Option<ValueRef>, len: usize) -> Option<Option<Vec<f32>>> {
    let w = g.constant(v?)?;
    (w.dtype == DType::F32 && w.element_count() == len).then(|| w.to_f32())
}

fn match_conv_bn(g: &Graph, bn: NodeId) -> Option<Match> {
    let Op::BatchNorm { epsilon } = g.node(bn).op else {
        return None;
    };
    let conv_out = g.input(bn, 0)?;
    let conv = conv_out.node;
    let (rows, bias_port) = conv_weights::form(g, conv)?;
    if g.consumers(conv_out).len() != 1 || g.outputs.iter().any(|o| o.value == conv_out) {
        return None;
    }
    let weight = g.constant(g.input(conv, 1)?)?.clone();
    let channels = rows.channels(&weight.dims)?;
    if weight.dtype != DType::F32 || weight.element_count() == 0 {
        return None;
    }
    let bias = match g.input(conv, bias_port) {
        Some(b) => per_channel(g, Some(b), channels)?,
        None => Some(vec![0.0; channels]),
    };
    let [gamma, beta, mean, var] = [1, 2, 3, 4].map(|p| per_channel(g, g.input(bn, p), channels));
    let (gamma, beta, mean, var) = (gamma?, beta?, mean?, var?);
    let affine = match (bias, gamma, beta, mean, var, weight.is_shape_only()) {
        (Some(bias), Some(gamma), Some(beta), Some(mean), Some(var), false) => {
            let scale: Vec<f32> = (0..channels)
                .map(|c| gamma[c] / (var[c] + epsilon).sqrt())
                .collect();
            let shift = (0..channels)
                .map(|c| (bias[c] - mean[c]) * scale[c] + beta[c])
                .collect();
            Some((scale, shift))
        }
        _ => None,
    };
    Some(Match {
        conv,
        bn,
        rows,
        bias_port,
        weight,
        channels,
        affine,
    })
}

fn fold(g: &mut Graph, m: Match) -> Result<(), RemoveNodeError> {
    let dims = m.weight.dims.clone();
    let (weight, bias) = match &m.affine {
        Some((scale, shift)) => {
            let w: Vec<f32> = m
                .weight
                .to_f32()
                .expect("matched as an f32 weight with values")
                .iter()
                .enumerate()
                .map(|(i, v)| v * scale[m.rows.channel_of(&dims, i)])
                .collect();
            (
                Weight::from_f32(dims, &w),
                Weight::from_f32(vec![m.channels], shift),
            )
        }
        None => (
            Weight::shape_only(DType::F32, dims),
            Weight::shape_only(DType::F32, vec![m.channels]),
        ),
    };

    let (conv, bn) = (g.node(m.conv).clone(), g.node(m.bn).clone());
    let prov = Provenance::merged(NAME, [&conv.provenance, &bn.provenance]);
    let w_val = add_constant(
        g,
        format!("{}.folded_weight", conv.name),
        weight,
        m.rows.layout(),
        &prov,
    );
    let b_val = add_constant(
        g,
        format!("{}.folded_bias", conv.name),
        bias,
        Layout::C,
        &prov,
    );
    let mut fused = Node::new(conv.name.clone(), conv.op.clone(), bn.outputs.clone());
    fused.provenance = prov;
    let fused = g.add_node(fused);
    for (port, input) in g.inputs_of(m.conv).into_iter().enumerate() {
        if let Some(v) = input.filter(|_| port != 1 && port != m.bias_port) {
            g.connect(v, fused, port);
        }
    }
    g.connect(w_val, fused, 1);
    g.connect(b_val, fused, m.bias_port);
    g.replace_uses(ValueRef::new(m.bn, 0), ValueRef::new(fused, 0));
    g.remove_node(m.bn)?;
    g.remove_node(m.conv)?;
    Ok(())
}
