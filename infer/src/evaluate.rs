//! Compile-time evaluation, the one constant evaluator: a value computed only from constants and
//! from the static shapes of other values (a loop condition, a shape computation, a subgraph the
//! optimizer folds) is run through the CPU runtime's own kernels, so it means exactly what it
//! will mean at run time. The frontends ask for one value ([`static_value`]); constant folding
//! asks for one node's outputs from its constant inputs ([`node_outputs`]).

use std::collections::HashMap;
use temblor_ir::{Graph, NodeId, Op, ValueRef, Weight};
use temblor_runtime::Tensor;

/// Past this many elements a value is not "small": evaluating it would copy weights around for
/// no purpose a frontend has.
const MAX_ELEMENTS: usize = 1 << 16;

/// Past this many producers deep a value is not a shape computation: shape inference asks for
/// operands of every Resize, and a walk up a whole network of dynamic extents would be long and
/// deep enough to overflow a worker thread's stack.
const MAX_DEPTH: usize = 64;

/// The value of `v`, when it is static. Needs the graph's types inferred (Shape nodes read them).
pub fn static_value(g: &Graph, v: ValueRef) -> Option<Tensor> {
    let mut memo = HashMap::new();
    eval(g, v, &mut memo, 0)
}

/// The outputs of node `id`, computed from the values `input` gives for its inputs (`None`: that
/// input has no value now). Shape and Size need no value when their input's extents are
/// static. Graph inputs and constants are not computed (`None`): they are values already.
pub fn node_outputs(
    g: &Graph,
    id: NodeId,
    mut input: impl FnMut(ValueRef) -> Option<Tensor>,
) -> Option<Vec<Tensor>> {
    let node = g.node(id);
    match &node.op {
        Op::Input { .. } | Op::Constant { .. } => None,
        Op::Shape { start, end } => {
            let x = g.input(id, 0)?;
            // A value whose extent shape inference could not know (a Range over computed
            // bounds) may still be static itself.
            let dims = match g.value_type(x).shape.known() {
                Some(d) => d,
                None => input(x)?.shape,
            };
            Some(vec![temblor_runtime::shape_of(&dims, *start, *end)])
        }
        Op::Size => {
            let x = g.input(id, 0)?;
            let count = match g.value_type(x).shape.known() {
                Some(d) => d.iter().product::<usize>(),
                None => input(x)?.shape.iter().product(),
            };
            Some(vec![Tensor::i64(vec![], vec![count as i64])])
        }
        op => {
            let mut inputs = Vec::new();
            for v in g.inputs_of(id) {
                inputs.push(match v {
                    Some(v) => Some(input(v)?),
                    None => None,
                });
            }
            let refs: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_ref).collect();
            let outs = temblor_runtime::run_op(op, &refs, node.outputs.len()).ok()?;
            (outs.len() == node.outputs.len()).then_some(outs)
        }
    }
}

fn eval(
    g: &Graph,
    v: ValueRef,
    memo: &mut HashMap<ValueRef, Tensor>,
    depth: usize,
) -> Option<Tensor> {
    if depth > MAX_DEPTH {
        return None;
    }
    if let Some(t) = memo.get(&v) {
        return Some(t.clone());
    }
    let out = match &g.node(v.node).op {
        Op::Input { .. } => return None,
        Op::Constant { weight } => {
            let w = g.weights.get(*weight)?;
            if w.element_count() > MAX_ELEMENTS || w.is_shape_only() {
                return None;
            }
            vec![Tensor::from_weight(w).ok()?]
        }
        _ => {
            let outs = node_outputs(g, v.node, |i| eval(g, i, memo, depth + 1))?;
            if outs.iter().any(|t| t.len() > MAX_ELEMENTS) {
                return None;
            }
            outs
        }
    };
    for (port, t) in out.into_iter().enumerate() {
        memo.insert(ValueRef::new(v.node, port), t);
    }
    memo.get(&v).cloned()
}

/// The static values shape inference has met so far, node by node in topological order: each
/// node is evaluated once, from the values of its inputs, so the walk stays linear in the graph.
#[derive(Default)]
pub(crate) struct Static(HashMap<ValueRef, Weight>);

impl Static {
    pub(crate) fn get(&self, v: ValueRef) -> Option<&Weight> {
        self.0.get(&v)
    }

    /// Records node `id`'s outputs when they are static and small; its inputs' values come from
    /// the graph's small constants and from what was recorded before.
    pub(crate) fn evaluate(&mut self, g: &Graph, id: NodeId) {
        let value = |v: ValueRef| -> Option<Tensor> {
            let w = match g.constant(v) {
                Some(w) if w.element_count() > MAX_ELEMENTS || w.is_shape_only() => return None,
                Some(w) => w,
                None => self.0.get(&v)?,
            };
            Tensor::from_weight(w).ok()
        };
        let Some(outs) = node_outputs(g, id, value) else {
            return;
        };
        if outs.iter().any(|t| t.len() > MAX_ELEMENTS) {
            return;
        }
        for (port, t) in outs.into_iter().enumerate() {
            self.0.insert(ValueRef::new(id, port), t.to_weight());
        }
    }
}
