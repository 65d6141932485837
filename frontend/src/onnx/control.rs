//! Control flow, unrolled at import: Scan, and If and Loop whose control is known at import.
//! A body subgraph is imported once per pass as ordinary nodes, its value names prefixed per
//! pass (names of the enclosing scopes stay visible, as ONNX scoping says) and its inputs bound
//! to the current state and scan elements; nothing of the loop survives into the IR, so every
//! later stage sees plain ops. The Paddle frontend unrolls `while` the same way. What is decided
//! at run time stays a Loop or an If (bodies.rs).
//!
//! Scan: scan.rs.
//! If (https://onnx.ai/onnx/operators/onnx__If.html): when the condition folds to a constant
//! (`temblor_infer::evaluate`), only the taken branch is imported; otherwise the If stays one,
//! with both branches as bodies.
//! Loop (https://onnx.ai/onnx/operators/onnx__Loop.html): unrolled when the trip count M and the
//! condition (before the first pass and after each) fold to constants, scan outputs stacked on
//! axis 0; a trip count or first condition decided at run time keeps it a Loop. A condition
//! that turns dynamic after some passes, Scan with `sequence_lens` and loops over sequences are
//! refused.

mod scan;

use super::attrs::Attrs;
use super::proto::{GraphProto, NodeProto};
use super::{display_name, Importer};
use bytes::Bytes;
use std::collections::HashMap;
use temblor_ir::{DType, Op, Provenance, ValueRef, Weight};
use temblor_runtime::TensorData;

/// The op types this file unrolls.
pub(super) const OPS: &[&str] = &["Scan", "If", "Loop"];

/// The inputs that must be constants for the unrolling: If's condition, Loop's trip count and
/// condition (`Family::constant_inputs` says how `--bind-inputs` uses the list).
pub(super) const CONSTANT_INPUTS: &[(&str, &[usize])] = &[("If", &[0]), ("Loop", &[0, 1])];

/// A loop that runs longer than this is not a structural loop to unroll (the Paddle frontend's
/// bound for `while`): the unrolled graph would grow past what a person can inspect.
const MAX_TRIPS: usize = 1024;

/// Imports the control-flow node `n` (IR name `name`) as the ops of its unrolled body.
pub(super) fn unroll(
    imp: &mut Importer,
    n: &NodeProto,
    name: &str,
    prov: Provenance,
) -> Result<(), String> {
    let at = Site { n, name, prov };
    match n.op_type.as_str() {
        "Scan" => scan::scan(imp, &at),
        "If" => branch(imp, &at),
        _ => repeat(imp, &at),
    }
}

/// The control-flow node being unrolled: every node it adds carries its provenance.
struct Site<'a> {
    n: &'a NodeProto,
    name: &'a str,
    prov: Provenance,
}

impl Site<'_> {
    /// Adds one IR node of the unrolling; its single output is named like the node.
    fn add(
        &self,
        imp: &mut Importer,
        base: &str,
        op: Op,
        inputs: &[ValueRef],
    ) -> Result<ValueRef, String> {
        let name = imp.names.unique(base);
        let inputs: Vec<Option<ValueRef>> = inputs.iter().copied().map(Some).collect();
        let id = imp.add_node(
            self.n,
            name.clone(),
            self.prov.clone(),
            op,
            &inputs,
            &[&name],
        )?;
        Ok(ValueRef::new(id, 0))
    }

    fn constant(&self, imp: &mut Importer, base: &str, weight: Weight) -> Result<ValueRef, String> {
        let name = imp.names.unique(base);
        let id = imp
            .add_constant(name.clone(), &name, weight, self.prov.clone())
            .map_err(|e| e.to_string())?;
        Ok(ValueRef::new(id, 0))
    }

    /// Stacks `parts` along a new `axis`; the value is named after `output`.
    fn stack(
        &self,
        imp: &mut Importer,
        parts: &[ValueRef],
        axis: i64,
        output: &str,
    ) -> Result<ValueRef, String> {
        if parts.is_empty() {
            return Err(format!(
                "scan output '{output}' would be empty: the loop runs no passes"
            ));
        }
        let axes = self.constant(
            imp,
            &format!("{}_axes", self.name),
            Weight::from_i64(vec![1], &[axis]),
        )?;
        let mut rows = Vec::with_capacity(parts.len());
        for &p in parts {
            rows.push(self.add(imp, &format!("{output}_row"), Op::Unsqueeze, &[p, axes])?);
        }
        // The value is named after the output but not defined as it: the caller binds it.
        let name = imp.names.unique(output);
        let rows: Vec<Option<ValueRef>> = rows.into_iter().map(Some).collect();
        let id = imp.add_node(
            self.n,
            name,
            self.prov.clone(),
            Op::Concat { axis },
            &rows,
            &[""],
        )?;
        imp.g.node_mut(id).outputs[0].name = output.to_string();
        Ok(ValueRef::new(id, 0))
    }

    /// Binds the node's outputs, in order, to `values` (an empty name is an unused output).
    fn bind(&self, imp: &mut Importer, values: &[ValueRef]) -> Result<(), String> {
        for (o, &v) in self.n.output.iter().zip(values) {
            if !o.is_empty() {
                imp.define(o, v).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

/// A body subgraph, imported pass by pass. Its initializers are imported once, shared by every
/// pass.
struct Body<'g> {
    graph: &'g GraphProto,
    /// Names local to the body that every pass shares: initializer -> its constant's value.
    shared: HashMap<String, String>,
}

impl<'g> Body<'g> {
    fn new(imp: &mut Importer, at: &Site<'g>, attr: &str) -> Result<Body<'g>, String> {
        let graph = Attrs(&at.n.attribute)
            .get(attr)
            .and_then(|a| a.g.as_ref())
            .ok_or_else(|| format!("attribute '{attr}' (a graph) is missing"))?;
        let mut shared = HashMap::new();
        for t in &graph.initializer {
            let weight = imp.tensors.weight(t)?;
            let value = at.constant(imp, &format!("{}/{}", at.name, t.name), weight)?;
            let value_name = imp.g.node(value.node).outputs[0].name.clone();
            shared.insert(t.name.clone(), value_name);
        }
        Ok(Body { graph, shared })
    }

    /// Imports one pass: binds the body's inputs to `inputs`, maps its nodes with their names
    /// under `prefix`, and returns the values of its outputs.
    fn pass(
        &self,
        imp: &mut Importer,
        prefix: &str,
        inputs: &[ValueRef],
    ) -> Result<Vec<ValueRef>, String> {
        let graph = self.graph;
        if graph.input.len() != inputs.len() {
            return Err(format!(
                "the body '{}' takes {} inputs, expected {}",
                graph.name,
                graph.input.len(),
                inputs.len()
            ));
        }
        let mut local = self.shared.clone();
        for (vi, &v) in graph.input.iter().zip(inputs) {
            let name = format!("{prefix}{}", vi.name);
            imp.define(&name, v).map_err(|e| e.to_string())?;
            local.insert(vi.name.clone(), name);
        }
        for o in graph.node.iter().flat_map(|n| &n.output) {
            if !o.is_empty() {
                local.insert(o.clone(), format!("{prefix}{o}"));
            }
        }
        for (k, node) in graph.node.iter().enumerate() {
            let display = format!("{prefix}{}", display_name(node, k));
            let mut copy = node.clone();
            rename(&mut copy, &local);
            copy.name = display.clone();
            imp.import_node(&copy, &display)
                .map_err(|e| format!("body node '{display}' ({}): {e}", node.op_type))?;
        }
        graph
            .output
            .iter()
            .map(|o| {
                let name = local.get(&o.name).unwrap_or(&o.name);
                imp.values.get(name).copied().ok_or_else(|| {
                    format!(
                        "body output '{}' is produced by no body node, input or outer value",
                        o.name
                    )
                })
            })
            .collect()
    }
}

/// Renames the values a node reads and writes, and those its nested subgraphs read from the
/// enclosing body. ONNX names are single-assignment across scopes, so a nested graph's own
/// names never collide with the body's and are left alone.
fn rename(n: &mut NodeProto, local: &HashMap<String, String>) {
    for v in n.input.iter_mut().chain(n.output.iter_mut()) {
        if let Some(r) = local.get(v.as_str()) {
            v.clone_from(r);
        }
    }
    for a in &mut n.attribute {
        for g in a.g.iter_mut().chain(a.graphs.iter_mut()) {
            for inner in &mut g.node {
                rename(inner, local);
            }
            for o in &mut g.output {
                if let Some(r) = local.get(&o.name) {
                    o.name.clone_from(r);
                }
            }
        }
    }
}

/// Every input of the node, which must all be given.
fn required_inputs(imp: &Importer, n: &NodeProto) -> Result<Vec<ValueRef>, String> {
    imp.node_inputs(n)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| format!("input {i} is omitted; every input is required")))
        .collect()
}

/// If: imports the branch its constant condition takes; a condition decided at run time makes
/// an IR If (bodies.rs).
fn branch(imp: &mut Importer, at: &Site) -> Result<(), String> {
    let Some(&cond) = required_inputs(imp, at.n)?.first() else {
        return Err("If has no condition input".into());
    };
    let Some(taken) = static_bool(imp, cond)? else {
        return super::bodies::run_time_if(imp, at.n, at.name, at.prov.clone(), cond);
    };
    let (attr, which) = if taken {
        ("then_branch", "then")
    } else {
        ("else_branch", "else")
    };
    let body = Body::new(imp, at, attr)?;
    let outs = body.pass(imp, &format!("{}/{which}/", at.name), &[])?;
    at.bind(imp, &outs)
}

/// Loop: unrolled while its trip count and condition are known at import; one whose trip count
/// or first condition is decided at run time makes an IR Loop (bodies.rs).
fn repeat(imp: &mut Importer, at: &Site) -> Result<(), String> {
    let inputs = imp.node_inputs(at.n)?;
    let given = |i: usize| inputs.get(i).copied().flatten();
    let run_time =
        |imp: &mut Importer| super::bodies::run_time_loop(imp, at.n, at.name, at.prov.clone());
    let limit = match given(0) {
        Some(v) => match static_count(imp, v)? {
            Some(m) => Some(m),
            None => return run_time(imp),
        },
        None => None,
    };
    if let Some(c) = given(1) {
        if static_bool(imp, c)?.is_none() {
            return run_time(imp);
        }
    }
    // Without a condition input the body's condition output is ignored (a `for` loop).
    let mut cond = given(1);
    if limit.is_none() && cond.is_none() {
        return Err("the Loop has neither a trip count nor a condition: it never ends".into());
    }
    let mut carried = inputs[2.min(inputs.len())..]
        .iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| format!("loop-carried input {} is omitted", i + 2)))
        .collect::<Result<Vec<_>, String>>()?;
    let body = Body::new(imp, at, "body")?;
    let states = carried.len();
    if body.graph.output.len() < 1 + states {
        return Err(format!(
            "the body has {} outputs, expected the condition and {states} loop-carried values",
            body.graph.output.len()
        ));
    }
    let mut rows: Vec<Vec<ValueRef>> = vec![Vec::new(); body.graph.output.len() - 1 - states];
    let always = Weight {
        dtype: DType::Bool,
        dims: vec![],
        data: Bytes::from_static(&[1]),
    };
    let always = at.constant(imp, &format!("{}_cond", at.name), always)?;
    for t in 0.. {
        if limit.is_some_and(|m| t >= m) {
            break;
        }
        if let Some(c) = cond {
            let go = static_bool(imp, c)?.ok_or_else(|| {
                format!(
                    "the condition after pass {t} is computed at run time; only a Loop whose \
                     condition is known at import is supported"
                )
            })?;
            if !go {
                break;
            }
        }
        if t == MAX_TRIPS {
            return Err(format!(
                "the Loop runs more than {MAX_TRIPS} passes; unrolling stops there"
            ));
        }
        let iteration = at.constant(
            imp,
            &format!("{}_iteration{t}", at.name),
            Weight::from_i64(vec![], &[t as i64]),
        )?;
        let mut bound = vec![iteration, cond.unwrap_or(always)];
        bound.extend_from_slice(&carried);
        let outs = body.pass(imp, &format!("{}/{t}/", at.name), &bound)?;
        if cond.is_some() {
            cond = Some(outs[0]);
        }
        carried = outs[1..=states].to_vec();
        for (row, &y) in rows.iter_mut().zip(&outs[1 + states..]) {
            row.push(y);
        }
    }
    at.bind(imp, &carried)?;
    for (j, parts) in rows.into_iter().enumerate() {
        if let Some(output) = at.n.output.get(states + j).filter(|o| !o.is_empty()) {
            let v = at.stack(imp, &parts, 0, output)?;
            imp.define(output, v).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// The value of `v` when the constant evaluator can compute it from the graph built so far.
fn static_value(
    imp: &mut Importer,
    v: ValueRef,
) -> Result<Option<temblor_runtime::Tensor>, String> {
    temblor_infer::infer(&mut imp.g).map_err(|e| e.to_string())?;
    Ok(temblor_infer::evaluate::static_value(&imp.g, v))
}

fn static_bool(imp: &mut Importer, v: ValueRef) -> Result<Option<bool>, String> {
    let Some(t) = static_value(imp, v)? else {
        return Ok(None);
    };
    match t.data {
        TensorData::Bool(ref b) if b.len() == 1 => Ok(Some(b[0])),
        _ => Err("the condition is not one boolean".into()),
    }
}

fn static_count(imp: &mut Importer, v: ValueRef) -> Result<Option<usize>, String> {
    let Some(t) = static_value(imp, v)? else {
        return Ok(None);
    };
    match t.as_i64() {
        Some(&[m]) => Ok(Some(usize::try_from(m).unwrap_or(0))),
        _ => Err("the trip count is not one int64".into()),
    }
}
