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

use crate::add_constant;
use crate::Pass;
use crate::PassError;
use temblor_ir::{
    ConvAttrs, DeformConvAttrs, Dim, Graph, Layout, Node, NodeId, Op, Provenance, RemoveNodeError,
    Shape, TensorInfo, TensorType, ValueRef, Weight,
};

pub struct SplitDeformConv;

const NAME: &str = "split_deform_conv";

impl Pass for SplitDeformConv {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, g: &mut Graph) -> Result<usize, PassError> {
        let candidates: Vec<NodeId> = g
            .node_ids()
            .filter(|&id| matches!(g.node(id).op, Op::DeformConv(_)))
            .collect();
        let mut applied = 0;
        for dcn in candidates {
            if let Some(m) = match_split(g, dcn) {
                split(g, m).map_err(|source| PassError::Remove { pass: NAME, source })?;
                applied += 1;
            }
        }
        Ok(applied)
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

fn split(g: &mut Graph, m: Match) -> Result<(), RemoveNodeError> {
    let dcn = g.node(m.dcn).clone();
    let [x, offset, bias, mask] = [0, 2, 3, 4].map(|p| g.input(m.dcn, p));
    let prov = Provenance::merged(NAME, [&dcn.provenance]);

    let sample_name = format!("{}.sample", dcn.name);
    let sample_attrs = DeformConvAttrs {
        group: 1,
        ..m.attrs.clone()
    };
    let mut sample = Node::new(
        sample_name.clone(),
        Op::DeformSample(sample_attrs),
        vec![TensorInfo {
            name: sample_name,
            ty: m.sampled,
        }],
    );
    sample.provenance = prov.clone();
    let sample = g.add_node(sample);
    for (port, v) in [x, offset, mask].into_iter().enumerate() {
        if let Some(v) = v {
            g.connect(v, sample, port);
        }
    }

    let weight = add_constant(
        g,
        format!("{}.pointwise_weight", dcn.name),
        m.pointwise,
        Layout::OIHW,
        &prov,
    );
    let attrs = ConvAttrs {
        kernel: [1, 1],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [0; 4],
        group: m.attrs.group,
        activation: None,
        affine: None,
    };
    let mut conv = Node::new(dcn.name.clone(), Op::Conv(attrs), dcn.outputs.clone());
    conv.provenance = prov;
    let conv = g.add_node(conv);
    g.connect(ValueRef::new(sample, 0), conv, 0);
    g.connect(weight, conv, 1);
    if let Some(bias) = bias {
        g.connect(bias, conv, 2);
    }
    g.replace_uses(ValueRef::new(m.dcn, 0), ValueRef::new(conv, 0));
    g.remove_node(m.dcn)?;
    Ok(())
}
