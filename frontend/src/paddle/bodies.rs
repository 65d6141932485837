//! Loops and conditionals decided at run time: a `while` whose condition depends on the data
//! becomes an IR Loop, and a `pd_op.if` whose condition does an IR If, each block imported into
//! a body graph of its own. A body reads nothing of the enclosing graph but its inputs, so the
//! enclosing variables a block reads become inputs (captured values), the variables a loop
//! writes that live on after it become loop-carried values, and an array a loop appends to
//! once per iteration (a Python list in dy2static code) becomes a scan output.

use super::control::Array;
use super::proto::{BlockDesc, OpDesc};
use super::{args, attrs::Attrs, Failure, Importer};
use std::collections::HashMap;
use temblor_ir::{
    BodyId, DType, Graph, LoopAttrs, Node, Op, Shape, TensorInfo, TensorType, ValueRef,
};

type Res<T = ()> = Result<T, Failure>;

/// The variables the ops of `block` (and of blocks nested in it) read, in first-read order.
fn reads(imp: &Importer, block: usize) -> Vec<String> {
    fn walk(blocks: &[BlockDesc], b: usize, out: &mut Vec<String>) {
        let Some(block) = blocks.get(b) else {
            return;
        };
        for op in &block.ops {
            for v in op.inputs.iter().flat_map(|p| &p.arguments) {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            for a in &op.attrs {
                if let Some(nested) = a.block_idx {
                    walk(blocks, nested as usize, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&imp.program.blocks, block, &mut out);
    out
}

/// What the import of the enclosing graph keeps while a body is imported in its place.
struct Saved {
    graph: Graph,
    scope: HashMap<String, ValueRef>,
    iteration: Option<ValueRef>,
}

/// Starts a body: the importer builds `name` with one input per entry of `inputs` (a variable
/// and its type), bound in a scope that holds nothing else.
fn enter(imp: &mut Importer, name: String, inputs: &[(String, TensorType)]) -> Saved {
    let saved = Saved {
        graph: std::mem::replace(&mut imp.g, Graph::new(name)),
        scope: std::mem::take(&mut imp.scope),
        iteration: imp.iteration.take(),
    };
    for (var, ty) in inputs {
        let name = imp.names.unique(var);
        let mut node = Node::new(
            name.clone(),
            Op::Input {
                index: imp.g.inputs.len(),
            },
            vec![TensorInfo {
                name,
                ty: ty.clone(),
            }],
        );
        node.provenance = imp.origin(var, "body input");
        let id = imp.g.add_node(node);
        imp.g.inputs.push(id);
        imp.scope.insert(var.clone(), ValueRef::new(id, 0));
    }
    saved
}

/// Ends a body: its outputs are the values of `outputs` (named after them), and it becomes a
/// body of the enclosing graph.
fn leave(imp: &mut Importer, saved: Saved, outputs: &[(String, ValueRef)]) -> BodyId {
    imp.g.outputs = outputs
        .iter()
        .map(|(name, v)| temblor_ir::GraphOutput {
            name: name.clone(),
            value: *v,
        })
        .collect();
    let body = std::mem::replace(&mut imp.g, saved.graph);
    imp.scope = saved.scope;
    imp.iteration = saved.iteration;
    imp.g.add_body(body)
}

/// The enclosing variables among `vars` that a body must be given, with their types.
fn captured(imp: &Importer, vars: &[String], skip: &[String]) -> Vec<(String, ValueRef)> {
    vars.iter()
        .filter(|v| !skip.contains(v) && !imp.arrays.contains_key(v.as_str()))
        .filter_map(|v| imp.scope.get(v).map(|&value| (v.clone(), value)))
        .collect()
}

fn typed(imp: &Importer, values: &[(String, ValueRef)]) -> Vec<(String, TensorType)> {
    values
        .iter()
        .map(|(var, v)| (var.clone(), imp.g.value_type(*v).clone()))
        .collect()
}

/// Adds the control-flow node and binds its outputs to `vars`.
fn node(
    imp: &mut Importer,
    op: Op,
    origin: (&str, &str),
    inputs: &[Option<ValueRef>],
    vars: &[String],
) -> Vec<ValueRef> {
    let name = imp.names.unique(origin.0);
    let outputs = vars
        .iter()
        .map(|v| TensorInfo {
            name: imp.names.unique(v),
            ty: TensorType::new(DType::F32, Shape::default()),
        })
        .collect();
    let mut n = Node::new(name.clone(), op, outputs);
    n.provenance = imp.origin(&name, origin.1);
    let id = imp.g.add_node(n);
    for (port, v) in inputs.iter().enumerate() {
        if let Some(v) = v {
            imp.g.connect(*v, id, port);
        }
    }
    (0..vars.len()).map(|p| ValueRef::new(id, p)).collect()
}

/// The rest of a `while` loop, once its condition depends on the data: an IR Loop with no trip
/// count, the condition variable's value as its condition, and the block as its body, which
/// ends by yielding the condition variable again.
pub(super) fn run_time_loop(imp: &mut Importer, op: &OpDesc, block: usize, cond: &str) -> Res {
    temblor_infer::infer(&mut imp.g)?;
    let cond_value = imp.value(cond)?;
    let carried: Vec<(String, ValueRef)> = args(op, "Out", true)
        .into_iter()
        .filter(|v| v != cond && !imp.arrays.contains_key(v))
        .filter_map(|v| imp.scope.get(&v).map(|&value| (v, value)))
        .collect();
    let carried_vars: Vec<String> = carried.iter().map(|(v, _)| v.clone()).collect();
    let mut skip = carried_vars.clone();
    skip.push(cond.to_string());
    let read = reads(imp, block);
    let captured = captured(imp, &read, &skip);
    let mut appended = Vec::new();
    for name in arrays_written(imp.program, block) {
        let array = imp
            .arrays
            .entry(name.clone())
            .or_insert(Array::Slots(Vec::new()));
        let base = match array {
            Array::Slots(slots) => slots.len(),
            _ => {
                return Err(format!(
                    "array '{name}' is used by two loops decided at run time; not supported"
                )
                .into())
            }
        };
        *array = Array::Appending {
            base,
            index: None,
            value: None,
        };
        appended.push(name);
    }
    let mut inputs = vec![
        (
            format!("{cond}.iteration"),
            TensorType::new(DType::I64, Shape(vec![])),
        ),
        (cond.to_string(), imp.g.value_type(cond_value).clone()),
    ];
    inputs.extend(typed(imp, &carried));
    inputs.extend(typed(imp, &captured));
    let body_name = format!("{}.while_body", imp.g.name);
    let saved = enter(imp, body_name, &inputs);
    imp.iteration = Some(ValueRef::new(imp.g.inputs[0], 0));
    imp.block(block).map_err(Failure::Err)?;
    let mut outputs = vec![(cond.to_string(), imp.value(cond)?)];
    for var in &carried_vars {
        outputs.push((var.clone(), imp.value(var)?));
    }
    let mut scanned = Vec::new();
    for name in &appended {
        match imp.arrays.get(name) {
            Some(Array::Appending { value: Some(v), .. }) => {
                outputs.push((format!("{name}.element"), *v));
                scanned.push(name.clone());
            }
            _ => {
                imp.arrays.insert(name.clone(), Array::Slots(Vec::new()));
            }
        }
    }
    let body = leave(imp, saved, &outputs);
    let mut ins = vec![None, Some(cond_value)];
    ins.extend(carried.iter().map(|(_, v)| Some(*v)));
    ins.extend(captured.iter().map(|(_, v)| Some(*v)));
    let mut out_vars = carried_vars.clone();
    out_vars.extend(scanned.iter().map(|a| format!("{a}.stacked")));
    let op_loop = Op::Loop(LoopAttrs {
        body,
        carried: carried_vars.len(),
    });
    let outs = node(
        imp,
        op_loop,
        (&format!("{cond}.while"), "while"),
        &ins,
        &out_vars,
    );
    for (var, v) in carried_vars.iter().zip(&outs) {
        imp.scope.insert(var.clone(), *v);
    }
    for (k, name) in scanned.iter().enumerate() {
        match imp.arrays.get(name) {
            Some(Array::Appending { base: 0, .. }) => {
                imp.arrays
                    .insert(name.clone(), Array::Stacked(outs[carried_vars.len() + k]));
            }
            _ => {
                return Err(format!(
                    "array '{name}' held elements before a loop decided at run time appended \
                     to it; not supported"
                )
                .into())
            }
        }
    }
    Ok(())
}

/// The arrays `write_to_array` ops of `block` (or of blocks nested in it) write, in order.
fn arrays_written(program: &super::proto::ProgramDesc, block: usize) -> Vec<String> {
    fn walk(program: &super::proto::ProgramDesc, b: usize, out: &mut Vec<String>) {
        let Some(block) = program.blocks.get(b) else {
            return;
        };
        for op in &block.ops {
            if op.r#type == "write_to_array" {
                for a in args(op, "Out", true) {
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
            for nested in op.attrs.iter().filter_map(|a| a.block_idx) {
                walk(program, nested as usize, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(program, block, &mut out);
    out
}

/// The importer's if/else (`pir.if`, from a PIR `pd_op.if`): the branch a static condition
/// takes is imported in place; otherwise both become the branches of an IR If, whose outputs
/// are the `Out` variables each branch assigns.
pub(super) fn if_else(imp: &mut Importer, op: &OpDesc) -> Res {
    let attrs = Attrs(&op.attrs);
    let (then_block, else_block) = (attrs.block("sub_block")?, attrs.block("else_block")?);
    let cond_var = args(op, "Cond", false)
        .into_iter()
        .next()
        .ok_or("input 'Cond' is missing")?;
    let cond = imp.value(&cond_var)?;
    if let Some(t) = imp.static_value(cond)? {
        let taken = match t.data {
            temblor_runtime::TensorData::Bool(ref b) if b.len() == 1 => b[0],
            _ => return Err("the condition is not one boolean".into()),
        };
        let block = if taken { then_block } else { else_block };
        return imp.block(block).map_err(Failure::Err);
    }
    let outs = args(op, "Out", true);
    let mut read = reads(imp, then_block);
    for v in reads(imp, else_block) {
        if !read.contains(&v) {
            read.push(v);
        }
    }
    let captured = captured(imp, &read, &outs);
    let inputs = typed(imp, &captured);
    let mut branches = Vec::new();
    for (block, label) in [(then_block, "then"), (else_block, "else")] {
        let saved = enter(imp, format!("{}.{label}", imp.g.name), &inputs);
        imp.block(block).map_err(Failure::Err)?;
        let mut outputs = Vec::new();
        for var in &outs {
            outputs.push((var.clone(), imp.value(var)?));
        }
        branches.push(leave(imp, saved, &outputs));
    }
    let mut ins = vec![Some(cond)];
    ins.extend(captured.iter().map(|(_, v)| Some(*v)));
    let op_if = Op::If {
        then_branch: branches[0],
        else_branch: branches[1],
    };
    let values = node(imp, op_if, (&format!("{cond_var}.if"), "if"), &ins, &outs);
    for (var, v) in outs.iter().zip(values) {
        imp.scope.insert(var.clone(), v);
    }
    Ok(())
}
