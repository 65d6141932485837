//! One `layer { ... }` block: the Caffe fields Netron draws edges from (`name`, `type`,
//! `bottom`, `top`), then a single `layer_param` block whose fields Netron lists as the node's
//! attributes. What that block holds depends on the view:
//!
//! - every view: `index` (position in topological order), `node` (the IR node id), `op` (the
//!   canonical op), `source_op` and `origin` per source node, one descriptor per input port
//!   (`input_N` for data, the role name such as `weight` or `mean` for a constant), one per
//!   output (`output_N`), `graph_output` for each graph output read here, the canonical
//!   attributes, and for each operand (a shape, sizes, axes: `caffe::operand_role`) whether it
//!   is static, made by a pass (folded), or computed at run time (`shape_is`, `scales_is`, ...);
//! - parse: the source framework's attributes, as `src_NAME`;
//! - optimize and compile: `made_by`, the pass that built the node, when one did;
//! - compile: `precision` and `partition`, `unset` where the compile stage placed nothing, and
//!   the quantization scales of int8 layers and of Q/DQ nodes (`scales.rs`).

use crate::caffe;
use crate::prototxt::{attr, ident, quote, shape, Writer};
use crate::scales;
use crate::View;
use std::collections::{HashMap, HashSet};
use temblor_ir::{Graph, NodeId, Op, Partition, Precision, TensorInfo, ValueRef};

/// Unique edge names for graph inputs and layer outputs, defined in the order they are written
/// so that every `bottom` names an earlier `top` or input.
#[derive(Default)]
pub(crate) struct Names {
    of: HashMap<ValueRef, String>,
    used: HashSet<String>,
}

impl Names {
    /// Names `value` after its tensor (or `fallback` when that is empty), with a `_N` suffix
    /// when an earlier value took the name already.
    pub(crate) fn define(&mut self, value: ValueRef, info: &TensorInfo, fallback: &str) -> String {
        let wanted = if info.name.is_empty() {
            fallback
        } else {
            &info.name
        };
        let mut name = wanted.to_string();
        let mut n = 1;
        while !self.used.insert(name.clone()) {
            name = format!("{wanted}_{n}");
            n += 1;
        }
        self.of.insert(value, name.clone());
        name
    }

    fn get(&self, value: ValueRef) -> Option<&str> {
        self.of.get(&value).map(String::as_str)
    }
}

/// `x: float32 NCHW [1,3,8,8]`.
pub(crate) fn descriptor(name: &str, info: &TensorInfo) -> String {
    let ty = &info.ty;
    format!(
        "{name}: {} {} {}",
        ty.dtype,
        ty.layout.name(),
        shape(&ty.shape)
    )
}

fn layer_name(g: &Graph, id: NodeId) -> String {
    let name = &g.node(id).name;
    if name.is_empty() {
        format!("node{}", id.index())
    } else {
        name.clone()
    }
}

pub(crate) fn write_layer(
    w: &mut Writer,
    g: &Graph,
    view: View,
    id: NodeId,
    index: usize,
    names: &mut Names,
) {
    let node = g.node(id);
    let ins = g.inputs_of(id);
    let name = layer_name(g, id);
    w.open("layer");
    w.field("name", &quote(&name));
    w.field("type", &quote(caffe::layer_type(&node.op)));
    for v in ins.iter().flatten() {
        if let Some(bottom) = names.get(*v) {
            w.field("bottom", &quote(bottom));
        }
    }
    let tops: Vec<String> = node
        .outputs
        .iter()
        .enumerate()
        .map(|(p, info)| names.define(ValueRef::new(id, p), info, &format!("{name}_{p}")))
        .collect();
    for top in &tops {
        w.field("top", &quote(top));
    }
    w.open("layer_param");
    w.field("index", &index.to_string());
    w.field("node", &id.index().to_string());
    w.field("op", &quote(node.op.name()));
    write_provenance(w, g, view, id);
    for (port, v) in ins.iter().enumerate() {
        let Some(v) = *v else { continue };
        let producer = g.node(v.node);
        let info = g.value_info(v);
        if matches!(producer.op, Op::Constant { .. }) {
            let key = match caffe::input_role(&node.op, port) {
                Some(role) => role.to_string(),
                None => format!("const_{port}"),
            };
            let wanted = if info.name.is_empty() {
                &producer.name
            } else {
                &info.name
            };
            w.field(&key, &quote(&descriptor(wanted, info)));
        } else {
            let shown = names.get(v).unwrap_or(&info.name);
            w.field(&format!("input_{port}"), &quote(&descriptor(shown, info)));
        }
        if let Some(role) = caffe::operand_role(&node.op, port) {
            w.field(&format!("{role}_is"), &quote(&operand_state(g, view, v)));
        }
    }
    for (port, (top, info)) in tops.iter().zip(&node.outputs).enumerate() {
        w.field(&format!("output_{port}"), &quote(&descriptor(top, info)));
    }
    for o in g.outputs.iter().filter(|o| o.value.node == id) {
        w.field("graph_output", &quote(&o.name));
    }
    for (key, value) in node.attributes() {
        w.field(&key, &attr(&value));
    }
    if view == View::Parse {
        for (key, value) in &node.source_attrs {
            w.field(&format!("src_{}", ident(key)), &attr(value));
        }
    }
    if view == View::Compile {
        let (precision, partition) = match node.placement {
            Some(p) => (precision_name(p.precision), partition_name(p.partition)),
            None => ("unset", "unset"),
        };
        w.field("precision", precision);
        w.field("partition", partition);
        scales::write_scales(w, g, id);
    }
    w.close();
    w.close();
}

fn write_provenance(w: &mut Writer, g: &Graph, view: View, id: NodeId) {
    let prov = &g.node(id).provenance;
    for &origin in &prov.origins {
        match g.origin(origin) {
            Some(o) => {
                w.field("source_op", &quote(&o.op_type));
                w.inline(
                    "origin",
                    &[
                        ("framework", o.framework.name().to_string()),
                        ("node", quote(&o.node_name)),
                        ("file", quote(&o.file)),
                    ],
                );
            }
            None => w.field("origin_missing", &origin.0.to_string()),
        }
    }
    if view != View::Parse {
        if let Some(pass) = &prov.made_by {
            w.field("made_by", &quote(pass));
        }
    }
}

/// Whether an operand is known when the graph compiles: a constant (with its values when there
/// are few), one a pass made (folded from a computation, or built by a rewrite), or a value
/// computed at run time. In the
/// parse view nothing is folded yet, so a computed operand may still turn out static.
fn operand_state(g: &Graph, view: View, v: ValueRef) -> String {
    let Some(w) = g.constant(v) else {
        return match view {
            View::Parse => "computed".into(),
            View::Optimize | View::Compile => "computed at run time".into(),
        };
    };
    let values = if w.element_count() > MAX_SHOWN {
        format!("{} values", w.element_count())
    } else if w.dtype.is_float() {
        w.to_f32().map_or_else(String::new, |f| format!("{f:?}"))
    } else {
        w.to_i64().map_or_else(String::new, |i| format!("{i:?}"))
    };
    match &g.node(v.node).provenance.made_by {
        Some(pass) if view != View::Parse => format!("static {values}, made by {pass}"),
        _ => format!("static {values}"),
    }
}

/// Operand values listed in full up to this many elements.
const MAX_SHOWN: usize = 16;

fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::Fp32 => "fp32",
        Precision::Fp16 => "fp16",
        Precision::Bf16 => "bf16",
        Precision::Int8 => "int8",
    }
}

fn partition_name(p: Partition) -> &'static str {
    match p {
        Partition::Engine => "engine",
        Partition::Host => "host",
    }
}
