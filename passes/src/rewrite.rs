//! The one place a pass's rewrite changes the graph. A pass proposes a [`Rewrite`] (the nodes its
//! pattern matched, the root whose outputs the result takes over, and how to build the result);
//! the [`Rewriter`] applies it whole or not at all, and counts it against the step budget that
//! `--pass-steps` sets, so a person can stop the optimizer after any one rewrite.
//!
//! What every rewrite needs and no pass should write again:
//!  * interior values are private: an output of a matched node other than the root that is read
//!    outside the match, or is a graph output, blocks the rewrite (the value would vanish under
//!    its reader);
//!  * the replacement's type, inferred before any reader moves to it, must stand for the
//!    root's (same dtype and rank, and extents equal where both are static), or the rewrite is
//!    blocked and what its build added is removed: a pattern that would broadcast or change a
//!    rank does not apply, rather than changing the types downstream;
//!  * the result's provenance merges the matched nodes' origins, in the order the pass lists
//!    them, and names the pass; constants the rewrite makes get the same provenance.
//!
//! The graph reuses the ids of removed nodes, and ids show: in the views (`node:`), and in the
//! order ties between ready layers break. So the applier adds and removes nodes in a fixed
//! order: what the build adds, then a new node, then the matched nodes in the listed order; a
//! pass whose origins read better in another order says so with [`Rewrite::reading`].

use temblor_ir::{
    Graph, Layout, Node, NodeId, Op, Provenance, RemoveNodeError, TensorInfo, TensorType, ValueRef,
    Weight,
};

/// What a pass's `run` is given: the graph, and the budget of rewrites it may still apply.
pub struct Rewriter<'g> {
    graph: &'g mut Graph,
    pass: &'static str,
    /// Rewrites this run may still apply; `None` when unlimited.
    budget: Option<usize>,
    applied: usize,
    /// A removal the graph refused: the applier's privacy check should make that impossible,
    /// so it ends the pass with an error instead of leaving a graph that reads a removed value.
    refused: Option<RemoveNodeError>,
}

/// One rewrite: the nodes a pattern matched, the root among them whose outputs the result takes
/// over, and how to build the result once the match is known to be private.
pub(crate) struct Rewrite {
    /// In the order they are removed.
    matched: Vec<NodeId>,
    /// The matched nodes in the order their origins read in the result's provenance.
    origins: Vec<NodeId>,
    root: NodeId,
    build: Box<dyn FnOnce(&mut Patch) -> Replacement>,
}

/// What takes over the root's outputs (their names and types stay).
pub(crate) enum Replacement {
    /// An existing value outside the match, read instead of the root's one output.
    Value(ValueRef),
    /// A matched node rewritten in place to compute `op` over `inputs` (it keeps its id and
    /// name); every other matched node is removed.
    Reuse {
        node: NodeId,
        op: Op,
        inputs: Vec<Option<ValueRef>>,
    },
    /// A new node named `name`; every matched node is removed.
    New {
        name: String,
        op: Op,
        inputs: Vec<Option<ValueRef>>,
    },
}

/// The graph as a rewrite's build sees it: readable, and open to new nodes that carry the
/// rewrite's provenance and are taken away again if the replacement does not type-check.
pub(crate) struct Patch<'a> {
    graph: &'a mut Graph,
    provenance: Provenance,
    added: Vec<NodeId>,
}

impl Rewrite {
    /// `matched` becomes what `build` returns, which takes over the outputs of `root`, one of
    /// them. The origins read in the order `matched` lists them.
    pub(crate) fn new(
        matched: Vec<NodeId>,
        root: NodeId,
        build: impl FnOnce(&mut Patch) -> Replacement + 'static,
    ) -> Rewrite {
        debug_assert!(matched.contains(&root), "the root is part of the match");
        Rewrite {
            origins: matched.clone(),
            matched,
            root,
            build: Box::new(build),
        }
    }

    /// The same rewrite with the origins read in the order of `origins` (the matched nodes in
    /// another order), e.g. the order the frontend read the source in.
    pub(crate) fn reading(mut self, origins: Vec<NodeId>) -> Rewrite {
        debug_assert!(origins.len() == self.matched.len());
        self.origins = origins;
        self
    }

    /// The common case: `root` becomes `op` over `inputs`, and the rest of `matched` goes.
    pub(crate) fn in_place(
        matched: Vec<NodeId>,
        root: NodeId,
        op: Op,
        inputs: Vec<Option<ValueRef>>,
    ) -> Rewrite {
        Rewrite::new(matched, root, move |_| Replacement::Reuse {
            node: root,
            op,
            inputs,
        })
    }
}

impl Patch<'_> {
    pub(crate) fn graph(&self) -> &Graph {
        self.graph
    }

    /// Adds a Constant node holding `weight`.
    pub(crate) fn constant(&mut self, name: String, weight: Weight, layout: Layout) -> ValueRef {
        let v = crate::add_constant(self.graph, name, weight, layout, &self.provenance);
        self.added.push(v.node);
        v
    }

    /// Adds `node` over `inputs` (by port), e.g. a layer the replacement reads.
    pub(crate) fn node(&mut self, mut node: Node, inputs: &[Option<ValueRef>]) -> NodeId {
        node.provenance = self.provenance.clone();
        let id = self.graph.add_node(node);
        connect(self.graph, id, inputs);
        self.added.push(id);
        id
    }
}

impl<'g> Rewriter<'g> {
    pub(crate) fn new(graph: &'g mut Graph, pass: &'static str, budget: Option<usize>) -> Self {
        Rewriter {
            graph,
            pass,
            budget,
            applied: 0,
            refused: None,
        }
    }

    /// The removal the graph refused during this pass, if any: a bug in a pass.
    pub(crate) fn refused(&mut self) -> Option<RemoveNodeError> {
        self.refused.take()
    }

    pub fn graph(&self) -> &Graph {
        self.graph
    }

    /// The rewrites applied so far.
    pub fn applied(&self) -> usize {
        self.applied
    }

    /// Whether the budget allows no more rewrites.
    pub(crate) fn spent(&self) -> bool {
        self.budget == Some(0) || self.refused.is_some()
    }

    /// For a pass whose rewrites do not fit one root (a Pad folded into all its readers, a
    /// Transpose sunk below a Concat, a node folded to constants and left for the sweep): counts
    /// one rewrite and hands over the graph to make it, or `None` when the budget is spent.
    pub(crate) fn step(&mut self) -> Option<&mut Graph> {
        if self.spent() {
            return None;
        }
        self.count();
        Some(self.graph)
    }

    /// Offers each node whose op `pick` accepts, in node order, to `find`, and applies the
    /// rewrite it proposes, until the budget is spent.
    pub(crate) fn each(
        &mut self,
        pick: impl Fn(&Op) -> bool,
        find: impl Fn(&Graph, NodeId) -> Option<Rewrite>,
    ) {
        self.visit(pick, find, false)
    }

    /// As [`Rewriter::each`], offering a node again after each rewrite applied at it: a conv
    /// takes the layers after it one by one.
    pub(crate) fn each_repeatedly(
        &mut self,
        pick: impl Fn(&Op) -> bool,
        find: impl Fn(&Graph, NodeId) -> Option<Rewrite>,
    ) {
        self.visit(pick, find, true)
    }

    fn visit(
        &mut self,
        pick: impl Fn(&Op) -> bool,
        find: impl Fn(&Graph, NodeId) -> Option<Rewrite>,
        repeat: bool,
    ) {
        let ids: Vec<NodeId> = (self.graph.node_ids())
            .filter(|&id| pick(&self.graph.node(id).op))
            .collect();
        for id in ids {
            // An earlier rewrite may have removed the node, and a later one reused its id.
            while !self.spent() && self.graph.contains(id) && pick(&self.graph.node(id).op) {
                let Some(rewrite) = find(self.graph, id) else {
                    break;
                };
                if !self.apply(rewrite) || !repeat {
                    break;
                }
            }
        }
    }

    /// Applies `rewrite` when the budget allows, its interior values are private and its
    /// replacement has the root's type; says whether it did.
    pub(crate) fn apply(&mut self, rewrite: Rewrite) -> bool {
        let Rewrite {
            matched,
            origins,
            root,
            build,
        } = rewrite;
        if self.spent() || !interior_private(self.graph, &matched, root) {
            return false;
        }
        let provenance = Provenance::merged(
            self.pass,
            origins.iter().map(|&id| &self.graph.node(id).provenance),
        );
        let mut patch = Patch {
            graph: self.graph,
            provenance,
            added: Vec::new(),
        };
        let replacement = build(&mut patch);
        let Patch {
            provenance, added, ..
        } = patch;
        if !type_checks(self.graph, root, &replacement) {
            let added: Vec<NodeId> = added.into_iter().rev().collect();
            if let Err(e) = self.graph.remove_nodes(&added) {
                self.refused = Some(e);
            }
            return false;
        }
        if let Err(e) = commit(self.graph, &matched, root, replacement, provenance) {
            self.refused = Some(e);
            return false;
        }
        self.count();
        true
    }

    fn count(&mut self) {
        self.applied += 1;
        if let Some(b) = &mut self.budget {
            *b -= 1;
        }
    }
}

/// Whether every output of a matched node but the root is read only inside the match and is no
/// graph output.
fn interior_private(g: &Graph, matched: &[NodeId], root: NodeId) -> bool {
    let mut interior = matched
        .iter()
        .filter(|&&id| id != root)
        .flat_map(|&id| (0..g.node(id).outputs.len()).map(move |port| ValueRef::new(id, port)));
    interior.all(|v| {
        !g.outputs.iter().any(|o| o.value == v)
            && g.consumers(v).iter().all(|(c, _)| matched.contains(c))
    })
}

/// Whether the replacement gives each of the root's outputs a type that can stand for it.
fn type_checks(g: &Graph, root: NodeId, replacement: &Replacement) -> bool {
    let outputs = &g.node(root).outputs;
    let types = match replacement {
        Replacement::Value(v) if outputs.len() == 1 => vec![g.value_type(*v).clone()],
        Replacement::Value(_) => return false,
        Replacement::Reuse { op, inputs, .. } | Replacement::New { op, inputs, .. } => {
            match temblor_infer::output_types(g, op, inputs.clone(), outputs) {
                Ok(types) => types,
                Err(_) => return false,
            }
        }
    };
    types.len() == outputs.len()
        && outputs
            .iter()
            .zip(&types)
            .all(|(old, new)| stands_for(new, &old.ty))
}

/// Same dtype and rank, and each extent the same where both are static. An extent the root
/// knows and the replacement does not is accepted: a pattern's constant can reveal an extent of
/// a dynamically shaped input (a `[120]` gamma on `[?,?,?]`) that the fused op cannot.
fn stands_for(new: &TensorType, old: &TensorType) -> bool {
    new.dtype == old.dtype
        && new.shape.rank() == old.shape.rank()
        && (new.shape.dims().iter().zip(old.shape.dims()))
            .all(|(n, o)| n == o || n.known().is_none() || o.known().is_none())
}

fn commit(
    g: &mut Graph,
    matched: &[NodeId],
    root: NodeId,
    replacement: Replacement,
    provenance: Provenance,
) -> Result<(), RemoveNodeError> {
    let outputs: Vec<TensorInfo> = g.node(root).outputs.clone();
    let kept = match replacement {
        Replacement::Value(v) => {
            g.replace_uses(ValueRef::new(root, 0), v);
            None
        }
        Replacement::Reuse { node, op, inputs } => {
            for port in g.incoming_ports(node) {
                g.disconnect_input(node, port);
            }
            connect(g, node, &inputs);
            take_over(g, root, node, outputs.len());
            let n = g.node_mut(node);
            n.op = op;
            n.outputs = outputs;
            n.provenance = provenance;
            Some(node)
        }
        Replacement::New { name, op, inputs } => {
            let n = outputs.len();
            let mut node = Node::new(name, op, outputs);
            node.provenance = provenance;
            let node = g.add_node(node);
            connect(g, node, &inputs);
            take_over(g, root, node, n);
            None
        }
    };
    let removed: Vec<NodeId> = matched
        .iter()
        .copied()
        .filter(|&id| Some(id) != kept)
        .collect();
    g.remove_nodes(&removed)
}

/// Moves the readers of `root`'s `n` outputs to `node`'s.
fn take_over(g: &mut Graph, root: NodeId, node: NodeId, n: usize) {
    if node != root {
        for port in 0..n {
            g.replace_uses(ValueRef::new(root, port), ValueRef::new(node, port));
        }
    }
}

fn connect(g: &mut Graph, node: NodeId, inputs: &[Option<ValueRef>]) {
    for (port, v) in inputs.iter().enumerate() {
        if let Some(v) = v {
            g.connect(*v, node, port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_ir::{BinaryOp, DType, GraphOutput, OriginId, Shape, UnaryOp};

    fn f32s(dims: &[usize]) -> TensorType {
        TensorType::new(DType::F32, Shape::from_known(dims))
    }

    /// Adds a node with one output of type `ty`, from origin `origin`.
    fn node(g: &mut Graph, name: &str, op: Op, ty: TensorType, ins: &[ValueRef]) -> ValueRef {
        let info = TensorInfo {
            name: name.into(),
            ty,
        };
        let mut n = Node::new(name, op, vec![info]);
        n.provenance = Provenance::imported(OriginId(g.node_count() as u32));
        let id = g.add_node(n);
        for (port, &v) in ins.iter().enumerate() {
            g.connect(v, id, port);
        }
        ValueRef::new(id, 0)
    }

    /// `x -> relu -> sigmoid -> y`, all `[1, 4]`.
    fn chain() -> (Graph, [ValueRef; 3]) {
        let mut g = Graph::new("chain");
        let x = node(&mut g, "x", Op::Input { index: 0 }, f32s(&[1, 4]), &[]);
        let relu = node(
            &mut g,
            "relu",
            Op::Unary(UnaryOp::Relu),
            f32s(&[1, 4]),
            &[x],
        );
        let sig = node(
            &mut g,
            "sig",
            Op::Unary(UnaryOp::Sigmoid),
            f32s(&[1, 4]),
            &[relu],
        );
        g.outputs.push(GraphOutput {
            name: "y".into(),
            value: sig,
        });
        (g, [x, relu, sig])
    }

    /// `relu` and `sig` as one Tanh in `sig`'s place.
    fn fuse(relu: ValueRef, sig: ValueRef, x: ValueRef) -> Rewrite {
        let tanh = Op::Unary(UnaryOp::Tanh);
        Rewrite::in_place(vec![sig.node, relu.node], sig.node, tanh, vec![Some(x)])
    }

    #[test]
    fn applies_and_merges_provenance_in_the_listed_order() {
        let (mut g, [x, relu, sig]) = chain();
        let mut rw = Rewriter::new(&mut g, "test_pass", None);
        assert!(rw.apply(fuse(relu, sig, x).reading(vec![relu.node, sig.node])));
        assert_eq!(rw.applied(), 1);
        assert!(!g.contains(relu.node));
        let n = g.node(sig.node);
        assert_eq!(n.op, Op::Unary(UnaryOp::Tanh));
        assert_eq!(n.name, "sig");
        assert_eq!(n.provenance.origins, [OriginId(1), OriginId(2)]);
        assert_eq!(n.provenance.made_by.as_deref(), Some("test_pass"));
        assert_eq!(g.input(sig.node, 0), Some(x));
    }

    #[test]
    fn an_interior_value_read_elsewhere_blocks_the_rewrite() {
        let (mut g, [x, relu, sig]) = chain();
        g.outputs.push(GraphOutput {
            name: "r".into(),
            value: relu,
        });
        let before = g.node_count();
        let mut rw = Rewriter::new(&mut g, "test_pass", None);
        assert!(!rw.apply(fuse(relu, sig, x)));
        assert_eq!(rw.applied(), 0);
        assert_eq!(g.node_count(), before);
        assert_eq!(g.node(sig.node).op, Op::Unary(UnaryOp::Sigmoid));
    }

    #[test]
    fn a_replacement_of_another_type_is_blocked_and_what_it_built_removed() {
        let (mut g, [x, relu, sig]) = chain();
        let before = g.node_count();
        let mut rw = Rewriter::new(&mut g, "test_pass", None);
        // `x + c` with a `[2, 1, 4]` constant would broadcast `[1, 4]` to rank 3.
        let widened = Rewrite::new(vec![sig.node, relu.node], sig.node, move |p| {
            let c = p.constant(
                "c".into(),
                Weight::from_f32(vec![2, 1, 4], &[0.0; 8]),
                Layout::Any,
            );
            Replacement::Reuse {
                node: sig.node,
                op: Op::Binary(BinaryOp::Add),
                inputs: vec![Some(x), Some(c)],
            }
        });
        assert!(!rw.apply(widened));
        assert_eq!(g.node_count(), before);
        assert_eq!(g.input(sig.node, 0), Some(relu));
    }

    #[test]
    fn the_budget_stops_rewrites_one_by_one() {
        let (mut g, [x, relu, sig]) = chain();
        let mut rw = Rewriter::new(&mut g, "test_pass", Some(1));
        let identity = |v: ValueRef, by: ValueRef| {
            Rewrite::new(vec![v.node], v.node, move |_| Replacement::Value(by))
        };
        assert!(rw.apply(identity(relu, x)));
        assert!(rw.spent() && rw.step().is_none());
        assert!(!rw.apply(identity(sig, x)));
        assert_eq!(rw.applied(), 1);
        assert_eq!(g.outputs[0].value, sig);
        assert_eq!(g.input(sig.node, 0), Some(x));
    }
}
