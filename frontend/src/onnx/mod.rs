//! ONNX frontend (opsets 11 to 17 of the default domain). The import reads top to bottom:
//! read and decode the file, check its opsets, turn initializers into weights, declare the
//! graph inputs, map the nodes in file order (ONNX requires them topologically sorted), and name
//! the graph outputs. An op with no mapping becomes an [`Op::Opaque`] node, so that a model
//! with unsupported ops can still be inspected and viewed.

mod attrs;
mod bodies;
mod case;
mod control;
mod conv;
mod ctx;
mod detection;
mod elementwise;
mod expand;
mod linalg;
mod movement;
mod ops;
mod pool;
pub mod proto;
mod quant;
mod read;
mod reduce;
mod resize;
mod tensor;
mod training;
mod types;

use attrs::Attrs;
use ctx::NodeCtx;
use proto::{GraphProto, ModelProto, NodeProto, ValueInfoProto};
use std::collections::HashMap;
use std::path::Path;
use temblor_ir::{
    DType, Dim, Error, Framework, Graph, GraphOutput, Layout, Node, NodeId, Op, Origin, Provenance,
    Result, Shape, TensorInfo, TensorType, ValueRef, Weight,
};
use tensor::TensorReader;

pub(crate) use case::load_case;
pub(super) use case::{npy_io, op_types};
pub use case::{Binding, Case};

pub(super) fn load(path: &Path, input_dims: &[(String, Vec<usize>)]) -> Result<Graph> {
    let file = path.display().to_string();
    let model = read::model(path, &file)?;
    let opset = read::default_opset(&model, &file)?;
    let proto = nonempty_graph(&model, &file)?;
    let mut g = import(proto, file, opset, path, input_dims)?;
    g.metadata = model
        .metadata_props
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect();
    Ok(g)
}

fn nonempty_graph<'m>(model: &'m ModelProto, file: &str) -> Result<&'m GraphProto> {
    model
        .graph
        .as_ref()
        .filter(|g| !g.node.is_empty())
        .ok_or_else(|| {
            Error::bad_input(format!(
                "{file}: not an ONNX model (it holds no graph nodes)"
            ))
        })
}

fn import(
    proto: &GraphProto,
    file: String,
    opset: i64,
    path: &Path,
    input_dims: &[(String, Vec<usize>)],
) -> Result<Graph> {
    let model_dir = path.parent().unwrap_or(Path::new("."));
    let mut imp = Importer::new(proto, file, opset, model_dir);
    imp.weights()?;
    imp.inputs(input_dims)?;
    imp.nodes()?;
    imp.outputs()?;
    Ok(imp.g)
}

struct Importer<'m> {
    proto: &'m GraphProto,
    file: String,
    opset: i64,
    g: Graph,
    /// ONNX value name -> the IR value holding it.
    values: HashMap<String, ValueRef>,
    names: super::names::Names,
    tensors: TensorReader,
    /// Types the model declares (inputs, outputs, value_info), used where an attribute can only
    /// be resolved from a static input size (auto_pad, output_shape).
    declared: HashMap<&'m str, &'m ValueInfoProto>,
}

impl<'m> Importer<'m> {
    fn new(proto: &'m GraphProto, file: String, opset: i64, model_dir: &Path) -> Importer<'m> {
        let declared = proto
            .input
            .iter()
            .chain(&proto.value_info)
            .chain(&proto.output)
            .map(|v| (v.name.as_str(), v))
            .collect();
        let name = if proto.name.is_empty() {
            "onnx_graph".to_string()
        } else {
            proto.name.clone()
        };
        Importer {
            proto,
            file,
            opset,
            g: Graph::new(name),
            values: HashMap::new(),
            names: Default::default(),
            tensors: TensorReader::new(model_dir),
            declared,
        }
    }

    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::bad_input(format!("{}: {msg}", self.file))
    }

    fn origin(&mut self, node_name: &str, op_type: &str) -> Provenance {
        Provenance::imported(self.g.add_origin(Origin {
            framework: Framework::Onnx,
            node_name: node_name.to_string(),
            op_type: op_type.to_string(),
            file: self.file.clone(),
        }))
    }

    fn define(&mut self, value_name: &str, value: ValueRef) -> Result<()> {
        if self.values.insert(value_name.to_string(), value).is_some() {
            return Err(self.err(format!("value '{value_name}' is defined twice")));
        }
        Ok(())
    }

    fn add_constant(
        &mut self,
        node_name: String,
        value_name: &str,
        weight: Weight,
        prov: Provenance,
    ) -> Result<NodeId> {
        let ty = TensorType::new(weight.dtype, weight.shape());
        let id = self.g.weights.add(weight);
        let mut node = Node::new(
            node_name,
            Op::Constant { weight: id },
            vec![TensorInfo {
                name: value_name.to_string(),
                ty,
            }],
        );
        node.provenance = prov;
        let id = self.g.add_node(node);
        self.define(value_name, ValueRef::new(id, 0))?;
        Ok(id)
    }

    fn weights(&mut self) -> Result<()> {
        let proto = self.proto;
        for t in &proto.initializer {
            let weight = self.tensors.weight(t).map_err(|e| self.err(e))?;
            let name = self.names.unique(&t.name);
            let prov = self.origin(&name, "initializer");
            self.add_constant(name, &t.name, weight, prov)?;
        }
        Ok(())
    }

    /// Graph inputs that are also initializers are weights with a default, not inputs. The
    /// extents `input_dims` gives fill those the model leaves open, so that a Scan over them
    /// can be unrolled; `temblor_infer::fix_inputs` checks them against fixed ones after import.
    fn inputs(&mut self, input_dims: &[(String, Vec<usize>)]) -> Result<()> {
        let proto = self.proto;
        for vi in &proto.input {
            if self.values.contains_key(&vi.name) {
                continue;
            }
            let mut ty = types::declared_type(vi).map_err(|e| self.err(e))?;
            if let Some((_, dims)) = input_dims.iter().find(|(n, _)| *n == vi.name) {
                if dims.len() == ty.shape.0.len() {
                    for (d, &given) in ty.shape.0.iter_mut().zip(dims) {
                        if !matches!(d, Dim::Known(_)) {
                            *d = Dim::Known(given);
                        }
                    }
                }
            }
            let name = self.names.unique(&vi.name);
            let mut node = Node::new(
                name.clone(),
                Op::Input {
                    index: self.g.inputs.len(),
                },
                vec![TensorInfo {
                    name: vi.name.clone(),
                    ty,
                }],
            );
            node.provenance = self.origin(&name, "input");
            let id = self.g.add_node(node);
            self.g.inputs.push(id);
            self.define(&vi.name, ValueRef::new(id, 0))?;
        }
        Ok(())
    }

    fn nodes(&mut self) -> Result<()> {
        let proto = self.proto;
        for (index, n) in proto.node.iter().enumerate() {
            let display = display_name(n, index);
            self.import_node(n, &display)
                .map_err(|e| self.err(format!("node '{display}' ({}): {e}", n.op_type)))?;
        }
        Ok(())
    }

    /// Maps one node of the graph or of an unrolled subgraph (`display` names it in errors and
    /// provenance); errors are phrases, prefixed with the node by the caller.
    fn import_node(&mut self, n: &NodeProto, display: &str) -> Result<(), String> {
        let name = self.names.unique(display);
        let prov = self.origin(&name, &n.op_type);
        let default_domain = n.domain.is_empty() || n.domain == "ai.onnx";
        if default_domain && ops::supported(&n.op_type) {
            self.node(n, name, prov)
        } else {
            let at = format!("node '{display}'");
            self.opaque(n, name, prov, default_domain, at)
        }
    }

    /// An op with no mapping, kept with every input and output and the types the model declares
    /// for its outputs; [`temblor_ir::check_supported`] refuses it after import.
    fn opaque(
        &mut self,
        n: &NodeProto,
        name: String,
        prov: Provenance,
        default_domain: bool,
        at: String,
    ) -> Result<(), String> {
        let outputs = output_names(n)?;
        let inputs = self.node_inputs(n)?;
        let declared = outputs
            .iter()
            .map(|o| {
                let vi = self.declared.get(o)?;
                types::declared_type(vi).ok()
            })
            .collect();
        let op = Op::Opaque {
            domain: if default_domain {
                String::new()
            } else {
                n.domain.clone()
            },
            op_type: n.op_type.clone(),
            at,
            declared,
        };
        self.add_node(n, name, prov, op, &inputs, &outputs)
            .map(drop)
    }

    /// The values a node reads, `None` for an omitted optional input.
    fn node_inputs(&self, n: &NodeProto) -> Result<Vec<Option<ValueRef>>, String> {
        let mut inputs = Vec::with_capacity(n.input.len());
        for i in &n.input {
            inputs.push(if i.is_empty() {
                None
            } else {
                Some(*self.values.get(i).ok_or_else(|| {
                    format!(
                        "reads '{i}', which no earlier node, initializer or graph input defines"
                    )
                })?)
            });
        }
        Ok(inputs)
    }

    /// Maps one node; errors are phrases, prefixed with the file and node by the caller.
    fn node(&mut self, n: &NodeProto, name: String, prov: Provenance) -> Result<(), String> {
        if control::OPS.contains(&n.op_type.as_str()) {
            return control::unroll(self, n, &name, prov);
        }
        let attrs = Attrs(&n.attribute);
        let outputs = output_names(n)?;
        let first_out = outputs[0];
        let mut inputs = self.node_inputs(n)?;
        if n.op_type == "Constant" {
            let weight = self.tensors.constant(&attrs)?;
            let id = self
                .add_constant(name, first_out, weight, prov)
                .map_err(|e| e.to_string())?;
            self.g.node_mut(id).source_attrs = source_attrs(n);
            return Ok(());
        }
        let dims: Vec<Option<Vec<usize>>> = n
            .input
            .iter()
            .zip(&inputs)
            .map(|(x, v)| self.static_dims(x, *v))
            .collect();
        let ctx = NodeCtx {
            dims: &dims,
            op_type: &n.op_type,
            opset: self.opset,
            attrs,
            inputs: &inputs,
            n_outputs: outputs.len(),
            g: &self.g,
        };
        if let Some(expansion) = expand::expansion(&ctx)? {
            return self.add_expansion(n, &name, prov, &inputs, &outputs, expansion);
        }
        let mapped = ops::map(&ctx)?;
        for (port, weight) in mapped.operands {
            let value_name = format!("{name}_operand{port}");
            let const_name = self.names.unique(&value_name);
            let id = self
                .add_constant(const_name, &value_name, weight, prov.clone())
                .map_err(|e| e.to_string())?;
            if inputs.len() <= port {
                inputs.resize(port + 1, None);
            }
            inputs[port] = Some(ValueRef::new(id, 0));
        }
        let op = mapped.op;
        let count = op.max_outputs().min(outputs.len());
        if let Some(extra) = outputs
            .get(count..)
            .and_then(|o| o.iter().find(|s| !s.is_empty()))
        {
            return Err(format!("output '{extra}' is not supported"));
        }
        let (min, max) = op.arity();
        if let Some(p) = (0..min).find(|&p| inputs.get(p).copied().flatten().is_none()) {
            return Err(format!("required input {p} is missing"));
        }
        self.add_node(
            n,
            name,
            prov,
            op,
            &inputs[..max.min(inputs.len())],
            &outputs[..count],
        )
        .map(drop)
    }

    /// Adds the IR nodes of an expanded ONNX node: the last step keeps the node's name, earlier
    /// ones get numbered names, and every step carries the node's provenance.
    fn add_expansion(
        &mut self,
        n: &NodeProto,
        name: &str,
        prov: Provenance,
        inputs: &[Option<ValueRef>],
        outputs: &[&str],
        expansion: expand::Expansion,
    ) -> Result<(), String> {
        let last = expansion.steps.len() - 1;
        let mut constants = Vec::with_capacity(expansion.constants.len());
        for (k, weight) in expansion.constants.into_iter().enumerate() {
            let value_name = format!("{name}_const{k}");
            let const_name = self.names.unique(&value_name);
            let id = self
                .add_constant(const_name, &value_name, weight, prov.clone())
                .map_err(|e| e.to_string())?;
            constants.push(ValueRef::new(id, 0));
        }
        let mut made: Vec<NodeId> = Vec::with_capacity(expansion.steps.len());
        for (k, step) in expansion.steps.into_iter().enumerate() {
            let step_inputs = step
                .inputs
                .iter()
                .map(|&src| match src {
                    expand::Src::Input(i) => inputs
                        .get(i)
                        .copied()
                        .flatten()
                        .map(Some)
                        .ok_or_else(|| format!("required input {i} is missing")),
                    expand::Src::Step { step, port } => Ok(Some(ValueRef::new(made[step], port))),
                    expand::Src::Const(k) => Ok(Some(constants[k])),
                })
                .collect::<Result<Vec<_>, String>>()?;
            let step_name = if k == last {
                name.to_string()
            } else {
                self.names.unique(&format!("{name}_{k}"))
            };
            let value_names: Vec<String> = (0..step.op.max_outputs())
                .map(|port| {
                    let onnx = expansion.outputs.iter().position(|o| {
                        matches!(*o, expand::Src::Step { step, port: p } if step == k && p == port)
                    });
                    match onnx.and_then(|i| outputs.get(i)) {
                        Some(o) => o.to_string(),
                        None => format!("{step_name}_out{port}"),
                    }
                })
                .collect();
            let value_names: Vec<&str> = value_names.iter().map(String::as_str).collect();
            made.push(self.add_node(
                n,
                step_name,
                prov.clone(),
                step.op,
                &step_inputs,
                &value_names,
            )?);
        }
        Ok(())
    }

    /// Adds the node of `op`, connects `inputs` port by port and defines `outputs` (an empty name
    /// is an output the model leaves unused). Output types are placeholders until shape
    /// inference.
    fn add_node(
        &mut self,
        n: &NodeProto,
        name: String,
        prov: Provenance,
        op: Op,
        inputs: &[Option<ValueRef>],
        outputs: &[&str],
    ) -> Result<NodeId, String> {
        let placeholder = TensorType::new(DType::F32, Shape::default());
        let infos = outputs
            .iter()
            .map(|o| TensorInfo {
                name: o.to_string(),
                ty: placeholder.clone(),
            })
            .collect();
        let mut node = Node::new(name, op, infos);
        node.source_attrs = source_attrs(n);
        node.provenance = prov;
        let id = self.g.add_node(node);
        for (port, v) in inputs.iter().enumerate() {
            if let Some(v) = v {
                self.g.connect(*v, id, port);
            }
        }
        for (port, o) in outputs.iter().enumerate() {
            if !o.is_empty() {
                self.define(o, ValueRef::new(id, port))
                    .map_err(|e| e.to_string())?;
            }
        }
        self.tag_layouts(id);
        Ok(id)
    }

    /// The static extents of an ONNX value, when the model declares them or it is a graph input
    /// or weight with a known shape.
    fn static_dims(&self, name: &str, value: Option<ValueRef>) -> Option<Vec<usize>> {
        let declared = self
            .declared
            .get(name)
            .and_then(|vi| types::declared_dims(vi));
        declared.or_else(|| {
            let v = value?;
            match self.g.node(v.node).op {
                Op::Input { .. } | Op::Constant { .. } => self.g.value_type(v).shape.known(),
                _ => None,
            }
        })
    }

    /// Layout tags the op implies for values that no shape rule computes: graph inputs feeding a
    /// convolution, and weights.
    fn tag_layouts(&mut self, id: NodeId) {
        let roles: &[(usize, Layout)] = match self.g.node(id).op {
            Op::Conv(_) => &[(0, Layout::NCHW), (1, Layout::OIHW), (2, Layout::C)],
            Op::ConvTranspose(_) => &[(0, Layout::NCHW), (1, Layout::IOHW), (2, Layout::C)],
            Op::BatchNorm { .. } => &[
                (1, Layout::C),
                (2, Layout::C),
                (3, Layout::C),
                (4, Layout::C),
            ],
            _ => &[],
        };
        for &(port, layout) in roles {
            if let Some(v) = self.g.input(id, port) {
                let producer = self.g.node_mut(v.node);
                if matches!(producer.op, Op::Input { .. } | Op::Constant { .. }) {
                    if let Some(info) = producer.outputs.get_mut(v.port) {
                        info.ty.layout = layout;
                    }
                }
            }
        }
    }

    fn outputs(&mut self) -> Result<()> {
        let proto = self.proto;
        for o in &proto.output {
            let value = *self.values.get(&o.name).ok_or_else(|| {
                self.err(format!(
                    "graph output '{}' is not produced by any node",
                    o.name
                ))
            })?;
            self.g.outputs.push(GraphOutput {
                name: o.name.clone(),
                value,
            });
        }
        if self.g.outputs.is_empty() {
            return Err(self.err("the graph has no outputs"));
        }
        Ok(())
    }
}

/// A node's output names without the trailing ones it leaves unused; at least one.
fn output_names(n: &NodeProto) -> Result<Vec<&str>, String> {
    let mut o: Vec<&str> = n.output.iter().map(String::as_str).collect();
    while o.last().is_some_and(|s| s.is_empty()) {
        o.pop();
    }
    if o.is_empty() {
        return Err("has no outputs".into());
    }
    Ok(o)
}

/// The ONNX node name, or `<op_type>_<index>` for the many exporters that leave it empty.
fn display_name(n: &NodeProto, index: usize) -> String {
    if n.name.is_empty() {
        format!("{}_{index}", n.op_type)
    } else {
        n.name.clone()
    }
}

fn source_attrs(n: &NodeProto) -> Vec<(String, temblor_ir::AttrValue)> {
    n.attribute
        .iter()
        .map(|a| (a.name.clone(), attrs::to_attr_value(a)))
        .collect()
}
