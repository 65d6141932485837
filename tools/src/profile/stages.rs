//! The stage map: which stage of a detector (preprocess, backbone, neck, head, postprocess) each
//! layer belongs to, inferred from the graph's structure or read from a YAML file.
//!
//! # Inferred
//!
//! A *convolution* is a Conv, ConvTranspose or DeformConv layer. Every layer lands in exactly one
//! stage, by these rules, in order:
//!
//! 1. **preprocess**: a layer that is not a convolution, has no convolution upstream and feeds
//!    one (casts, normalization, layout transposes of the input).
//! 2. **postprocess**: a layer that is not a convolution and feeds none: everything after the
//!    last convolution on its path (box decoding, score reshapes, NMS), and side computations
//!    that only serve it (image size over scale factor).
//! 3. The remaining layers are the network. A *join* is a layer that merges computed tensors
//!    (Concat, Add, a convolution with a fused residual) or upsamples (a Resize that enlarges,
//!    a ConvTranspose with a stride above 1). **head**: a network layer that is not a join and
//!    has no join downstream in the network: the per-level towers and prediction convolutions
//!    after the last merge of scales. (In an FPN without a bottom-up path, YOLOv3's, the finest
//!    level's last block therefore counts as head: nothing merges after it.)
//! 4. **backbone**: a remaining network layer upstream of the first upsampling (in topological
//!    order) and not downstream of it: the feature extractor up to the deepest scale, with the
//!    layers that feed the top-down path. With no upsampling at all, every remaining network
//!    layer is backbone.
//! 5. **neck**: the other network layers (the top-down and bottom-up paths, laterals, extra
//!    levels).
//!
//! A graph with no convolution has no such structure: all its layers are backbone.
//!
//! # From a file (`--stages FILE`)
//!
//! ```yaml
//! stages:
//!   - name: backbone
//!     until: relu_18.tmp_0            # a layer name, or a list of them
//!   - name: neck
//!     until: [leaky_relu_5.tmp_0, leaky_relu_12.tmp_0]
//!   - name: rest                      # no `until`: everything not taken yet
//! ```
//!
//! Stages are taken in order: each takes its `until` layers and every layer upstream of them
//! that no earlier stage took. A stage without `until` takes all the remaining layers, so it
//! can only be the last; layers no stage takes form a final stage `other`. Layer names are the
//! graph's (the `name` of a layer in `compile.prototxt`, the names `temblor profile` lists).

use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use temblor_ir::{BinaryOp, Error, Graph, NodeId, Op, Result, ValueRef};

/// The stage names of an inferred map, in pipeline order.
pub const INFERRED_STAGES: [&str; 5] = ["preprocess", "backbone", "neck", "head", "postprocess"];

const PREPROCESS: usize = 0;
const BACKBONE: usize = 1;
const NECK: usize = 2;
const HEAD: usize = 3;
const POSTPROCESS: usize = 4;

/// The stage of every layer of one graph.
#[derive(Clone, Debug)]
pub struct StageMap {
    names: Vec<String>,
    stage: HashMap<NodeId, usize>,
}

impl StageMap {
    /// The stages the graph's structure suggests (the module doc gives the rules).
    pub fn infer(g: &Graph) -> Result<StageMap> {
        let layers = Layers::of(g)?;
        let stages = infer_stages(g, &layers);
        Ok(StageMap {
            names: INFERRED_STAGES.iter().map(|s| s.to_string()).collect(),
            stage: layers.ids.iter().copied().zip(stages).collect(),
        })
    }

    /// The stages a YAML file gives (format in the module doc).
    pub fn read(g: &Graph, path: &Path) -> Result<StageMap> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::usage(format!("--stages {}: {e}", path.display())))?;
        StageMap::from_yaml(g, &text, &path.display().to_string())
    }

    /// [`StageMap::read`] on the file's text; `file` names it in errors.
    pub fn from_yaml(g: &Graph, text: &str, file: &str) -> Result<StageMap> {
        let doc: StagesFile = serde_saphyr::from_str(text)
            .map_err(|e| Error::usage(format!("{file}: not a stage file: {e}")))?;
        let layers = Layers::of(g)?;
        assign_from_file(&layers, &doc.stages, file)
    }

    /// The stage names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The stage of layer `id`; `None` for graph inputs, constants and nodes of another graph.
    pub fn stage_of(&self, id: NodeId) -> Option<&str> {
        self.stage.get(&id).map(|&s| self.names[s].as_str())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StagesFile {
    stages: Vec<StageSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageSpec {
    name: String,
    until: Option<OneOrMany>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn names(&self) -> &[String] {
        match self {
            OneOrMany::One(name) => std::slice::from_ref(name),
            OneOrMany::Many(names) => names,
        }
    }
}

/// The layers of a graph in topological order (the CPU plan's step order), with their edges as
/// positions in that order.
struct Layers {
    ids: Vec<NodeId>,
    names: Vec<String>,
    producers: Vec<Vec<usize>>,
    consumers: Vec<Vec<usize>>,
}

impl Layers {
    fn of(g: &Graph) -> Result<Layers> {
        let ids = g.layer_order().map_err(|n| {
            Error::bad_input(format!(
                "graph '{}' has a cycle through {}",
                g.name,
                g.describe(n)
            ))
        })?;
        let pos: HashMap<NodeId, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        let producers = ids
            .iter()
            .map(|&id| {
                g.inputs_of(id)
                    .into_iter()
                    .flatten()
                    .filter_map(|v| pos.get(&v.node).copied())
                    .collect()
            })
            .collect();
        let consumers = ids
            .iter()
            .map(|&id| {
                (0..g.node(id).outputs.len())
                    .flat_map(|port| g.consumers(ValueRef::new(id, port)))
                    .filter_map(|(c, _)| pos.get(&c).copied())
                    .collect()
            })
            .collect();
        let names = ids.iter().map(|&id| g.node(id).name.clone()).collect();
        Ok(Layers {
            ids,
            names,
            producers,
            consumers,
        })
    }

    /// The positions of the layers called `name` (names are not unique in every graph).
    fn named(&self, name: &str, stage: &str, file: &str) -> Result<Vec<usize>> {
        let found: Vec<usize> = (0..self.ids.len())
            .filter(|&i| self.names[i] == name)
            .collect();
        if found.is_empty() {
            return Err(Error::usage(format!(
                "{file}: stage '{stage}' ends at layer '{name}', which the graph does not have \
                 (layer names are those `temblor profile` lists)"
            )));
        }
        Ok(found)
    }

    /// `seed` spread to every layer downstream of a marked one (forward in topological order).
    fn downstream(&self, seed: impl Fn(usize) -> bool) -> Vec<bool> {
        let mut mark = vec![false; self.ids.len()];
        for i in 0..self.ids.len() {
            mark[i] = seed(i) || self.producers[i].iter().any(|&p| mark[p]);
        }
        mark
    }

    /// `seed` spread to every layer upstream of a marked one (backward in topological order).
    fn upstream(&self, seed: impl Fn(usize) -> bool) -> Vec<bool> {
        let mut mark = vec![false; self.ids.len()];
        for i in (0..self.ids.len()).rev() {
            mark[i] = seed(i) || self.consumers[i].iter().any(|&c| mark[c]);
        }
        mark
    }
}

fn is_conv(op: &Op) -> bool {
    matches!(op, Op::Conv(_) | Op::ConvTranspose(_) | Op::DeformConv(_))
}

/// A layer that merges two computed tensors: the meeting of two paths.
fn is_merge(g: &Graph, id: NodeId) -> bool {
    let computed = g
        .inputs_of(id)
        .into_iter()
        .flatten()
        .filter(|v| g.node(v.node).op.is_layer())
        .count();
    match &g.node(id).op {
        Op::Concat { .. } | Op::Binary(BinaryOp::Add) => computed >= 2,
        Op::Conv(_) => g.input(id, 3).is_some(),
        _ => false,
    }
}

/// A layer that enlarges its input's spatial extent.
fn is_upsampling(g: &Graph, id: NodeId) -> bool {
    match &g.node(id).op {
        Op::ConvTranspose(a) => a.strides.iter().any(|&s| s > 1),
        Op::Resize(_) => enlarges(g, id),
        _ => false,
    }
}

/// Whether a Resize's output has more spatial positions than its input; an unknown extent is
/// taken as an enlargement, what a Resize inside a detector almost always is.
fn enlarges(g: &Graph, id: NodeId) -> bool {
    let area = |v: ValueRef| {
        let dims = g.value_type(v).shape.dims();
        dims.len().checked_sub(2).and_then(|from| {
            dims[from..]
                .iter()
                .map(|d| d.known())
                .product::<Option<usize>>()
        })
    };
    let Some(input) = g.input(id, 0) else {
        return false;
    };
    match (area(input), area(ValueRef::new(id, 0))) {
        (Some(before), Some(after)) => after > before,
        _ => true,
    }
}

fn infer_stages(g: &Graph, layers: &Layers) -> Vec<usize> {
    let n = layers.ids.len();
    let op = |i: usize| &g.node(layers.ids[i]).op;
    let conv: Vec<bool> = (0..n).map(|i| is_conv(op(i))).collect();
    if !conv.contains(&true) {
        return vec![BACKBONE; n];
    }
    let conv_up = layers.downstream(|i| layers.producers[i].iter().any(|&p| conv[p]));
    let conv_down = layers.upstream(|i| layers.consumers[i].iter().any(|&c| conv[c]));
    let mut stage: Vec<Option<usize>> = (0..n)
        .map(|i| match (conv[i], conv_up[i], conv_down[i]) {
            (false, false, true) => Some(PREPROCESS),
            (false, _, false) => Some(POSTPROCESS),
            _ => None,
        })
        .collect();
    let network = |stage: &[Option<usize>], i: usize| stage[i].is_none();
    let upsampling: Vec<bool> = (0..n)
        .map(|i| network(&stage, i) && is_upsampling(g, layers.ids[i]))
        .collect();
    let join: Vec<bool> = (0..n)
        .map(|i| upsampling[i] || (network(&stage, i) && is_merge(g, layers.ids[i])))
        .collect();
    let join_below = layers.upstream(|i| layers.consumers[i].iter().any(|&c| join[c]));
    for i in 0..n {
        if network(&stage, i) && !join[i] && !join_below[i] {
            stage[i] = Some(HEAD);
        }
    }
    let (above, below) = match upsampling.iter().position(|&u| u) {
        Some(u) => (layers.upstream(|i| i == u), layers.downstream(|i| i == u)),
        None => (vec![true; n], vec![false; n]),
    };
    stage
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            Some(s) => *s,
            None if above[i] && !below[i] => BACKBONE,
            None => NECK,
        })
        .collect()
}

fn assign_from_file(layers: &Layers, specs: &[StageSpec], file: &str) -> Result<StageMap> {
    if specs.is_empty() {
        return Err(Error::usage(format!("{file}: `stages` lists no stage")));
    }
    let mut names: Vec<String> = Vec::with_capacity(specs.len() + 1);
    let mut stage: Vec<Option<usize>> = vec![None; layers.ids.len()];
    for (s, spec) in specs.iter().enumerate() {
        if names.contains(&spec.name) {
            return Err(Error::usage(format!(
                "{file}: stage '{}' is listed twice",
                spec.name
            )));
        }
        names.push(spec.name.clone());
        let Some(until) = &spec.until else {
            if let Some(next) = specs.get(s + 1) {
                return Err(Error::usage(format!(
                    "{file}: stage '{}' has no `until`, so it takes every remaining layer; \
                     stage '{}' after it would be empty",
                    spec.name, next.name
                )));
            }
            stage
                .iter_mut()
                .filter(|t| t.is_none())
                .for_each(|t| *t = Some(s));
            continue;
        };
        let mut ends = Vec::new();
        for name in until.names() {
            ends.extend(layers.named(name, &spec.name, file)?);
        }
        for &e in &ends {
            if let Some(t) = stage[e] {
                return Err(Error::usage(format!(
                    "{file}: layer '{}' ends stage '{}' but is already in the earlier stage '{}'",
                    layers.names[e], spec.name, names[t]
                )));
            }
        }
        let reach = layers.upstream(|i| ends.contains(&i));
        for (t, r) in stage.iter_mut().zip(reach) {
            if r && t.is_none() {
                *t = Some(s);
            }
        }
    }
    let other = names
        .iter()
        .position(|n| n == "other")
        .unwrap_or(names.len());
    let assigned: Vec<usize> = stage.into_iter().map(|s| s.unwrap_or(other)).collect();
    if other == names.len() && assigned.contains(&other) {
        names.push("other".into());
    }
    Ok(StageMap {
        names,
        stage: layers.ids.iter().copied().zip(assigned).collect(),
    })
}
