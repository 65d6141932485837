//! Which values of two graphs of one model hold the same tensor, found through provenance.
//!
//! Every layer node carries the source-model nodes whose computation it performs (a fused
//! Conv+BN+Relu carries all three). The *cone* of a value is the set of source nodes computed on
//! the way to it: its producer's origins and those of every layer upstream. Two values with the
//! same cone computed the same function of the inputs, so they are comparable: the fused node's
//! output meets the Relu output of the unfused graph, while the unfused Conv and BN outputs, which
//! the fused graph never materializes, meet nothing. Values are read where they already are, so
//! no fusion is undone to see them.
//!
//! Only source nodes that both graphs still carry count: a node one graph removed (an Identity,
//! a folded shape computation) would otherwise make every cone below it differ. Constants count
//! for nothing, since folding moves their origins around without computing anything new. Nodes
//! that precision legalization inserts (QuantizeLinear, DequantizeLinear, Cast) have no origins,
//! so their outputs share the cone of their input; the first value of a cone in topological
//! order, the layer's own output, stands for it.

use std::collections::{BTreeSet, HashMap, HashSet};
use temblor_ir::{Error, Graph, NodeId, Origin, Result, ValueRef};

/// The values two graphs share, paired.
#[derive(Clone, Debug, Default)]
pub struct Matching {
    /// (value of B, value of A), in B's topological order.
    pub pairs: Vec<(ValueRef, ValueRef)>,
    /// How many layer nodes each graph has (A, B).
    pub layers: (usize, usize),
}

impl Matching {
    /// B's matched values, each mapped to its partner in A. A value of B not in it (a
    /// quantize/dequantize or cast output, a value A lacks) has no partner.
    pub fn partner(&self) -> HashMap<ValueRef, ValueRef> {
        self.pairs.iter().copied().collect()
    }
}

/// A source node as both graphs name it (the model file's path is left out, so a model that
/// moved between two compiles still matches itself).
fn origin_key(o: &Origin) -> (&str, &str, &str) {
    (o.framework.name(), o.node_name.as_str(), o.op_type.as_str())
}

/// The origin keys of the layer nodes of `g`.
fn layer_origins(g: &Graph) -> BTreeSet<(&str, &str, &str)> {
    g.node_ids()
        .filter(|&id| g.node(id).op.is_layer())
        .flat_map(|id| g.node(id).provenance.origins.iter())
        .filter_map(|&o| g.origin(o).map(origin_key))
        .collect()
}

/// A cone as a bitset over the shared origins, with the output port, so the outputs of one
/// multi-output node stay apart.
type Key = (Vec<u64>, usize);

/// The key of every value of `g` that is computed from a graph input by a layer whose cone holds
/// a shared origin, in topological order; the first value of each key only.
fn representatives(
    g: &Graph,
    shared: &HashMap<(&str, &str, &str), usize>,
) -> Result<Vec<(Key, ValueRef)>> {
    let order = g
        .topo_order()
        .map_err(|n| Error::internal(format!("cycle through {}", g.describe(n))))?;
    let words = shared.len().div_ceil(64);
    let mut cone: HashMap<NodeId, (Vec<u64>, bool)> = HashMap::new();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for id in order {
        let node = g.node(id);
        let mut bits = vec![0u64; words];
        let mut fed = matches!(node.op, temblor_ir::Op::Input { .. });
        for v in g.inputs_of(id).into_iter().flatten() {
            let (b, f) = &cone[&v.node];
            bits.iter_mut().zip(b).for_each(|(x, y)| *x |= y);
            fed |= f;
        }
        if node.op.is_layer() {
            for o in node.provenance.origins.iter().filter_map(|&o| g.origin(o)) {
                if let Some(&i) = shared.get(&origin_key(o)) {
                    bits[i / 64] |= 1 << (i % 64);
                }
            }
        }
        if node.op.is_layer() && fed && bits.iter().any(|&w| w != 0) {
            for port in 0..node.outputs.len() {
                let key = (bits.clone(), port);
                if seen.insert(key.clone()) {
                    out.push((key, ValueRef::new(id, port)));
                }
            }
        }
        cone.insert(id, (bits, fed));
    }
    Ok(out)
}

/// Pairs the values of `b` with the values of `a` that hold the same tensor. A usage error when
/// the graphs share none: they are not two graphs of one model.
/// `labels` name A and B in that error.
pub fn match_values(a: &Graph, b: &Graph, labels: [&str; 2]) -> Result<Matching> {
    let (in_a, in_b) = (layer_origins(a), layer_origins(b));
    let shared: HashMap<(&str, &str, &str), usize> = in_a
        .intersection(&in_b)
        .enumerate()
        .map(|(i, &k)| (k, i))
        .collect();
    let of_a: HashMap<Key, ValueRef> = representatives(a, &shared)?.into_iter().collect();
    let pairs: Vec<(ValueRef, ValueRef)> = representatives(b, &shared)?
        .into_iter()
        .filter_map(|(key, v)| of_a.get(&key).map(|&w| (v, w)))
        .collect();
    let layers = (a.layer_count(), b.layer_count());
    if pairs.is_empty() {
        return Err(Error::usage(format!(
            "{} ({} layers) and {} ({} layers) share no layer: no value of one comes from the \
             same source-model nodes as a value of the other, so they are not two graphs of one \
             model",
            labels[0], layers.0, labels[1], layers.1
        )));
    }
    Ok(Matching { pairs, layers })
}
