//! Sinks transposes below the Concat that joins them: a Concat whose inputs are all Transposes
//! by one permutation becomes one Transpose of the Concat of their inputs, along the axis the
//! permutation takes the Concat's axis from (`perm[axis]`). Detection heads (YOLO, PicoDet,
//! RetinaNet) transpose each level's NCHW map to NHWC before joining the levels, so this moves
//! every level's data once instead of once per level.
//!
//! An input may also be an elementwise layer of one operand (Sigmoid, Relu, ...) reading the
//! Transpose, as a head that activates each level's scores before joining them writes it: the
//! layer then reads the untransposed tensor, which computes the same values in another order.
//!
//! Each Transpose (and elementwise layer) must be read by nothing but the Concat, so no
//! untransposed copy is left behind; the Concat is rewritten in place and the first Transpose
//! is reused after it, taking over the Concat's output so its readers stay as they were.

use crate::{Pass, PassError, Rewriter};
use temblor_ir::{
    Dim, Graph, Layout, NodeId, Op, Provenance, RemoveNodeError, Shape, TensorType, ValueRef,
};

pub struct SinkTransposes;

const NAME: &str = "sink_transposes";

impl Pass for SinkTransposes {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        let g = rw.graph();
        let concats: Vec<NodeId> = g
            .node_ids()
            .filter(|&id| matches!(g.node(id).op, Op::Concat { .. }))
            .collect();
        for concat in concats {
            if let Some(m) = match_concat(rw.graph(), concat) {
                let Some(g) = rw.step() else { break };
                sink(g, concat, m).map_err(|source| PassError::Remove { pass: NAME, source })?;
            }
        }
        Ok(())
    }
}

/// One Concat input: the Transpose it comes from, and the elementwise layer between them.
struct Operand {
    transpose: NodeId,
    unary: Option<NodeId>,
}

struct Match {
    perm: Vec<usize>,
    axis: usize,
    operands: Vec<Operand>,
}

fn match_concat(g: &Graph, concat: NodeId) -> Option<Match> {
    let Op::Concat { axis } = g.node(concat).op else {
        return None;
    };
    let inputs = g.inputs_of(concat);
    if inputs.len() < 2 {
        return None;
    }
    let mut perm: Option<&Vec<usize>> = None;
    let mut operands = Vec::with_capacity(inputs.len());
    for input in inputs {
        let operand = operand(g, input?, concat)?;
        let Op::Transpose { perm: p } = &g.node(operand.transpose).op else {
            return None;
        };
        if perm.is_some_and(|q| q != p) {
            return None;
        }
        perm = Some(p);
        operands.push(operand);
    }
    let perm = perm?.clone();
    let rank = perm.len() as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    // An empty perm means "reverse", which shape inference resolves; until then it is not known
    // which axis the Concat joins.
    if rank == 0 || !(0..rank).contains(&axis) {
        return None;
    }
    Some(Match {
        axis: perm[axis as usize],
        perm,
        operands,
    })
}

/// The Transpose behind the Concat input `v`, directly or through an elementwise layer of one
/// operand, each read only by the next.
fn operand(g: &Graph, v: ValueRef, concat: NodeId) -> Option<Operand> {
    if !read_only_by(g, v, concat) {
        return None;
    }
    match g.node(v.node).op {
        Op::Transpose { .. } => Some(Operand {
            transpose: v.node,
            unary: None,
        }),
        ref op if is_unary_elementwise(op) => {
            let t = g.input(v.node, 0)?;
            (matches!(g.node(t.node).op, Op::Transpose { .. }) && read_only_by(g, t, v.node))
                .then_some(Operand {
                    transpose: t.node,
                    unary: Some(v.node),
                })
        }
        _ => None,
    }
}

fn is_unary_elementwise(op: &Op) -> bool {
    matches!(
        op,
        Op::Unary(_)
            | Op::LeakyRelu { .. }
            | Op::HardSigmoid { .. }
            | Op::Clip { .. }
            | Op::Gelu { .. }
    )
}

/// Whether `reader` is the only reader of `v` (at one port) and `v` is no graph output.
fn read_only_by(g: &Graph, v: ValueRef, reader: NodeId) -> bool {
    v.port == 0
        && g.node(v.node).outputs.len() == 1
        && matches!(g.consumers(v)[..], [(r, _)] if r == reader)
        && !g.outputs.iter().any(|o| o.value == v)
}

/// `ty` before `perm` was applied: axis `perm[i]` of the result is axis `i` of `ty`.
fn untransposed(ty: &TensorType, perm: &[usize], layout: Layout) -> TensorType {
    let mut dims = vec![Dim::Unknown; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        dims[p] = ty.shape.dims()[i].clone();
    }
    TensorType {
        dtype: ty.dtype,
        shape: Shape(dims),
        layout,
    }
}

fn sink(g: &mut Graph, concat: NodeId, m: Match) -> Result<(), RemoveNodeError> {
    let sources: Vec<ValueRef> = m
        .operands
        .iter()
        .map(|o| {
            g.input(o.transpose, 0)
                .expect("matched Transpose has an input")
        })
        .collect();
    // The untransposed inputs agree on a layout when they all have one; the joined tensor has
    // it too.
    let layout = match g.value_type(sources[0]).layout {
        l if sources.iter().all(|&s| g.value_type(s).layout == l) => l,
        _ => Layout::Any,
    };
    let transposes: Vec<NodeId> = m.operands.iter().map(|o| o.transpose).collect();
    let provenance = Provenance::merged(NAME, transposes.iter().map(|&t| &g.node(t).provenance));
    let concat_provenance = Provenance::merged(NAME, [&g.node(concat).provenance]);

    for (port, (operand, &source)) in m.operands.iter().zip(&sources).enumerate() {
        let input = match operand.unary {
            Some(unary) => {
                g.disconnect_input(unary, 0);
                g.connect(source, unary, 0);
                let layout = g.value_type(source).layout;
                let out = &mut g.node_mut(unary).outputs[0];
                out.ty = untransposed(&out.ty, &m.perm, layout);
                ValueRef::new(unary, 0)
            }
            None => source,
        };
        g.disconnect_input(concat, port);
        g.connect(input, concat, port);
    }

    let after = transposes[0];
    let joined = ValueRef::new(concat, 0);
    let outputs = g.node(concat).outputs.clone();
    let mut joined_info = outputs[0].clone();
    joined_info.name = format!("{}.untransposed", joined_info.name);
    joined_info.ty = untransposed(&outputs[0].ty, &m.perm, layout);

    g.replace_uses(joined, ValueRef::new(after, 0));
    g.disconnect_input(after, 0);
    g.connect(joined, after, 0);
    g.remove_nodes(&transposes[1..])?;
    let node = g.node_mut(concat);
    node.op = Op::Concat {
        axis: m.axis as i64,
    };
    node.outputs = vec![joined_info];
    node.provenance = concat_provenance;
    let node = g.node_mut(after);
    node.outputs = outputs;
    node.provenance = provenance;
    Ok(())
}
