//! The three Netron views of a temblor graph, as Caffe-style text prototxt (DESIGN.md, "The
//! three views (Netron)"): parse (the graph as imported), optimize (after the passes) and
//! compile (with each layer's precision, partition and int8 scales).
//!
//! Layout of a view: comments naming the view, `name`, each graph input as `input` plus
//! `input_shape` (symbolic or unknown extents as `-1`, the full type in a comment above), one
//! `layer` per node that is a layer ([`Op::is_layer`]) in topological order, and the graph
//! outputs in closing comments. Inputs and constants are not layers: a constant is described
//! inside each consuming layer's `layer_param`, by its role there (see `layer.rs`).
//!
//! Netron draws an edge only from a `bottom` that equals an earlier `top` or input, and lists
//! the fields of any `*_param` block as node attributes; it reads only identifiers, numbers,
//! quoted one-line strings, `{ } [ ] < > : , ;` and `#` comments. The writer keeps to that
//! (`prototxt.rs`), and makes edge names unique so Netron never merges two values.
//!
//! The graph is expected to pass `temblor_ir::validate`; on a cycle the layers are written in
//! node order with a comment naming the node, so a broken graph can still be looked at.
//!
//! [`report_html`] draws a compile's `report.json` as one self-contained HTML page (`html.rs`,
//! with the charts in `svg.rs`).

#![forbid(unsafe_code)]

mod caffe;
mod html;
mod layer;
mod prototxt;
mod scales;
mod svg;

pub use html::report_html;

use layer::{descriptor, write_layer, Names};
use prototxt::{quote, Writer};
use temblor_ir::{Dim, Graph, NodeId, Op, ValueRef};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    /// The imported graph, with the source framework's attributes.
    Parse,
    /// After the passes, with the pass that made each rewritten node.
    Optimize,
    /// After the compile stage: the optimize view plus each layer's precision and partition,
    /// and the scales of int8 layers and quantization nodes.
    Compile,
}

impl View {
    /// `parse`, `optimize` or `compile`, as used in file names.
    pub fn name(self) -> &'static str {
        match self {
            View::Parse => "parse",
            View::Optimize => "optimize",
            View::Compile => "compile",
        }
    }
}

/// The bodies of the control-flow layers among `layers`, each after a comment that names it, as
/// a part of the same net that nothing outside connects to: its inputs as `Input` layers, then
/// its layers (and the bodies nested in them). Netron draws each as a graph of its own beside
/// the model's.
fn write_bodies(
    w: &mut Writer,
    graph: &Graph,
    view: View,
    layers: &[NodeId],
    index: &mut usize,
    names: &mut Names,
) {
    for &id in layers {
        let node = graph.node(id);
        let bodies = match &node.op {
            Op::Loop(a) => vec![("body", a.body)],
            Op::If {
                then_branch,
                else_branch,
            } => vec![("then branch", *then_branch), ("else branch", *else_branch)],
            _ => continue,
        };
        for (role, b) in bodies {
            let body = graph.body(b);
            w.blank();
            w.comment(&format!(
                "{role} of {} '{}': graph '{}', {} layers",
                node.op.name(),
                node.name,
                body.name,
                body.layer_count()
            ));
            for &input in &body.inputs {
                let n = body.node(input);
                let Some(info) = n.outputs.first() else {
                    continue;
                };
                let top = names.define(ValueRef::new(input, 0), info, &n.name);
                w.open("layer");
                w.field("name", &quote(&top));
                w.field("type", &quote("Input"));
                w.field("top", &quote(&top));
                w.open("layer_param");
                w.field("input_of", &quote(&body.name));
                w.field("output_0", &quote(&descriptor(&top, info)));
                w.close();
                w.close();
            }
            let order = body
                .topo_order()
                .unwrap_or_else(|_| body.node_ids().collect());
            let inner: Vec<NodeId> = order
                .into_iter()
                .filter(|&n| body.node(n).op.is_layer())
                .collect();
            for &n in &inner {
                w.blank();
                write_layer(w, body, view, n, *index, names);
                *index += 1;
            }
            write_bodies(w, body, view, &inner, index, names);
        }
    }
}

/// Writes `graph` as a Netron-readable prototxt. Deterministic: the same graph gives the same
/// bytes.
pub fn render(graph: &Graph, view: View) -> String {
    let mut w = Writer::default();
    w.comment(&format!(
        "temblor {} view: {} layers",
        view.name(),
        graph.layer_count()
    ));
    w.field("name", &quote(&graph.name));
    let mut names = Names::default();
    for &id in &graph.inputs {
        let node = graph.node(id);
        let Some(info) = node.outputs.first() else {
            w.comment(&format!("input node {} has no output", node.name));
            continue;
        };
        let name = names.define(ValueRef::new(id, 0), info, &node.name);
        w.comment(&format!("input {}", descriptor(&name, info)));
        w.field("input", &quote(&name));
        let dims: Vec<(&str, String)> = info
            .ty
            .shape
            .dims()
            .iter()
            .map(|d| match d {
                Dim::Known(n) => n.to_string(),
                Dim::Symbol(_) | Dim::Unknown => "-1".to_string(),
            })
            .map(|d| ("dim", d))
            .collect();
        w.inline("input_shape", &dims);
    }
    let order = match graph.topo_order() {
        Ok(order) => order,
        Err(stuck) => {
            w.comment(&format!(
                "cycle through {}: layers in node order",
                graph.describe(stuck)
            ));
            graph.node_ids().collect()
        }
    };
    let layers: Vec<NodeId> = order
        .into_iter()
        .filter(|&id| graph.node(id).op.is_layer())
        .collect();
    for (index, &id) in layers.iter().enumerate() {
        w.blank();
        write_layer(&mut w, graph, view, id, index, &mut names);
    }
    let mut index = layers.len();
    write_bodies(&mut w, graph, view, &layers, &mut index, &mut names);
    w.blank();
    for o in &graph.outputs {
        let producer = graph.node(o.value.node);
        let kind = match producer.op {
            Op::Input { .. } => "graph input",
            Op::Constant { .. } => "constant",
            _ => "layer",
        };
        w.comment(&format!(
            "output {} = {} {} port {}",
            o.name, kind, producer.name, o.value.port
        ));
    }
    w.finish()
}
