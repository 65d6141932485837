//! A graph specialized to one set of input shapes: every value's shape, the values known before
//! any run, and where each node runs. The CPU plan of the same graph runs once on the first
//! inputs of those shapes and is watched: that gives every shape, whatever op computed it
//! (no second set of shape rules to keep in step with the kernels), and the values of the
//! shape computations that exported graphs carry (Shape, Gather, Concat into a Reshape).
//!
//! A value is known when every value it is computed from is known (weights), or when it is a
//! Shape or Size of a value (the shapes are fixed here). Known nodes do not run: their values
//! are constants of the program. A node whose outputs' shapes can change from run to run with
//! the same input shapes (NonZero, NMS, the ops_lib postprocessing) runs on the host, and so
//! does everything after it; any other node runs on the GPU when it has a lowering, on the
//! host otherwise, with the reason kept for the report.

use super::lower::{self, ragged, Cx, Lowering, Operand};
use crate::backend::{Observer, StepInfo, ValueView};
use crate::cpu::{CpuPlan, CpuState};
use crate::{RuntimeError, Tensor};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
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

/// Watches the CPU run: every value's type, and a copy of each known value.
struct Watch<'g> {
    graph: &'g Graph,
    order: &'g [NodeId],
    types: HashMap<ValueRef, (DType, Vec<usize>)>,
    known: HashMap<ValueRef, Tensor>,
    is_known: HashSet<NodeId>,
}

impl Observer for Watch<'_> {
    fn step(
        &mut self,
        index: usize,
        step: &StepInfo,
        inputs: &[Option<ValueView<'_>>],
        outputs: &[ValueView<'_>],
        _elapsed: Duration,
    ) -> Result<(), RuntimeError> {
        let id = *self.order.get(index).ok_or_else(|| {
            RuntimeError::internal(format!("the CPU plan ran a step {index} past the graph's"))
        })?;
        let node = self.graph.node(id);
        if node.name != step.node {
            return Err(RuntimeError::internal(format!(
                "the CPU plan's step {index} is {}, the graph's node is {}",
                step.node, node.name
            )));
        }
        let _ = inputs;
        let ins: Vec<ValueRef> = self.graph.inputs_of(id).into_iter().flatten().collect();
        let from_known = ins.iter().all(|v| self.known.contains_key(v));
        let known = matches!(node.op, Op::Shape { .. } | Op::Size) || (from_known && !ragged(&node.op));
        for (port, out) in outputs.iter().enumerate() {
            let value = ValueRef::new(id, port);
            self.types
                .insert(value, (out.dtype(), out.shape().to_vec()));
            if known {
                self.known.insert(value, out.to_host()?.into_owned());
            }
        }
        if known {
            self.is_known.insert(id);
        }
        Ok(())
    }
}

/// Specializes `graph` to the shapes of `inputs` (matched to the graph's inputs by `cpu`).
pub(crate) fn specialize(
    graph: &Graph,
    cpu: &CpuPlan,
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
    let mut watch = Watch {
        graph,
        order: &order,
        types,
        known,
        is_known: HashSet::new(),
    };
    cpu.run(&mut CpuState::default(), inputs, Some(&mut watch))?;
    let Watch {
        types,
        known,
        is_known,
        ..
    } = watch;

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
                RuntimeError::internal(format!("{} reads a value never computed", graph.describe(id)))
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
        let outputs = outs
            .map(|v| operand(&v))
            .collect::<Result<Vec<_>, _>>()?;
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
