//! Constant folding: a node whose inputs are all constants, or a Shape of a value whose extents
//! are static, is computed now with the CPU runtime's own kernels and replaced by constants.
//! This is what turns the shape computations exporters write (Shape -> Gather -> Concat ->
//! Reshape) into static reshapes once the input sizes are known.
//!
//! A model given without its parameters folds its layout changes of weights all the same (a
//! Reshape of a shape-only bias is a shape-only constant of the inferred shape), so it keeps the
//! structure the full model would get.
//!
//! A size cap keeps folding from blowing a model up: a result may not hold more elements than
//! its inputs together, or [`SMALL`], whichever is larger (an Expand or ConstantOfShape of a
//! large static shape stays a node).

use crate::{add_constant, Pass, PassError, Rewriter};
use temblor_infer::evaluate;
use temblor_ir::{DType, Graph, NodeId, Op, Provenance, UnaryOp, ValueRef, Weight};
use temblor_runtime::Tensor;

pub struct FoldConstants;

const NAME: &str = "fold_constants";

/// Results up to this many elements always fold.
const SMALL: usize = 1 << 16;

impl Pass for FoldConstants {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        let g = rw.graph();
        let order = g.topo_order().map_err(|n| PassError::Rewrite {
            pass: NAME,
            message: format!("cycle through {}", g.describe(n)),
        })?;
        for id in order {
            let g = rw.graph();
            let weights = match computed(g, id) {
                Some(values) => values.iter().map(Tensor::to_weight).collect(),
                None => match shape_only(g, id) {
                    Some(w) => vec![w],
                    None => continue,
                },
            };
            let Some(g) = rw.step() else { break };
            replace(g, id, weights);
        }
        Ok(())
    }
}

/// The node's outputs, when they can and should be computed now.
fn computed(g: &Graph, id: NodeId) -> Option<Vec<Tensor>> {
    let node = g.node(id);
    // A node already replaced waits for dead-node removal; folding it again would never end.
    if !(0..node.outputs.len()).any(|p| g.is_used(ValueRef::new(id, p))) {
        return None;
    }
    let mut size = 0;
    let mut any_constant = false;
    for v in g.inputs_of(id).into_iter().flatten() {
        if let Some(w) = g.constant(v).filter(|w| !w.is_shape_only()) {
            size += w.element_count();
            any_constant = true;
        } else if !matches!(node.op, Op::Shape { .. }) {
            return None;
        }
    }
    if !any_constant && !matches!(node.op, Op::Shape { .. }) {
        return None;
    }
    if dequantizes_int8_weight(g, id) {
        return None;
    }
    let cap = size.max(SMALL);
    // A result shape inference already knows to be over the cap is not computed (the pass visits
    // it again every round).
    let too_big = node.outputs.iter().any(|o| {
        o.ty.shape
            .known()
            .is_some_and(|d| d.iter().product::<usize>() > cap)
    });
    if too_big {
        return None;
    }
    let constant = |v: ValueRef| Tensor::from_weight(g.constant(v)?).ok();
    let outs = evaluate::node_outputs(g, id, constant)?;
    outs.iter().all(|t| t.len() <= cap).then_some(outs)
}

/// Whether node `id` is a `DequantizeLinear` of an 8-bit integer constant: a quantized
/// model's weight (onnxruntime's quantizer writes them so, as does `--precision int8`'s
/// export). Kept, the runtime convolves with the integers ([`temblor_runtime`]'s int8
/// lowering) and folds the others once when it prepares its plan; folded here, every such layer
/// ran in floats, and the parsed graph (which the runtime lowers) and the optimized one differed
/// by the rounding of the float sums, which verification rejected.
fn dequantizes_int8_weight(g: &Graph, id: NodeId) -> bool {
    matches!(g.node(id).op, Op::DequantizeLinear { .. })
        && g.input(id, 0)
            .and_then(|v| g.constant(v))
            .is_some_and(|w| matches!(w.dtype, DType::I8 | DType::U8))
}

/// A layout change of a shape-only weight (graph-only model), as a shape-only weight of the
/// node's inferred static type.
fn shape_only(g: &Graph, id: NodeId) -> Option<Weight> {
    let node = g.node(id);
    let layout_only = matches!(
        node.op,
        Op::Reshape { .. }
            | Op::Squeeze
            | Op::Unsqueeze
            | Op::Flatten { .. }
            | Op::Transpose { .. }
            | Op::Unary(UnaryOp::Identity)
    );
    if !layout_only || node.outputs.len() != 1 || !g.is_used(ValueRef::new(id, 0)) {
        return None;
    }
    let data = g.constant(g.input(id, 0)?)?;
    let operands_constant = g
        .inputs_of(id)
        .into_iter()
        .flatten()
        .all(|v| g.constant(v).is_some());
    if !data.is_shape_only() || !operands_constant {
        return None;
    }
    let ty = &node.outputs[0].ty;
    Some(Weight::shape_only(ty.dtype, ty.shape.known()?))
}

/// Every use of the node's outputs reads a new constant instead; the node itself is left for
/// dead-node removal (a graph output it computes now comes from the constant).
fn replace(g: &mut Graph, id: NodeId, weights: Vec<Weight>) {
    let node = g.node(id);
    let prov = Provenance::merged(NAME, [&node.provenance]);
    let infos = node.outputs.clone();
    for (port, (w, info)) in weights.into_iter().zip(infos).enumerate() {
        let old = ValueRef::new(id, port);
        let new = add_constant(g, format!("{}.folded", info.name), w, info.ty.layout, &prov);
        g.replace_uses(old, new);
    }
}
