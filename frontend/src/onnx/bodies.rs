//! Loop and If whose control is decided at run time: they import as IR Loop and If nodes whose
//! bodies are graphs of their own (control.rs unrolls those known at import). ONNX bodies read
//! values of the enclosing scopes by name; the IR makes those reads explicit, so each name a
//! body reads and does not define becomes a captured input of the body and of the node.

use super::attrs::Attrs;
use super::proto::{GraphProto, NodeProto};
use super::{display_name, Importer};
use std::collections::HashSet;
use temblor_ir::{
    BodyId, DType, Graph, GraphOutput, LoopAttrs, Node, Op, Provenance, Shape, TensorInfo,
    TensorType, ValueRef,
};

/// The names `g`'s nodes (and the graphs nested in them) read without `g` defining them, in
/// first-read order: the values a body takes from its enclosing scopes.
fn free_names(g: &GraphProto) -> Vec<String> {
    fn walk(g: &GraphProto, outer: &HashSet<String>, out: &mut Vec<String>) {
        let mut defined: HashSet<String> = outer.clone();
        defined.extend(g.input.iter().map(|v| v.name.clone()));
        defined.extend(g.initializer.iter().map(|t| t.name.clone()));
        for n in &g.node {
            for i in n.input.iter().filter(|i| !i.is_empty()) {
                if !defined.contains(i) && !out.contains(i) {
                    out.push(i.clone());
                }
            }
            for a in &n.attribute {
                for inner in a.g.iter().chain(&a.graphs) {
                    walk(inner, &defined, out);
                }
            }
            defined.extend(n.output.iter().cloned());
        }
        for o in &g.output {
            if !defined.contains(&o.name) && !out.contains(&o.name) {
                out.push(o.name.clone());
            }
        }
    }
    let mut out = Vec::new();
    walk(g, &HashSet::new(), &mut out);
    out
}

fn body_graph<'a>(n: &'a NodeProto, attr: &str) -> Result<&'a GraphProto, String> {
    Attrs(&n.attribute)
        .get(attr)
        .and_then(|a| a.g.as_ref())
        .ok_or_else(|| format!("attribute '{attr}' (a graph) is missing"))
}

/// Imports `body` as a graph of its own whose inputs are `inputs` (an ONNX name and type each,
/// in order), and adds it to the enclosing graph. The importer's names stay shared, so names
/// stay unique across the model.
fn import_body(
    imp: &mut Importer,
    name: &str,
    body: &GraphProto,
    inputs: &[(String, TensorType)],
) -> Result<BodyId, String> {
    import_body_with(imp, name, body, inputs, |_, _| Ok(()))
}

/// [`import_body`], with `prelude` adding nodes (and defining names) between the body's inputs
/// and its ONNX nodes.
fn import_body_with(
    imp: &mut Importer,
    name: &str,
    body: &GraphProto,
    inputs: &[(String, TensorType)],
    prelude: impl FnOnce(&mut Importer, &[ValueRef]) -> Result<(), String>,
) -> Result<BodyId, String> {
    let graph = std::mem::replace(&mut imp.g, Graph::new(name));
    let values = std::mem::take(&mut imp.values);
    let result = fill_body(imp, name, body, inputs, prelude);
    let built = std::mem::replace(&mut imp.g, graph);
    imp.values = values;
    result?;
    Ok(imp.g.add_body(built))
}

fn fill_body(
    imp: &mut Importer,
    name: &str,
    body: &GraphProto,
    inputs: &[(String, TensorType)],
    prelude: impl FnOnce(&mut Importer, &[ValueRef]) -> Result<(), String>,
) -> Result<(), String> {
    let mut values = Vec::with_capacity(inputs.len());
    for (onnx_name, ty) in inputs {
        let node_name = imp.names.unique(&format!("{name}/{onnx_name}"));
        let mut node = Node::new(
            node_name.clone(),
            Op::Input {
                index: imp.g.inputs.len(),
            },
            vec![TensorInfo {
                name: onnx_name.clone(),
                ty: ty.clone(),
            }],
        );
        node.provenance = imp.origin(&node_name, "body input");
        let id = imp.g.add_node(node);
        imp.g.inputs.push(id);
        imp.define(onnx_name, ValueRef::new(id, 0))
            .map_err(|e| e.to_string())?;
        values.push(ValueRef::new(id, 0));
    }
    prelude(imp, &values)?;
    for t in &body.initializer {
        let weight = imp.tensors.weight(t)?;
        let node_name = imp.names.unique(&format!("{name}/{}", t.name));
        let prov = imp.origin(&node_name, "initializer");
        imp.add_constant(node_name, &t.name, weight, prov)
            .map_err(|e| e.to_string())?;
    }
    for (k, node) in body.node.iter().enumerate() {
        let display = format!("{name}/{}", display_name(node, k));
        imp.import_node(node, &display)
            .map_err(|e| format!("body node '{display}' ({}): {e}", node.op_type))?;
    }
    imp.g.outputs = body
        .output
        .iter()
        .map(|o| {
            let value = imp.values.get(&o.name).copied().ok_or_else(|| {
                format!(
                    "body output '{}' is produced by no body node or input",
                    o.name
                )
            })?;
            Ok(GraphOutput {
                name: o.name.clone(),
                value,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(())
}

/// The enclosing values `names` refer to, with their types (after typing the graph so far).
fn captured(imp: &mut Importer, names: &[String]) -> Result<Vec<(String, ValueRef)>, String> {
    temblor_infer::infer(&mut imp.g).map_err(|e| e.to_string())?;
    names
        .iter()
        .map(|n| {
            imp.values
                .get(n)
                .map(|&v| (n.clone(), v))
                .ok_or_else(|| format!("a body reads '{n}', which no enclosing scope defines"))
        })
        .collect()
}

fn typed(imp: &Importer, values: &[(String, ValueRef)]) -> Vec<(String, TensorType)> {
    values
        .iter()
        .map(|(n, v)| (n.clone(), imp.g.value_type(*v).clone()))
        .collect()
}

/// Adds the control-flow node: `outputs` ONNX names (empty for an unused one), `count` ports.
fn add(
    imp: &mut Importer,
    n: &NodeProto,
    name: &str,
    prov: Provenance,
    op: Op,
    inputs: &[Option<ValueRef>],
    count: usize,
) -> Result<(), String> {
    let mut outputs: Vec<String> = n.output.iter().take(count).cloned().collect();
    outputs.resize(count, String::new());
    let placeholder = TensorType::new(DType::F32, Shape::default());
    let infos = outputs
        .iter()
        .enumerate()
        .map(|(k, o)| TensorInfo {
            name: if o.is_empty() {
                imp.names.unique(&format!("{name}:{k}"))
            } else {
                o.clone()
            },
            ty: placeholder.clone(),
        })
        .collect();
    let mut node = Node::new(name.to_string(), op, infos);
    node.provenance = prov;
    let id = imp.g.add_node(node);
    for (port, v) in inputs.iter().enumerate() {
        if let Some(v) = v {
            imp.g.connect(*v, id, port);
        }
    }
    for (port, o) in outputs.iter().enumerate() {
        if !o.is_empty() {
            imp.define(o, ValueRef::new(id, port))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// An ONNX Loop as an IR Loop: the same inputs, then the captured values.
pub(super) fn run_time_loop(
    imp: &mut Importer,
    n: &NodeProto,
    name: &str,
    prov: Provenance,
) -> Result<(), String> {
    let body = body_graph(n, "body")?;
    let inputs = imp.node_inputs(n)?;
    let given = |i: usize| inputs.get(i).copied().flatten();
    let carried: Vec<ValueRef> = inputs
        .get(2..)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| format!("loop-carried input {} is omitted", i + 2)))
        .collect::<Result<_, _>>()?;
    if body.input.len() != 2 + carried.len() {
        return Err(format!(
            "the body takes {} inputs, expected the iteration, the condition and {} loop-carried \
             values",
            body.input.len(),
            carried.len()
        ));
    }
    let outputs = body
        .output
        .len()
        .checked_sub(1)
        .ok_or("the body has no outputs")?;
    let free = free_names(body);
    let captured = captured(imp, &free)?;
    let cond_type = match given(1) {
        Some(c) => imp.g.value_type(c).clone(),
        None => TensorType::new(DType::Bool, Shape(vec![])),
    };
    let mut body_inputs = vec![
        (
            body.input[0].name.clone(),
            TensorType::new(DType::I64, Shape(vec![])),
        ),
        (body.input[1].name.clone(), cond_type),
    ];
    for (vi, &v) in body.input[2..].iter().zip(&carried) {
        body_inputs.push((vi.name.clone(), imp.g.value_type(v).clone()));
    }
    body_inputs.extend(typed(imp, &captured));
    let id = import_body(imp, &format!("{name}/body"), body, &body_inputs)?;
    let mut ins = vec![given(0), given(1)];
    ins.extend(carried.iter().map(|&v| Some(v)));
    ins.extend(captured.iter().map(|(_, v)| Some(*v)));
    let op = Op::Loop(LoopAttrs {
        body: id,
        carried: carried.len(),
    });
    add(imp, n, name, prov, op, &ins, outputs)
}

/// An IR node in the graph being built, its one output named uniquely after `base`.
fn node_of(imp: &mut Importer, base: &str, op: Op, inputs: &[ValueRef]) -> ValueRef {
    let name = imp.names.unique(base);
    let mut node = Node::new(
        name.clone(),
        op,
        vec![TensorInfo {
            name,
            ty: TensorType::new(DType::F32, Shape::default()),
        }],
    );
    node.provenance = imp.origin(base, "scan");
    let id = imp.g.add_node(node);
    for (port, v) in inputs.iter().enumerate() {
        imp.g.connect(*v, id, port);
    }
    ValueRef::new(id, 0)
}

fn int64s(
    imp: &mut Importer,
    base: &str,
    values: &[i64],
    dims: Vec<usize>,
) -> Result<ValueRef, String> {
    let name = imp.names.unique(base);
    let prov = imp.origin(&name, "scan");
    let weight = temblor_ir::Weight::from_i64(dims, values);
    let id = imp
        .add_constant(name.clone(), &name, weight, prov)
        .map_err(|e| e.to_string())?;
    Ok(ValueRef::new(id, 0))
}

/// The per-value directions and axes of a Scan (opset 9+), already checked by the caller.
pub(super) struct ScanLayout {
    pub states: usize,
    pub in_axes: Vec<i64>,
    pub in_reverse: Vec<i64>,
    pub out_axes: Vec<i64>,
    pub out_reverse: Vec<i64>,
}

/// A Scan whose trip count (its scan inputs' extent) is known only at run time, as an IR Loop:
/// the trip count is that extent; the body takes the scan inputs whole (captured) and gathers
/// the iteration's slice of each before the Scan body's own nodes; the per-iteration outputs
/// stack on axis 0 and are then reversed and moved to their axes as the Scan says.
pub(super) fn run_time_scan(
    imp: &mut Importer,
    n: &NodeProto,
    name: &str,
    prov: Provenance,
    inputs: &[ValueRef],
    layout: &ScanLayout,
) -> Result<(), String> {
    let body = body_graph(n, "body")?;
    let states = layout.states;
    let xs = &inputs[states..];
    if body.input.len() != inputs.len() {
        return Err(format!(
            "the body takes {} inputs, expected {}",
            body.input.len(),
            inputs.len()
        ));
    }
    temblor_infer::infer(&mut imp.g).map_err(|e| e.to_string())?;
    let rank = |imp: &Importer, v: ValueRef| imp.g.value_type(v).shape.rank() as i64;
    let axes: Vec<i64> = xs
        .iter()
        .zip(&layout.in_axes)
        .map(|(&x, &a)| a.rem_euclid(rank(imp, x).max(1)))
        .collect();
    let trips = node_of(
        imp,
        &format!("{name}_trips"),
        Op::Shape {
            start: axes[0],
            end: Some(axes[0] + 1),
        },
        &[xs[0]],
    );
    let free = free_names(body);
    let captured = captured(imp, &free)?;
    let mut body_inputs = vec![
        (
            format!("{name}_iteration"),
            TensorType::new(DType::I64, Shape(vec![])),
        ),
        (
            format!("{name}_cond"),
            TensorType::new(DType::Bool, Shape(vec![])),
        ),
    ];
    for (vi, &v) in body.input[..states].iter().zip(inputs) {
        body_inputs.push((vi.name.clone(), imp.g.value_type(v).clone()));
    }
    for (k, &x) in xs.iter().enumerate() {
        body_inputs.push((format!("{name}_scanned_{k}"), imp.g.value_type(x).clone()));
    }
    body_inputs.extend(typed(imp, &captured));
    let element_names: Vec<String> = body.input[states..]
        .iter()
        .map(|v| v.name.clone())
        .collect();
    let reverse = layout.in_reverse.clone();
    let body_name = format!("{name}/body");
    let id = import_body_with(imp, &body_name, body, &body_inputs, |imp, ins| {
        let iteration = ins[0];
        for (k, element) in element_names.iter().enumerate() {
            let x = ins[2 + states + k];
            let index = if reverse[k] == 1 {
                // The last slice first: extent - 1 - iteration.
                let extent = node_of(
                    imp,
                    &format!("{name}_extent"),
                    Op::Shape {
                        start: axes[k],
                        end: Some(axes[k] + 1),
                    },
                    &[x],
                );
                let one = int64s(imp, &format!("{name}_one"), &[1], vec![])?;
                let last = node_of(
                    imp,
                    &format!("{name}_last"),
                    Op::Binary(temblor_ir::BinaryOp::Sub),
                    &[extent, one],
                );
                let at = node_of(
                    imp,
                    &format!("{name}_at"),
                    Op::Binary(temblor_ir::BinaryOp::Sub),
                    &[last, iteration],
                );
                let zero_d = int64s(imp, &format!("{name}_scalar"), &[], vec![0])?;
                node_of(
                    imp,
                    &format!("{name}_index"),
                    Op::Reshape { allowzero: false },
                    &[at, zero_d],
                )
            } else {
                iteration
            };
            let slice = node_of(imp, element, Op::Gather { axis: axes[k] }, &[x, index]);
            imp.define(element, slice).map_err(|e| e.to_string())?;
        }
        Ok(())
    })?;
    // The condition output: the body's own condition input, passed through.
    {
        let b = imp.g.body_mut(id);
        let cond = ValueRef::new(b.inputs[1], 0);
        b.outputs.insert(
            0,
            GraphOutput {
                name: format!("{name}_cond_out"),
                value: cond,
            },
        );
    }
    let mut ins = vec![Some(trips), None];
    ins.extend(inputs.iter().map(|&v| Some(v)));
    ins.extend(captured.iter().map(|(_, v)| Some(*v)));
    let outputs = body.output.len();
    let loop_name = imp.names.unique(&format!("{name}_loop"));
    let op_loop = Op::Loop(LoopAttrs {
        body: id,
        carried: states,
    });
    let placeholder = TensorType::new(DType::F32, Shape::default());
    let infos = (0..outputs)
        .map(|k| TensorInfo {
            name: imp.names.unique(&format!("{loop_name}:{k}")),
            ty: placeholder.clone(),
        })
        .collect();
    let mut node = Node::new(loop_name.clone(), op_loop, infos);
    node.provenance = prov;
    let loop_id = imp.g.add_node(node);
    for (port, v) in ins.iter().enumerate() {
        if let Some(v) = v {
            imp.g.connect(*v, loop_id, port);
        }
    }
    for (k, o) in n.output.iter().enumerate().take(outputs) {
        if o.is_empty() {
            continue;
        }
        let mut v = ValueRef::new(loop_id, k);
        if k >= states {
            let j = k - states;
            if layout.out_reverse[j] == 1 {
                let starts = int64s(imp, &format!("{o}_starts"), &[-1], vec![1])?;
                let ends = int64s(imp, &format!("{o}_ends"), &[i64::MIN], vec![1])?;
                let axes0 = int64s(imp, &format!("{o}_axes"), &[0], vec![1])?;
                let steps = int64s(imp, &format!("{o}_steps"), &[-1], vec![1])?;
                v = node_of(
                    imp,
                    &format!("{o}_reversed"),
                    Op::Slice,
                    &[v, starts, ends, axes0, steps],
                );
            }
            let axis = layout.out_axes[j];
            if axis != 0 {
                temblor_infer::infer(&mut imp.g).map_err(|e| e.to_string())?;
                let r = imp.g.value_type(v).shape.rank() as i64;
                let a = axis.rem_euclid(r.max(1)) as usize;
                let mut perm: Vec<usize> = (1..r as usize).collect();
                perm.insert(a, 0);
                v = node_of(imp, &format!("{o}_moved"), Op::Transpose { perm }, &[v]);
            }
        }
        imp.define(o, v).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// An ONNX If as an IR If: the condition, then the values either branch reads from the
/// enclosing scopes, which become both branches' inputs.
pub(super) fn run_time_if(
    imp: &mut Importer,
    n: &NodeProto,
    name: &str,
    prov: Provenance,
    cond: ValueRef,
) -> Result<(), String> {
    let then = body_graph(n, "then_branch")?;
    let otherwise = body_graph(n, "else_branch")?;
    if then.output.len() != otherwise.output.len() {
        return Err(format!(
            "the branches have {} and {} outputs",
            then.output.len(),
            otherwise.output.len()
        ));
    }
    let mut free = free_names(then);
    for f in free_names(otherwise) {
        if !free.contains(&f) {
            free.push(f);
        }
    }
    let captured = captured(imp, &free)?;
    let inputs = typed(imp, &captured);
    let then_id = import_body(imp, &format!("{name}/then"), then, &inputs)?;
    let else_id = import_body(imp, &format!("{name}/else"), otherwise, &inputs)?;
    let mut ins = vec![Some(cond)];
    ins.extend(captured.iter().map(|(_, v)| Some(*v)));
    let op = Op::If {
        then_branch: then_id,
        else_branch: else_id,
    };
    add(imp, n, name, prov, op, &ins, then.output.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::{GraphProto, NodeProto, ValueInfoProto};

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn node(inputs: &[&str], outputs: &[&str]) -> NodeProto {
        NodeProto {
            input: names(inputs),
            output: names(outputs),
            op_type: "Add".into(),
            ..Default::default()
        }
    }

    /// A body's own inputs and values are not free; what it reads from outside is, once.
    #[test]
    fn free_names_are_the_reads_of_enclosing_values() {
        let g = GraphProto {
            input: vec![ValueInfoProto {
                name: "i".into(),
                ..Default::default()
            }],
            node: vec![node(&["i", "outer"], &["a"]), node(&["a", "outer"], &["b"])],
            ..Default::default()
        };
        assert_eq!(free_names(&g), names(&["outer"]));
    }
}
