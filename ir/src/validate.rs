//! Structural validation: the invariants every stage (import, each pass, compile) must keep.
//! Run after every stage in tests and debug builds; a failure is a compiler bug, reported with
//! the node it was found at.

use crate::BinaryOp;
use crate::Dim;
use crate::Graph;
use crate::NodeId;
use crate::Op;
use crate::ValueRef;
use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid graph '{graph}': {what}")]
pub struct ValidationError {
    pub graph: String,
    pub what: String,
}

pub fn validate(g: &Graph) -> Result<(), ValidationError> {
    let fail = |what: String| ValidationError {
        graph: g.name.clone(),
        what,
    };
    let order = g
        .topo_order()
        .map_err(|n| fail(format!("cycle through {}", g.describe(n))))?;
    for &id in &order {
        check_node(g, id).map_err(|e| fail(format!("{}: {e}", g.describe(id))))?;
    }
    let inputs: HashSet<NodeId> = g.inputs.iter().copied().collect();
    for id in g.node_ids() {
        if let Op::Input { index } = g.node(id).op {
            if g.inputs.get(index) != Some(&id) {
                return Err(fail(format!(
                    "{} is input #{index} but the graph's input list disagrees",
                    g.describe(id)
                )));
            }
        }
    }
    for id in &inputs {
        if !g.contains(*id) || !matches!(g.node(*id).op, Op::Input { .. }) {
            return Err(fail(
                "graph input list names a node that is not an Input".into(),
            ));
        }
    }
    for o in &g.outputs {
        check_value(g, o.value).map_err(|e| fail(format!("graph output '{}': {e}", o.name)))?;
    }
    for body in &g.bodies {
        validate(body)?;
    }
    Ok(())
}

fn check_value(g: &Graph, v: ValueRef) -> Result<(), String> {
    if !g.contains(v.node) {
        return Err("reads a removed node".into());
    }
    if v.port >= g.node(v.node).outputs.len() {
        return Err(format!(
            "reads output {} of {}, which has {} outputs",
            v.port,
            g.describe(v.node),
            g.node(v.node).outputs.len()
        ));
    }
    Ok(())
}

fn check_node(g: &Graph, id: NodeId) -> Result<(), String> {
    let node = g.node(id);
    let ins = g.inputs_of(id);
    let (min, max) = node.op.arity();
    if ins.len() > max {
        return Err(format!(
            "{} inputs connected, at most {max} allowed",
            ins.len()
        ));
    }
    if let Some(p) = (0..min).find(|&p| ins.get(p).copied().flatten().is_none()) {
        return Err(format!("required input {p} is not connected"));
    }
    // A node has a handful of inputs: sorting beats hashing, which the validator pays after
    // every pass for every node.
    let mut ports = g.incoming_ports(id);
    ports.sort_unstable();
    if let Some(w) = ports.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("input {} has two producers", w[0]));
    }
    for v in ins.iter().flatten() {
        check_value(g, *v)?;
    }
    if node.op.is_layer() {
        if node.outputs.is_empty() {
            return Err("has no outputs".into());
        }
    } else if node.outputs.len() != 1 {
        return Err(format!(
            "has {} outputs, a value node has one",
            node.outputs.len()
        ));
    }
    let ty = |p: usize| ins[p].map(|v| g.value_type(v));
    match &node.op {
        Op::Constant { weight } => {
            let w = g
                .weights
                .get(*weight)
                .ok_or_else(|| format!("refers to missing weight {}", weight.0))?;
            let out = &node.outputs[0].ty;
            if out.dtype != w.dtype || out.shape != w.shape() {
                return Err(format!(
                    "declares {} {} but its weight is {} {}",
                    out.dtype,
                    out.shape,
                    w.dtype,
                    w.shape()
                ));
            }
            if !w.data.is_empty() && w.is_shape_only() {
                return Err(format!(
                    "weight holds {} bytes, {} expected",
                    w.data.len(),
                    w.element_count() * w.dtype.size_bytes()
                ));
            }
        }
        Op::Binary(op) => {
            let (a, b) = (ty(0).expect("arity checked"), ty(1).expect("arity checked"));
            // Pow alone may raise one numeric type to the power of another.
            if a.dtype != b.dtype && *op != BinaryOp::Pow {
                return Err(format!(
                    "operand dtypes differ: {} and {}",
                    a.dtype, b.dtype
                ));
            }
            if !broadcastable(a.shape.dims(), b.shape.dims()) {
                return Err(format!(
                    "shapes {} and {} do not broadcast",
                    a.shape, b.shape
                ));
            }
        }
        Op::Concat { .. } => {
            let ranks: HashSet<usize> = ins
                .iter()
                .flatten()
                .map(|v| g.value_type(*v).shape.rank())
                .collect();
            if ranks.len() > 1 {
                return Err("inputs differ in rank".into());
            }
        }
        Op::Conv(a) => {
            let (x, w) = (ty(0).expect("arity checked"), ty(1).expect("arity checked"));
            if x.shape.rank() != 4 || w.shape.rank() != 4 {
                return Err(format!(
                    "expects 4-D input and weight, got {} and {}",
                    x.shape, w.shape
                ));
            }
            if let (Dim::Known(c), Dim::Known(wc)) = (&x.shape.0[1], &w.shape.0[1]) {
                if *c != wc * a.group {
                    return Err(format!(
                        "input has {c} channels, weight expects {wc} x group {}",
                        a.group
                    ));
                }
            }
        }
        Op::Loop(a) => {
            let body = g
                .bodies
                .get(a.body.0)
                .ok_or_else(|| format!("refers to missing body {}", a.body.0))?;
            let captured = ins.len().saturating_sub(2 + a.carried);
            if body.inputs.len() != 2 + a.carried + captured {
                return Err(format!(
                    "{} carried and {captured} captured values, but the body has {} inputs",
                    a.carried,
                    body.inputs.len()
                ));
            }
            let scans = body
                .outputs
                .len()
                .checked_sub(1 + a.carried)
                .ok_or_else(|| {
                    format!(
                        "{} carried values, but the body has {} outputs",
                        a.carried,
                        body.outputs.len()
                    )
                })?;
            if node.outputs.len() != a.carried + scans {
                return Err(format!(
                    "{} outputs for {} carried values and {scans} scan outputs",
                    node.outputs.len(),
                    a.carried
                ));
            }
        }
        Op::If {
            then_branch,
            else_branch,
        } => {
            for b in [then_branch, else_branch] {
                let body = g
                    .bodies
                    .get(b.0)
                    .ok_or_else(|| format!("refers to missing body {}", b.0))?;
                if body.inputs.len() + 1 != ins.len() || body.outputs.len() != node.outputs.len() {
                    return Err(format!(
                        "a branch with {} inputs and {} outputs for {} captured values and {} \
                         outputs",
                        body.inputs.len(),
                        body.outputs.len(),
                        ins.len() - 1,
                        node.outputs.len()
                    ));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Known dimensions must be equal or 1, aligned from the right.
fn broadcastable(a: &[Dim], b: &[Dim]) -> bool {
    a.iter()
        .rev()
        .zip(b.iter().rev())
        .all(|(x, y)| match (x, y) {
            (Dim::Known(x), Dim::Known(y)) => x == y || *x == 1 || *y == 1,
            _ => true,
        })
}
