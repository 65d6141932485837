//! Folds a constant zero Pad of an NCHW tensor's two spatial axes into the pads of the layers
//! that read it, which pad with zeros themselves: Conv, DeformConv and DeformSample (whose
//! samples outside the input read zero, as the padded cells do), and AveragePool when padded
//! cells count in its divisor. The Pad's output is never written, and the readers' pads grow
//! by its amounts.
//!
//! An edge Pad (which repeats the border) read by MaxPools folds into their pads as well, where
//! each pad is shorter than the window: every window then holds the border cell each of its
//! padded cells repeats, so its maximum is the same over the window's input alone (Keras
//! exports of Caffe models pad before their first pool so).
//!
//! Left alone: MaxPool after a zero Pad (its implicit padding is -inf, not zero), AveragePool
//! without `count_include_pad` or in ceil mode (whose last window is bounded by the input, not
//! by an explicit pad), negative pads (a crop), pads of the batch or channel axis, a non-zero or
//! unknown fill value, and a Pad whose output any other layer or the graph output reads.

use crate::{Pass, PassError, Rewriter};
use temblor_ir::{AutoPad, Graph, NodeId, Op, PadMode, Provenance, RemoveNodeError, ValueRef};

pub struct FusePad;

const NAME: &str = "fuse_pad";

impl Pass for FusePad {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        let g = rw.graph();
        let pads: Vec<NodeId> = g
            .node_ids()
            .filter(|&id| {
                matches!(g.node(id).op, Op::Pad { mode } if matches!(mode, PadMode::Constant | PadMode::Edge))
            })
            .collect();
        // The rewriter's one-root rewrite does not fit: each of the Pad's readers is rewritten,
        // each with its own provenance.
        for pad in pads {
            if let Some(m) = match_pad(rw.graph(), pad) {
                let Some(g) = rw.step() else { break };
                fuse(g, m).map_err(|source| PassError::Remove { pass: NAME, source })?;
            }
        }
        Ok(())
    }
}

struct Match {
    pad: NodeId,
    mode: PadMode,
    x: ValueRef,
    /// Added padding in the IR's conv order: top, left, bottom, right.
    spatial: [usize; 4],
    readers: Vec<NodeId>,
}

fn match_pad(g: &Graph, pad: NodeId) -> Option<Match> {
    let x = g.input(pad, 0)?;
    let rank = 4;
    if g.value_type(x).shape.rank() != rank {
        return None;
    }
    let Op::Pad { mode } = g.node(pad).op else {
        return None;
    };
    let pads = g.constant(g.input(pad, 1)?)?.to_i64()?;
    // An edge Pad takes no fill value.
    if let Some(value) = g.input(pad, 2).filter(|_| mode == PadMode::Constant) {
        let w = g.constant(value)?;
        let zero = match w.to_f32() {
            Some(v) => v.iter().all(|&e| e == 0.0),
            None => w.to_i64()?.iter().all(|&e| e == 0),
        };
        if !zero {
            return None;
        }
    }
    let axes: Vec<usize> = match g.input(pad, 3) {
        Some(a) => g
            .constant(a)?
            .to_i64()?
            .into_iter()
            .map(|a| usize::try_from(if a < 0 { a + rank as i64 } else { a }).ok())
            .collect::<Option<_>>()?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return None;
    }
    let (mut begin, mut end) = ([0usize; 4], [0usize; 4]);
    let mut seen = [false; 4];
    for (i, &axis) in axes.iter().enumerate() {
        if axis >= rank || std::mem::replace(&mut seen[axis], true) {
            return None;
        }
        begin[axis] = usize::try_from(pads[i]).ok()?;
        end[axis] = usize::try_from(pads[i + axes.len()]).ok()?;
    }
    if begin[..2].iter().chain(&end[..2]).any(|&p| p != 0) {
        return None;
    }
    let out = ValueRef::new(pad, 0);
    if g.outputs.iter().any(|o| o.value == out) {
        return None;
    }
    let consumers = g.consumers(out);
    let readers: Vec<NodeId> = consumers.iter().map(|&(id, _)| id).collect();
    let spatial = [begin[2], begin[3], end[2], end[3]];
    let fusable = |&(id, port): &(NodeId, usize)| {
        let node = g.node(id);
        // A MaxPool's indices count the padded cells.
        let values_only = mode == PadMode::Constant || node.outputs.len() == 1;
        port == 0 && values_only && own_pads(&mut node.op.clone(), mode, spatial).is_some()
    };
    (!consumers.is_empty() && consumers.iter().all(fusable)).then_some(Match {
        pad,
        mode,
        x,
        spatial,
        readers,
    })
}

/// The pads (top, left, bottom, right) of a layer that pads as a Pad of `mode` would, where
/// `added` more of them keep it so.
fn own_pads(op: &mut Op, mode: PadMode, added: [usize; 4]) -> Option<&mut [usize]> {
    match mode {
        PadMode::Constant => zero_pads(op),
        PadMode::Edge => match op {
            Op::MaxPool(a)
                if a.auto_pad == AutoPad::NotSet
                    && !a.ceil_mode
                    && a.pads.len() == 4
                    && a.kernel.len() == 2
                    && a.dilations.iter().all(|&d| d == 1)
                    && (0..4).all(|i| a.pads[i] + added[i] < a.kernel[i % 2]) =>
            {
                Some(&mut a.pads)
            }
            _ => None,
        },
        _ => None,
    }
}

/// The pads of a layer that pads with zeros itself, in the order top, left, bottom, right.
fn zero_pads(op: &mut Op) -> Option<&mut [usize]> {
    match op {
        Op::Conv(a) => Some(&mut a.pads),
        Op::DeformConv(a) | Op::DeformSample(a) => Some(&mut a.pads),
        Op::AveragePool(a) if a.count_include_pad && !a.ceil_mode && a.pads.len() == 4 => {
            Some(&mut a.pads)
        }
        _ => None,
    }
}

fn fuse(g: &mut Graph, m: Match) -> Result<(), RemoveNodeError> {
    let pad_provenance = g.node(m.pad).provenance.clone();
    for reader in m.readers {
        let node = g.node_mut(reader);
        if let Some(pads) = own_pads(&mut node.op, m.mode, m.spatial) {
            for (p, extra) in pads.iter_mut().zip(m.spatial) {
                *p += extra;
            }
        }
        node.provenance = Provenance::merged(NAME, [&node.provenance, &pad_provenance]);
        g.disconnect_input(reader, 0);
        g.connect(m.x, reader, 0);
    }
    g.remove_node(m.pad)
}
