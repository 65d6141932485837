//! Compile-time evaluation of small values: a value computed only from constants and from the
//! static shapes of other values (a loop condition, a shape computation) is run through the CPU
//! runtime's own kernels, so it means exactly what it will mean at run time.

use std::collections::HashMap;
use temblor_ir::{Graph, Op, ValueRef};
use temblor_runtime::Tensor;

/// Past this many elements a value is not "small": evaluating it would copy weights around for
/// no purpose a frontend has.
const MAX_ELEMENTS: usize = 1 << 16;

/// The value of `v`, when it is static. Needs the graph's types inferred (Shape nodes read them).
pub fn static_value(g: &Graph, v: ValueRef) -> Option<Tensor> {
    let mut memo = HashMap::new();
    eval(g, v, &mut memo)
}

fn eval(g: &Graph, v: ValueRef, memo: &mut HashMap<ValueRef, Tensor>) -> Option<Tensor> {
    if let Some(t) = memo.get(&v) {
        return Some(t.clone());
    }
    let node = g.node(v.node);
    let out = match &node.op {
        Op::Input { .. } => return None,
        Op::Constant { weight } => {
            let w = g.weights.get(*weight)?;
            if w.element_count() > MAX_ELEMENTS || w.is_shape_only() {
                return None;
            }
            vec![Tensor::from_weight(w).ok()?]
        }
        Op::Shape { start, end } => {
            let input = g.inputs_of(v.node).first().copied().flatten()?;
            // A value whose extent shape inference could not know (a Range over computed
            // bounds) may still be static itself.
            let dims = match g.value_type(input).shape.known() {
                Some(d) => d,
                None => eval(g, input, memo)?.shape,
            };
            vec![temblor_runtime::shape_of(&dims, *start, *end)]
        }
        op => {
            let mut inputs = Vec::new();
            for input in g.inputs_of(v.node) {
                inputs.push(match input {
                    Some(i) => Some(eval(g, i, memo)?),
                    None => None,
                });
            }
            let refs: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_ref).collect();
            let outs = temblor_runtime::run_op(op, &refs, node.outputs.len()).ok()?;
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
