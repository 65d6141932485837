//! `compile --raw-masks`: a Mask R-CNN's graph stops at each box's `M x M` mask probabilities
//! instead of pasting every mask at the photo's full size. The paste (a GridSample of each mask
//! over the whole photo, then a threshold) costs what the photo's area times the box count does,
//! most of it on pixels far outside the box (mmdetection measured 15.7 ms of a 72 ms inference
//! at 1333x800); `run --image` pastes each mask in its own box's region instead.
//!
//! The pattern is PaddleDetection's `MaskPostProcess` as exported: an output computed from a
//! GridSample's result through shape-only layers (Slice, Squeeze, Reshape), a comparison with a
//! constant threshold and a Cast (and the Identity a Paddle export names its outputs with). The output keeps its name and becomes the GridSample's mask
//! input, `[N, 1, M, M]`; the paste's layers are left for `DeadNodes` to remove.

use crate::{Pass, PassError, Rewriter};
use temblor_ir::{BinaryOp, Graph, Op, UnaryOp, ValueRef};

pub struct RawMasks;

impl Pass for RawMasks {
    fn name(&self) -> &'static str {
        "raw_masks"
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        let g = rw.graph();
        let cuts: Vec<(usize, ValueRef)> = g
            .outputs
            .iter()
            .enumerate()
            .filter_map(|(i, o)| pasted_from(g, o.value).map(|masks| (i, masks)))
            .collect();
        for (i, masks) in cuts {
            let Some(g) = rw.step() else { break };
            g.outputs[i].value = masks;
        }
        Ok(())
    }
}

/// The per-box masks a pasted-mask output was computed from, if `value` is one.
fn pasted_from(g: &Graph, value: ValueRef) -> Option<ValueRef> {
    let mut v = value;
    while matches!(g.node(v.node).op, Op::Unary(UnaryOp::Identity)) {
        v = g.input(v.node, 0)?;
    }
    if matches!(g.node(v.node).op, Op::Cast { .. }) {
        v = g.input(v.node, 0)?;
    }
    let compare = g.node(v.node);
    if !matches!(
        compare.op,
        Op::Binary(BinaryOp::GreaterOrEqual | BinaryOp::Greater)
    ) || g.constant(g.input(v.node, 1)?).is_none()
    {
        return None;
    }
    v = g.input(v.node, 0)?;
    while matches!(
        g.node(v.node).op,
        Op::Slice | Op::Squeeze | Op::Reshape { .. }
    ) {
        v = g.input(v.node, 0)?;
    }
    if !matches!(g.node(v.node).op, Op::GridSample { .. }) {
        return None;
    }
    let masks = g.input(v.node, 0)?;
    (g.value_type(masks).shape.rank() == 4).then_some(masks)
}
