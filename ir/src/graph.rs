use crate::AttrValue;
use crate::BodyId;
use crate::Op;
use crate::Origin;
use crate::OriginId;
use crate::Provenance;
use crate::TensorInfo;
use crate::TensorType;
use crate::WeightStore;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, NodeIndexable};
use petgraph::Direction;
use serde::{Deserialize, Serialize};
use std::collections::BinaryHeap;

/// A node of one [`Graph`]. Stable across removals of other nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(crate) NodeIndex);

impl NodeId {
    pub fn index(self) -> usize {
        self.0.index()
    }
}

/// One value: output `port` of `node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueRef {
    pub node: NodeId,
    pub port: usize,
}

impl ValueRef {
    pub fn new(node: NodeId, port: usize) -> ValueRef {
        ValueRef { node, port }
    }
}

/// An edge from output `src_port` of its source to input `dst_port` of its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub src_port: usize,
    pub dst_port: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Fp16,
    Bf16,
    Int8,
}

/// Where a layer runs once lowered: inside the accelerator engine, or on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Partition {
    Engine,
    Host,
}

/// Decided by the compile stage; absent before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub precision: Precision,
    pub partition: Partition,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub outputs: Vec<TensorInfo>,
    /// Attributes exactly as the source framework wrote them (parse view only).
    pub source_attrs: Vec<(String, AttrValue)>,
    pub provenance: Provenance,
    pub placement: Option<Placement>,
}

impl Node {
    pub fn new(name: impl Into<String>, op: Op, outputs: Vec<TensorInfo>) -> Node {
        Node {
            name: name.into(),
            op,
            outputs,
            source_attrs: Vec::new(),
            provenance: Provenance::default(),
            placement: None,
        }
    }
}

/// Why [`Graph::remove_node`] refused: the node's value is still read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RemoveNodeError {
    #[error("cannot remove node '{node}': its output {port} is input {input} of node '{reader}'")]
    Read {
        node: String,
        port: usize,
        reader: String,
        input: usize,
    },
    #[error("cannot remove node '{node}': its output {port} is graph output '{output}'")]
    GraphOutput {
        node: String,
        port: usize,
        output: String,
    },
}

/// A named graph output.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphOutput {
    pub name: String,
    pub value: ValueRef,
}

/// The whole model: nodes, edges, named inputs and outputs, weights and the origin table.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    net: StableDiGraph<Node, Edge>,
    /// `Op::Input` nodes, in the model's input order.
    pub inputs: Vec<NodeId>,
    pub outputs: Vec<GraphOutput>,
    pub weights: WeightStore,
    pub origins: Vec<Origin>,
    /// Facts about the source model a person may want to see (format, program version, blocks),
    /// as (name, value) pairs in the order the frontend found them.
    pub facts: Vec<(String, String)>,
    /// The source model's own key/value metadata (ONNX `metadata_props`: Ultralytics' class
    /// `names`, RapidOCR's `character` dictionary), in file order. Read by postprocessing to name
    /// classes; not written to packages.
    pub metadata: Vec<(String, String)>,
    /// The bodies of this graph's control-flow ops ([`crate::Op::Loop`], [`crate::Op::If`]),
    /// each a graph of its own whose inputs are all it reads, by [`BodyId`].
    pub bodies: Vec<Graph>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Graph::default()
        }
    }

    pub fn add_body(&mut self, body: Graph) -> BodyId {
        self.bodies.push(body);
        BodyId(self.bodies.len() - 1)
    }

    /// Panics on an id from another graph: ids come from this graph's ops, so that is a
    /// compiler bug.
    pub fn body(&self, id: BodyId) -> &Graph {
        &self.bodies[id.0]
    }

    pub fn body_mut(&mut self, id: BodyId) -> &mut Graph {
        &mut self.bodies[id.0]
    }

    pub fn add_origin(&mut self, origin: Origin) -> OriginId {
        self.origins.push(origin);
        OriginId(self.origins.len() as u32 - 1)
    }

    pub fn origin(&self, id: OriginId) -> Option<&Origin> {
        self.origins.get(id.0 as usize)
    }

    pub fn add_node(&mut self, node: Node) -> NodeId {
        NodeId(self.net.add_node(node))
    }

    /// Feeds `value` into input `port` of `consumer`.
    pub fn connect(&mut self, value: ValueRef, consumer: NodeId, port: usize) {
        self.net.add_edge(
            value.node.0,
            consumer.0,
            Edge {
                src_port: value.port,
                dst_port: port,
            },
        );
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.net.contains_node(id.0)
    }

    /// Panics on a removed node: ids come from this graph, so that is a compiler bug.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.net[id.0]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.net[id.0]
    }

    pub fn node_count(&self) -> usize {
        self.net.node_count()
    }

    /// Nodes that are computation (not inputs or constants).
    pub fn layer_count(&self) -> usize {
        self.net.node_weights().filter(|n| n.op.is_layer()).count()
    }

    /// Node ids in index order.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.net.node_indices().map(NodeId)
    }

    pub fn value_info(&self, value: ValueRef) -> &TensorInfo {
        &self.node(value.node).outputs[value.port]
    }

    pub fn value_type(&self, value: ValueRef) -> &TensorType {
        &self.value_info(value).ty
    }

    /// Inputs of `id` by port; a port with no edge (an omitted optional input) is `None`.
    pub fn inputs_of(&self, id: NodeId) -> Vec<Option<ValueRef>> {
        let mut ins: Vec<Option<ValueRef>> = Vec::new();
        for e in self.net.edges_directed(id.0, Direction::Incoming) {
            let w = e.weight();
            if ins.len() <= w.dst_port {
                ins.resize(w.dst_port + 1, None);
            }
            ins[w.dst_port] = Some(ValueRef::new(NodeId(e.source()), w.src_port));
        }
        ins
    }

    /// The value at input `port` of `id`, if connected.
    pub fn input(&self, id: NodeId, port: usize) -> Option<ValueRef> {
        self.net
            .edges_directed(id.0, Direction::Incoming)
            .find(|e| e.weight().dst_port == port)
            .map(|e| ValueRef::new(NodeId(e.source()), e.weight().src_port))
    }

    /// Every (consumer, input port) reading `value`, sorted for determinism.
    pub fn consumers(&self, value: ValueRef) -> Vec<(NodeId, usize)> {
        let mut out: Vec<(NodeId, usize)> = self
            .net
            .edges_directed(value.node.0, Direction::Outgoing)
            .filter(|e| e.weight().src_port == value.port)
            .map(|e| (NodeId(e.target()), e.weight().dst_port))
            .collect();
        out.sort();
        out
    }

    /// The input port of every edge into `id`, repeats included (a valid graph has none).
    pub fn incoming_ports(&self, id: NodeId) -> Vec<usize> {
        self.net
            .edges_directed(id.0, Direction::Incoming)
            .map(|e| e.weight().dst_port)
            .collect()
    }

    /// Whether `value` is read by any node or is a graph output.
    pub fn is_used(&self, value: ValueRef) -> bool {
        !self.consumers(value).is_empty() || self.outputs.iter().any(|o| o.value == value)
    }

    /// Redirects every reader of `old` (nodes and graph outputs) to `new`. Graph outputs keep
    /// their names.
    pub fn replace_uses(&mut self, old: ValueRef, new: ValueRef) {
        for (consumer, port) in self.consumers(old) {
            self.disconnect_input(consumer, port);
            self.connect(new, consumer, port);
        }
        for o in &mut self.outputs {
            if o.value == old {
                o.value = new;
            }
        }
    }

    /// Removes the edge into input `port` of `id`, if any.
    pub fn disconnect_input(&mut self, id: NodeId, port: usize) {
        let edge = self
            .net
            .edges_directed(id.0, Direction::Incoming)
            .find(|e| e.weight().dst_port == port)
            .map(|e| e.id());
        if let Some(e) = edge {
            self.net.remove_edge(e);
        }
    }

    /// Removes a node and its edges, refusing while another node or a graph output reads any of
    /// its outputs. A reader left behind would see an unconnected port, and for an optional input
    /// (a Conv's bias or residual) that still validates while computing something else, so
    /// rewrites redirect or remove the readers first. Panics on a removed node, like
    /// [`Graph::node`].
    pub fn remove_node(&mut self, id: NodeId) -> Result<(), RemoveNodeError> {
        self.remove_nodes(&[id])
    }

    /// Removes a group of nodes that may read one another (the layers a fusion absorbed), in one
    /// step: refused, with nothing removed, while a node outside the group or a graph output
    /// reads one of them.
    pub fn remove_nodes(&mut self, ids: &[NodeId]) -> Result<(), RemoveNodeError> {
        for &id in ids {
            let node = self.node(id);
            for port in 0..node.outputs.len() {
                let value = ValueRef::new(id, port);
                if let Some((reader, input)) = self
                    .consumers(value)
                    .into_iter()
                    .find(|(reader, _)| !ids.contains(reader))
                {
                    return Err(RemoveNodeError::Read {
                        node: node.name.clone(),
                        port,
                        reader: self.node(reader).name.clone(),
                        input,
                    });
                }
                if let Some(o) = self.outputs.iter().find(|o| o.value == value) {
                    return Err(RemoveNodeError::GraphOutput {
                        node: node.name.clone(),
                        port,
                        output: o.name.clone(),
                    });
                }
            }
        }
        for &id in ids {
            self.inputs.retain(|&i| i != id);
            self.net.remove_node(id.0);
        }
        Ok(())
    }

    /// The constant tensor behind `value`, when its producer is an `Op::Constant`.
    pub fn constant(&self, value: ValueRef) -> Option<&crate::Weight> {
        match self.node(value.node).op {
            Op::Constant { weight } => self.weights.get(weight),
            _ => None,
        }
    }

    /// Nodes in a topological order, ties broken by node index so the order is deterministic.
    /// `Err` names a node on a cycle.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, NodeId> {
        let mut indegree = vec![0usize; self.net.node_bound()];
        for e in self.net.edge_indices() {
            let (_, t) = self.net.edge_endpoints(e).expect("live edge");
            indegree[t.index()] += 1;
        }
        let mut ready: BinaryHeap<std::cmp::Reverse<NodeIndex>> = self
            .net
            .node_indices()
            .filter(|n| indegree[n.index()] == 0)
            .map(std::cmp::Reverse)
            .collect();
        let mut order = Vec::with_capacity(self.net.node_count());
        while let Some(std::cmp::Reverse(n)) = ready.pop() {
            order.push(NodeId(n));
            for e in self.net.edges_directed(n, Direction::Outgoing) {
                let t = e.target();
                indegree[t.index()] -= 1;
                if indegree[t.index()] == 0 {
                    ready.push(std::cmp::Reverse(t));
                }
            }
        }
        if order.len() == self.net.node_count() {
            Ok(order)
        } else {
            let stuck = self
                .net
                .node_indices()
                .find(|n| indegree[n.index()] > 0)
                .expect("a node left on the cycle");
            Err(NodeId(stuck))
        }
    }

    /// Whether every weight has its values: false for a model given without its parameters
    /// (graph only), which can be compiled and viewed but not run.
    pub fn has_values(&self) -> bool {
        self.weights.iter().all(|(_, w)| !w.is_shape_only())
    }

    /// The layers (every node but inputs and constants) in [`Graph::topo_order`]: the order the
    /// CPU plan runs them in. `Err` names a node on a cycle.
    pub fn layer_order(&self) -> Result<Vec<NodeId>, NodeId> {
        Ok(self
            .topo_order()?
            .into_iter()
            .filter(|&id| self.node(id).op.is_layer())
            .collect())
    }

    /// Count of each canonical op among layers, sorted by name.
    pub fn op_counts(&self) -> Vec<(String, usize)> {
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for n in self.net.node_weights().filter(|n| n.op.is_layer()) {
            *counts.entry(n.op.name().to_string()).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// Describes a node for error messages: its name, op, and source origin.
    pub fn describe(&self, id: NodeId) -> String {
        let n = self.node(id);
        match n.provenance.origins.first().and_then(|&o| self.origin(o)) {
            Some(o) => format!(
                "node '{}' ({}, from {} {} '{}' in {})",
                n.name,
                n.op.name(),
                o.framework.name(),
                o.op_type,
                o.node_name,
                o.file
            ),
            None => format!("node '{}' ({})", n.name, n.op.name()),
        }
    }
}
