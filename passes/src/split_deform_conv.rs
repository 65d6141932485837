//! Splits a deformable convolution into its sampling and a plain convolution:
//! `DeformConv(x, w, offset, b, mask) = Conv1x1(DeformSample(x, offset, mask), w', b)`, with
//! `w [O, C/g, kH, kW]` reshaped to `w' [O, C/g*kH*kW, 1, 1]` and the Conv grouped by `g`.
//! The sampling is a gather with bilinear weights that must stay fp32, while the convolution
//! is a GEMM that later precision passes can lower to fp16 or int8 like any other Conv, and
//! that the epilogue fusion can give the activation or residual that follows.
//!
//! DeformSample's channel `c*kH*kW + k` holds input channel `c` at kernel tap `k`, so group
//! `j` of the 1x1 Conv reads channels `[j*C/g*kH*kW, (j+1)*C/g*kH*kW)`: the taps of input
//! channels `[j*C/g, (j+1)*C/g)`, which are exactly the channels group `j` of the DeformConv
//! reads, in the order of its weight's `[C/g, kH, kW]` row. Every group count splits.
//!
//! Applies when the weight is a constant (with values or known by shape alone: the reshape
//! only renames its dimensions).

use crate::rewrite::{Replacement, Rewrite};
use crate::{Pass, PassError, Rewriter};
use temblor_ir::{
    ConvAttrs, DeformConvAttrs, Dim, Graph, Layout, Node, NodeId, Op, Shape, TensorInfo,
    TensorType, ValueRef, Weight,
};

pub struct SplitDeformConv;

impl Pass for SplitDeformConv {
    fn name(&self) -> &'static str {
        "split_deform_conv"
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        rw.each(
            |op| matches!(op, Op::DeformConv(_)),
            |g, dcn| match_split(g, dcn).map(split),
        );
        Ok(())
    }
}

struct Match {
    dcn: NodeId,
    attrs: DeformConvAttrs,
    /// The weight as `[O, C/g*kH*kW, 1, 1]`.
    pointwise: Weight,
    /// DeformSample's output type: the DeformConv's with `C*kH*kW` channels.
    sampled: TensorType,
}

fn match_split(g: &Graph, dcn: NodeId) -> Option<Match> {
    let Op::DeformConv(attrs) = &g.node(dcn).op else {
        return None;
    };
    let weight = g.constant(g.input(dcn, 1)?)?;
    let &[o, cg, kh, kw] = weight.dims.as_slice() else {
        return None;
    };
    let group = attrs.group;
    if [kh, kw] != attrs.kernel || group == 0 || o % group != 0 {
        return None;
    }
    let taps = kh * kw;
    let channels = cg * group;
    if let Dim::Known(c) = g.value_type(g.input(dcn, 0)?).shape.dims().get(1)? {
        if *c != channels {
            return None;
        }
    }
    let out = &g.node(dcn).outputs.first()?.ty;
    let [n, _, oh, ow] = out.shape.dims() else {
        return None;
    };
    let sampled = TensorType {
        dtype: out.dtype,
        shape: Shape(vec![
            n.clone(),
            Dim::Known(channels * taps),
            oh.clone(),
            ow.clone(),
        ]),
        layout: Layout::NCHW,
    };
    // The same bytes under new dimensions; a weight known by shape alone has none, and stays so.
    let pointwise = Weight {
        dims: vec![o, cg * taps, 1, 1],
        ..weight.clone()
    };
    Some(Match {
        dcn,
        attrs: attrs.clone(),
        pointwise,
        sampled,
    })
}

/// A DeformSample of the DeformConv's input and a 1x1 Conv of the samples under the
/// DeformConv's name, taking over its output.
fn split(m: Match) -> Rewrite {
    Rewrite::new(vec![m.dcn], m.dcn, move |p| {
        let g = p.graph();
        let name = g.node(m.dcn).name.clone();
        let [x, offset, bias, mask] = [0, 2, 3, 4].map(|port| g.input(m.dcn, port));
        let sample_name = format!("{name}.sample");
        let sample_attrs = DeformConvAttrs {
            group: 1,
            ..m.attrs.clone()
        };
        let sample = Node::new(
            sample_name.clone(),
            Op::DeformSample(sample_attrs),
            vec![TensorInfo {
                name: sample_name,
                ty: m.sampled,
            }],
        );
        let sample = p.node(sample, &[x, offset, mask]);
        let weight_name = format!("{name}.pointwise_weight");
        let weight = p.constant(weight_name, m.pointwise, Layout::OIHW);
        let attrs = ConvAttrs {
            auto_pad: temblor_ir::AutoPad::NotSet,
            kernel: [1, 1],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [0; 4],
            group: m.attrs.group,
            activation: None,
            affine: None,
        };
        Replacement::New {
            name,
            op: Op::Conv(attrs),
            inputs: vec![Some(ValueRef::new(sample, 0)), Some(weight), bias],
        }
    })
}
