//! The compile graph as ONNX. `compile.onnx` is TensorRT's build input: strongly typed (the
//! precision plan's Casts, f16 constants and QuantizeLinear/DequantizeLinear written as they
//! are), ops_lib ops as plugin nodes. `compile.ort.onnx` holds standard ONNX ops only, so
//! onnxruntime runs it with the package's inputs and output names. Weights go to a side file
//! (`<model>.data`) as external data.
//!
//! The onnxruntime file writes float16 and bfloat16 values as float32 rounded to half precision:
//! each node that makes one computes it in float32 and a `Cast` to its half type and back rounds
//! it,
//! which is what the compile graph means (an op with float16 inputs computes in float32 and
//! rounds its outputs). Written as float16, onnxruntime's CPU provider would run those nodes in
//! float32 through casts it inserts and then drop every rounding cast next to its own as a
//! no-op pair (`RemoveDuplicateCastTransformer`), computing the fp16 plan in fp32.

#![forbid(unsafe_code)]

mod attrs;
mod deform;
mod emit;
mod fused;
mod library;
mod lower;
mod model;
mod ops;
mod sub;
pub mod trt_check;

pub use library::{plugin, Plugin};

use emit::Emitter;
use lower::Lower;
use model::ExternalData;
use prost::Message;
use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use temblor_frontend::onnx_proto::{GraphProto, ModelProto};
use temblor_ir::{DType, Error, Graph, NodeId, Op, Result, ValueRef};

/// Which consumer the ONNX file is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `compile.onnx`: ops_lib ops as TensorRT plugin nodes.
    TensorRt,
    /// `compile.ort.onnx`: standard ONNX ops only.
    OnnxRuntime,
}

impl Target {
    pub fn file_name(self) -> &'static str {
        match self {
            Target::TensorRt => "compile.onnx",
            Target::OnnxRuntime => "compile.ort.onnx",
        }
    }
}

/// What [`write`] wrote.
#[derive(Clone, Debug)]
pub struct Written {
    pub path: PathBuf,
    /// The external data file beside it.
    pub data: PathBuf,
    pub nodes: usize,
    pub initializers: usize,
    /// Plugin names of the plugin nodes, sorted (TensorRT target only).
    pub plugins: Vec<String>,
}

/// Writes `graph` as `dir/<target file>` and its weights as `dir/<target file>.data`. Both
/// files appear whole or not at all.
pub fn write(graph: &Graph, dir: &Path, target: Target) -> Result<Written> {
    let path = dir.join(target.file_name());
    let data_name = format!("{}.data", target.file_name());
    let data = dir.join(&data_name);
    let io = |what: &Path| {
        let what = what.display().to_string();
        move |e: std::io::Error| Error::internal(format!("cannot write {what}: {e}"))
    };
    let data_tmp = temp_file(dir).map_err(io(&data))?;
    let mut ext = ExternalData::new(BufWriter::new(data_tmp), &data_name);
    let (proto, summary) = build(graph, target, &mut ext)?;
    let data_tmp = ext
        .finish()
        .map_err(io(&data))?
        .into_inner()
        .map_err(|e| io(&data)(e.into_error()))?;
    let mut model_tmp = temp_file(dir).map_err(io(&path))?;
    model_tmp
        .write_all(&proto.encode_to_vec())
        .map_err(io(&path))?;
    data_tmp.persist(&data).map_err(|e| io(&data)(e.error))?;
    model_tmp.persist(&path).map_err(|e| io(&path)(e.error))?;
    Ok(Written {
        path,
        data,
        nodes: summary.nodes,
        initializers: summary.initializers,
        plugins: summary.plugins,
    })
}

/// A file in `dir` that becomes a written file on `persist`, with the mode a file created
/// directly would have (tempfile's default is owner-only).
fn temp_file(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    b.prefix(".export");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o666));
    }
    b.tempfile_in(dir)
}

/// How `compile.ort.onnx` differs from `compile.onnx` for `g` (which has no plugin node, or
/// the onnxruntime file is not written): in how float16 values are held, and in matrix_nms's
/// linear decay. Empty when the two files hold the same graph.
pub fn differences(g: &Graph) -> Vec<String> {
    let mut differ = Vec::new();
    for half in [DType::F16, DType::BF16] {
        let count = g
            .node_ids()
            .flat_map(|id| &g.node(id).outputs)
            .filter(|o| o.ty.dtype == half)
            .count();
        if count > 0 {
            differ.push(format!(
                "{count} {half} values are float32 rounded to {half} (a Cast to {half} and back \
                 after the node that makes each), because onnxruntime's CPU provider would drop \
                 the rounding and compute the plan in float32"
            ));
        }
    }
    let linear_decay = g.node_ids().filter_map(|id| match &g.node(id).op {
        Op::Lib(temblor_ir::LibOp::MatrixNms(a)) if !a.use_gaussian => Some(&g.node(id).name),
        _ => None,
    });
    for name in linear_decay {
        differ.push(format!(
            "{name} (matrix_nms): the linear decay divides in double in compile.ort.onnx, as \
             Paddle's kernel does, and in float in compile.onnx (TensorRT has no double)"
        ));
    }
    differ
}

/// The command that builds a TensorRT engine from `dir/compile.onnx`; it loads the plugin
/// library when the model has plugin nodes.
pub fn trtexec_command(dir: &Path) -> String {
    let onnx = dir.join(Target::TensorRt.file_name());
    let mut cmd = format!(
        "trtexec --onnx={} --saveEngine={} --stronglyTyped --skipInference",
        onnx.display(),
        dir.join("compile.engine").display()
    );
    let imports_plugins = std::fs::read(&onnx)
        .ok()
        .and_then(|b| ModelProto::decode(&b[..]).ok())
        .is_none_or(|m| m.opset_import.iter().any(|o| o.domain == library::DOMAIN));
    if imports_plugins {
        cmd.push_str(&format!(" --staticPlugins={}", library::LIBRARY));
    }
    cmd
}

struct Summary {
    nodes: usize,
    initializers: usize,
    plugins: Vec<String>,
}

fn build<W: Write>(
    g: &Graph,
    target: Target,
    ext: &mut ExternalData<W>,
) -> Result<(ModelProto, Summary)> {
    if target == Target::OnnxRuntime {
        refuse_half_io(g)?;
    }
    let mut em = Emitter::default();
    let graph = graph_proto(g, target, ext, &mut em, &Scope::Model)?;
    let summary = Summary {
        nodes: graph.node.len(),
        initializers: graph.initializer.len(),
        plugins: em.plugins.iter().cloned().collect(),
    };
    let domains: Vec<String> = em.domains.into_iter().collect();
    let bf16 = target == Target::TensorRt
        && g.node_ids()
            .flat_map(|id| &g.node(id).outputs)
            .any(|o| o.ty.dtype == DType::BF16);
    Ok((model::model(graph, &domains, bf16), summary))
}

/// Which graph [`graph_proto`] writes: the model's, whose inputs and outputs keep the package's
/// names, or a body, whose inputs at the positions `captured` lists are values of the enclosing
/// graph (ONNX bodies read those by name, not as inputs), by their names there.
enum Scope<'a> {
    Model,
    Body { captured: &'a [(usize, String)] },
}

fn graph_proto<W: Write>(
    g: &Graph,
    target: Target,
    ext: &mut ExternalData<W>,
    em: &mut Emitter,
    scope: &Scope,
) -> Result<GraphProto> {
    let order = g
        .topo_order()
        .map_err(|n| Error::internal(format!("cycle through {}", g.describe(n))))?;
    let (names, identities) = match scope {
        Scope::Model => name_values(g, &order, em)?,
        Scope::Body { captured } => name_body_values(g, &order, em, captured),
    };
    let io = |e: std::io::Error| Error::internal(format!("cannot write the ONNX weights: {e}"));
    let mut initializer = Vec::new();
    for &id in &order {
        let node = g.node(id);
        match node.op {
            Op::Input { .. } => {}
            Op::Constant { .. } if !g.is_used(ValueRef::new(id, 0)) => {}
            Op::Constant { weight } => {
                let w = g
                    .weights
                    .get(weight)
                    .ok_or_else(|| Error::internal(format!("{} has no weight", g.describe(id))))?;
                if w.is_shape_only() {
                    return Err(Error::bad_input(format!(
                        "{}: the weight's values are missing (a model given without its \
                         parameters), so it cannot be written as ONNX",
                        g.describe(id)
                    )));
                }
                let name = &names[&ValueRef::new(id, 0)];
                // Weight ids are a graph's own: only the model's may share external data.
                let shared = matches!(scope, Scope::Model).then_some(weight);
                let t = match (target, w.dtype) {
                    (Target::OnnxRuntime, DType::F16 | DType::BF16) => {
                        ext.initializer(name, None, &model::widen_half(w))
                    }
                    _ => ext.initializer(name, shared, w),
                };
                initializer.push(t.map_err(io)?);
            }
            Op::Loop(_) | Op::If { .. } => control_node(g, id, target, ext, em, &names)?,
            _ => {
                let inputs = g.inputs_of(id);
                let ports = 0..node.outputs.len();
                let outs: Vec<String> = ports
                    .clone()
                    .map(|p| names[&ValueRef::new(id, p)].clone())
                    .collect();
                // The half type each output is rounded to, in the onnxruntime file.
                let rounded: Vec<Option<DType>> = node
                    .outputs
                    .iter()
                    .map(|o| {
                        let half = o.ty.dtype.is_half();
                        (target == Target::OnnxRuntime && half).then_some(o.ty.dtype)
                    })
                    .collect();
                let wide: Vec<String> = outs
                    .iter()
                    .zip(&rounded)
                    .map(|(o, r)| {
                        if r.is_some() {
                            em.value(&format!("{o}.wide"))
                        } else {
                            o.clone()
                        }
                    })
                    .collect();
                let cx = Lower {
                    node,
                    ins: inputs
                        .iter()
                        .map(|v| v.map_or(String::new(), |v| names[&v].clone()))
                        .collect(),
                    in_types: inputs.iter().map(|v| v.map(|v| g.value_type(v))).collect(),
                    outs: wide.clone(),
                    used: ports.map(|p| g.is_used(ValueRef::new(id, p))).collect(),
                    target,
                };
                ops::lower(em, &cx).map_err(|e| {
                    Error::bad_input(format!("cannot write {} as ONNX: {e}", g.describe(id)))
                })?;
                for ((w, out), half) in wide.iter().zip(&outs).zip(&rounded) {
                    if let Some(half) = half {
                        round_half(em, w, out, *half);
                    }
                }
            }
        }
    }
    let mut output_names: Vec<String> = g
        .outputs
        .iter()
        .map(|o| names.get(&o.value).cloned().unwrap_or_default())
        .collect();
    for (k, value, output) in identities {
        em.node(
            "Identity",
            &output,
            vec![names[&value].clone()],
            vec![output.clone()],
            vec![],
        );
        output_names[k] = output;
    }
    for (name, w) in std::mem::take(&mut em.constants) {
        initializer.push(ext.initializer(&name, None, &w).map_err(io)?);
    }
    let captured: &[(usize, String)] = match scope {
        Scope::Model => &[],
        Scope::Body { captured } => captured,
    };
    let input = g
        .inputs
        .iter()
        .enumerate()
        .filter(|(k, _)| !captured.iter().any(|(c, _)| c == k))
        .map(|(_, &id)| model::value_info(&names[&ValueRef::new(id, 0)], &g.node(id).outputs[0].ty))
        .collect();
    let output = g
        .outputs
        .iter()
        .zip(&output_names)
        .map(|(o, name)| model::value_info(name, g.value_type(o.value)))
        .collect();
    Ok(GraphProto {
        node: std::mem::take(&mut em.nodes),
        name: g.name.clone(),
        initializer,
        input,
        output,
        ..GraphProto::default()
    })
}

/// A Loop or If: the ONNX node with its bodies as graph attributes. The IR's captured inputs
/// are read by name inside the ONNX bodies, so the node lists only ONNX's own inputs.
fn control_node<W: Write>(
    g: &Graph,
    id: NodeId,
    target: Target,
    ext: &mut ExternalData<W>,
    em: &mut Emitter,
    names: &HashMap<ValueRef, String>,
) -> Result<()> {
    let node = g.node(id);
    let ins = g.inputs_of(id);
    let name_of = |v: Option<ValueRef>| v.map_or(String::new(), |v| names[&v].clone());
    let outs: Vec<String> = (0..node.outputs.len())
        .map(|p| names[&ValueRef::new(id, p)].clone())
        .collect();
    let mut body = |b: temblor_ir::BodyId, first_captured: usize, em: &mut Emitter| {
        let captured: Vec<(usize, String)> = ins
            .iter()
            .enumerate()
            .skip(first_captured)
            .map(|(port, v)| (port - first_captured + body_offset(node), name_of(*v)))
            .collect();
        let mut inner = em.nested();
        let proto = graph_proto(
            g.body(b),
            target,
            ext,
            &mut inner,
            &Scope::Body {
                captured: &captured,
            },
        );
        em.absorb(inner);
        proto
    };
    match &node.op {
        Op::Loop(a) => {
            let graph = body(a.body, 2 + a.carried, em)?;
            let inputs = ins
                .iter()
                .take(2 + a.carried)
                .map(|v| name_of(*v))
                .collect();
            em.node(
                "Loop",
                &node.name,
                inputs,
                outs,
                vec![attrs::graph("body", graph)],
            );
        }
        Op::If {
            then_branch,
            else_branch,
        } => {
            let then = body(*then_branch, 1, em)?;
            let otherwise = body(*else_branch, 1, em)?;
            em.node(
                "If",
                &node.name,
                vec![name_of(ins.first().copied().flatten())],
                outs,
                vec![
                    attrs::graph("then_branch", then),
                    attrs::graph("else_branch", otherwise),
                ],
            );
        }
        _ => {
            return Err(Error::internal(format!(
                "{} is not control flow",
                g.describe(id)
            )))
        }
    }
    Ok(())
}

/// Where a control-flow node's captured inputs start among its bodies' inputs: after the
/// iteration, the condition and the carried values of a Loop; at 0 for an If's branches.
fn body_offset(node: &temblor_ir::Node) -> usize {
    match &node.op {
        Op::Loop(a) => 2 + a.carried,
        _ => 0,
    }
}

/// `out = float32(half(wide))` (`half` float16 or bfloat16): two explicit Casts, which
/// onnxruntime keeps (it drops only the casts it inserts itself).
fn round_half(em: &mut Emitter, wide: &str, out: &str, half_type: DType) {
    let half = em.value(&format!("{out}.half"));
    let code = |d: DType| attrs::int("to", model::dtype_code(d) as i64);
    em.node(
        "Cast",
        &format!("{out}.to_half"),
        vec![wide.into()],
        vec![half.clone()],
        vec![code(half_type)],
    );
    em.node(
        "Cast",
        &format!("{out}.from_half"),
        vec![half],
        vec![out.into()],
        vec![code(DType::F32)],
    );
}

/// The onnxruntime file widens float16 and bfloat16 values inside the graph only; its inputs and
/// outputs keep the package's types.
fn refuse_half_io(g: &Graph) -> Result<()> {
    let inputs = g.inputs.iter().map(|&id| &g.node(id).outputs[0]);
    let inputs = inputs.map(|t| (&t.name, t.ty.dtype));
    let outputs = g
        .outputs
        .iter()
        .map(|o| (&o.name, g.value_type(o.value).dtype));
    match inputs.chain(outputs).find(|(_, d)| d.is_half()) {
        Some((name, d)) => Err(Error::bad_input(format!(
            "graph input or output '{name}' is {d}; the onnxruntime export supports {d} only \
             inside the graph"
        ))),
        None => Ok(()),
    }
}

/// Graph outputs written through an Identity: (output position, value, output name).
type Identities = Vec<(usize, ValueRef, String)>;

/// ONNX names of every value: graph inputs and outputs keep the package's names; other values
/// their tensor names, made unique. A graph output that is a graph input, a constant, or a value
/// another output already names is written through an Identity.
fn name_values(
    g: &Graph,
    order: &[NodeId],
    em: &mut Emitter,
) -> Result<(HashMap<ValueRef, String>, Identities)> {
    let mut names = HashMap::new();
    let duplicate = |what: &str| {
        Error::bad_input(format!(
            "graph {}: two graph inputs or outputs are named '{what}'",
            g.name
        ))
    };
    for &id in &g.inputs {
        let name = &g.node(id).outputs[0].name;
        if !em.values.reserve(name) {
            return Err(duplicate(name));
        }
        names.insert(ValueRef::new(id, 0), name.clone());
    }
    let mut identities = Vec::new();
    for (k, o) in g.outputs.iter().enumerate() {
        if !em.values.reserve(&o.name) {
            return Err(duplicate(&o.name));
        }
        if g.node(o.value.node).op.is_layer() && !names.contains_key(&o.value) {
            names.insert(o.value, o.name.clone());
        } else {
            identities.push((k, o.value, o.name.clone()));
        }
    }
    for &id in order {
        for (port, info) in g.node(id).outputs.iter().enumerate() {
            let v = ValueRef::new(id, port);
            names
                .entry(v)
                .or_insert_with(|| em.values.claim(&info.name));
        }
    }
    Ok((names, identities))
}

/// ONNX names of a body's values, unique across the model: captured inputs take the enclosing
/// value's name, every other value a fresh one. A body output that is an input, a constant or
/// an earlier output's value goes through an Identity, so each output is a value of its own.
fn name_body_values(
    g: &Graph,
    order: &[NodeId],
    em: &mut Emitter,
    captured: &[(usize, String)],
) -> (HashMap<ValueRef, String>, Identities) {
    let mut names = HashMap::new();
    for (k, &id) in g.inputs.iter().enumerate() {
        let name = match captured.iter().find(|(c, _)| *c == k) {
            Some((_, outer)) => outer.clone(),
            None => em.values.claim(&g.node(id).outputs[0].name),
        };
        names.insert(ValueRef::new(id, 0), name);
    }
    for &id in order {
        for (port, info) in g.node(id).outputs.iter().enumerate() {
            names
                .entry(ValueRef::new(id, port))
                .or_insert_with(|| em.values.claim(&info.name));
        }
    }
    let mut identities = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (k, o) in g.outputs.iter().enumerate() {
        if !g.node(o.value.node).op.is_layer() || !seen.insert(o.value) {
            identities.push((k, o.value, em.values.claim(&o.name)));
        }
    }
    (names, identities)
}
