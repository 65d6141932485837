//! A graph specialized to one set of input shapes: every value's shape, the values known before
//! any run, and where each node runs. The graph runs once on the host, node by node through the
//! CPU kernels (not the CPU plan, which folds and fuses nodes away), on the first inputs of
//! those shapes: that gives every shape, whatever op computed it (no second set of shape rules
//! to keep in step with the kernels), and the values of the shape computations that exported
//! graphs carry (Shape, Gather, Concat into a Reshape).
//!
//! A value is known when every value it is computed from is known (weights), or when it is a
//! Shape or Size of a value (the shapes are fixed here). Known nodes do not run: their values
//! are constants of the program. A node whose outputs' shapes can change from run to run with
//! the same input shapes (NonZero, NMS, the ops_lib postprocessing) runs on the host, and so
//! does everything after it; any other node runs on the GPU when it has a lowering, on the
//! host otherwise, with the reason kept for the report.

use super::lower::{self, ragged, Cx, Lowering, Operand};
use crate::cpu::run_op;
use crate::{RuntimeError, Tensor};
use std::collections::{HashMap, HashSet};
use temblor_ir::{DType, Graph, NodeId, Op, ValueRef};

/// Where one computing node runs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Place {
    /// Its values are known before the run.
    Known,
    /// On the GPU, as lowered; `derived` are the constants its work reads, and `scratch` the
    /// bytes of each scratch buffer it asked for.
    Gpu {
        lowering: Lowering,
        scratch: Vec<usize>,
        derived: Vec<Tensor>,
    },
    /// On the host, for this reason.
    Host(String),
}

/// A graph specialized to one set of input shapes.
#[derive(Debug)]
pub(crate) struct Specialized {
    /// The computing nodes (every one but inputs and constants), in the order they run.
    pub order: Vec<NodeId>,
    pub places: Vec<Place>,
    /// Every value's dtype and shape.
    pub types: HashMap<ValueRef, (DType, Vec<usize>)>,
    /// The values known before any run: weights and what is computed from them and shapes.
    pub known: HashMap<ValueRef, Tensor>,
}

/// Specializes `graph` to the shapes of `inputs`, given by name.
pub(crate) fn specialize(
    graph: &Graph,
    inputs: &[(String, Tensor)],
) -> Result<Specialized, RuntimeError> {
    let all = graph.topo_order().map_err(|n| {
        RuntimeError::internal(format!("graph has a cycle through {}", graph.describe(n)))
    })?;
    let mut known: HashMap<ValueRef, Tensor> = HashMap::new();
    let mut types = HashMap::new();
    let mut order = Vec::new();
    for &id in &all {
        let node = graph.node(id);
        match node.op {
            Op::Constant { .. } => {
                let value = ValueRef::new(id, 0);
                let w = graph.constant(value).ok_or_else(|| {
                    RuntimeError::internal(format!("{} has no weight", graph.describe(id)))
                })?;
                let t = Tensor::from_weight(w)?;
                types.insert(value, (t.dtype(), t.shape.clone()));
                known.insert(value, t);
            }
            Op::Input { .. } => {
                let name = &node.outputs[0].name;
                let t = inputs
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, t)| t)
                    .ok_or_else(|| RuntimeError::bad_input(format!("input '{name}' is missing")))?;
                types.insert(ValueRef::new(id, 0), (t.dtype(), t.shape.clone()));
            }
            _ => order.push(id),
        }
    }
    // Each computed value while a node still reads it.
    let mut values: HashMap<ValueRef, Tensor> = HashMap::new();
    for id in graph.node_ids() {
        if let Op::Input { .. } = graph.node(id).op {
            let name = &graph.node(id).outputs[0].name;
            if let Some((_, t)) = inputs.iter().find(|(n, _)| n == name) {
                values.insert(ValueRef::new(id, 0), t.clone());
            }
        }
    }
    let mut reads: HashMap<ValueRef, usize> = HashMap::new();
    for &id in &order {
        for v in graph.inputs_of(id).into_iter().flatten() {
            *reads.entry(v).or_default() += 1;
        }
    }
    let mut is_known: HashSet<NodeId> = HashSet::new();
    for &id in &order {
        let node = graph.node(id);
        let ins = graph.inputs_of(id);
        let outs = {
            let args = ins
                .iter()
                .map(|v| match v {
                    Some(v) => values
                        .get(v)
                        .or_else(|| known.get(v))
                        .map(Some)
                        .ok_or_else(|| {
                            RuntimeError::internal(format!(
                                "{} reads a value never computed",
                                graph.describe(id)
                            ))
                        }),
                    None => Ok(None),
                })
                .collect::<Result<Vec<_>, _>>()?;
            run_op(&node.op, &args, node.outputs.len())
                .map_err(|e| e.context(&graph.describe(id)))?
        };
        let from_known = ins.iter().flatten().all(|v| known.contains_key(v));
        let is =
            matches!(node.op, Op::Shape { .. } | Op::Size) || (from_known && !ragged(&node.op));
        for (port, t) in outs.into_iter().enumerate() {
            let value = ValueRef::new(id, port);
            types.insert(value, (t.dtype(), t.shape.clone()));
            if is {
                known.insert(value, t);
            } else {
                values.insert(value, t);
            }
        }
        if is {
            is_known.insert(id);
        }
        for v in ins.iter().flatten() {
            if let Some(left) = reads.get_mut(v) {
                *left -= 1;
                if *left == 0 {
                    values.remove(v);
                }
            }
        }
    }

    // Values whose shape may change from run to run: a ragged op's, and everything after.
    let mut unsettled: HashSet<ValueRef> = HashSet::new();
    let mut places = Vec::with_capacity(order.len());
    for &id in &order {
        let node = graph.node(id);
        let ins = graph.inputs_of(id);
        let outs = (0..node.outputs.len()).map(|p| ValueRef::new(id, p));
        if is_known.contains(&id) {
            places.push(Place::Known);
            continue;
        }
        if ragged(&node.op) || ins.iter().flatten().any(|v| unsettled.contains(v)) {
            unsettled.extend(outs);
            places.push(Place::Host(if ragged(&node.op) {
                format!("{} outputs have data-dependent shapes", node.op.name())
            } else {
                "follows a value whose shape depends on the data".to_owned()
            }));
            continue;
        }
        let operand = |v: &ValueRef| -> Result<Operand<'_>, RuntimeError> {
            let (dtype, shape) = types.get(v).ok_or_else(|| {
                RuntimeError::internal(format!(
                    "{} reads a value never computed",
                    graph.describe(id)
                ))
            })?;
            Ok(Operand {
                dtype: *dtype,
                shape,
                known: known.get(v),
            })
        };
        let inputs = ins
            .iter()
            .map(|v| v.as_ref().map(operand).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = outs.map(|v| operand(&v)).collect::<Result<Vec<_>, _>>()?;
        let mut cx = Cx::new(inputs, outputs);
        places.push(match lower::lower(&node.op, &mut cx) {
            Ok(lowering) => Place::Gpu {
                lowering,
                scratch: cx.scratch,
                derived: cx.derived,
            },
            Err(why) => Place::Host(why.0),
        });
    }
    Ok(Specialized {
        order,
        places,
        types,
        known,
    })
}
