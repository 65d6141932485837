//! The compiled package: a directory that `run` (and later `bench`, `profile`) loads without the
//! source model. `package.json` holds the graph (nodes in topological order, each input as the
//! producing node's position and port), `weights.bin` the referenced weights, 64-byte aligned,
//! memory-mapped on load.
//!
//! Beside them, what a user would otherwise have to restate, each absent from packages written
//! before it was recorded (readers treat a missing file as "not recorded"): `preprocess.yml`,
//! how the model wants its images in temblor's preprocessing YAML (`temblor_tools`'
//! `preprocess_config` reads and writes it), and `labels.txt`, its class names by class id, one a
//! line.
//!
//! Integrity: `package.json` records the BLAKE3 hash of `weights.bin` and, as its last field,
//! of its own text before that field, with the format and the temblor version that wrote it.
//! [`load`] checks both before anything is used, so a flipped bit is an error naming the file,
//! never wrong numbers. The editable text files (`preprocess.yml`, `postprocess.yml`,
//! `labels.txt`: a person may tune a threshold) are not hashed; their readers check them.
//! Packages of format 1 (written before hashes) load with a warning.

use crate::AttrValue;
use crate::DType;
use crate::Error;
use crate::Graph;
use crate::GraphOutput;
use crate::LibOp;
use crate::Node;
use crate::NodeId;
use crate::Op;
use crate::Origin;
use crate::Placement;
use crate::Provenance;
use crate::Result;
use crate::TensorInfo;
use crate::ValueRef;
use crate::Weight;
use crate::WeightId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

pub const MANIFEST: &str = "package.json";
pub const WEIGHTS: &str = "weights.bin";
pub const PREPROCESS: &str = "preprocess.yml";
pub const LABELS: &str = "labels.txt";
pub const POSTPROCESS: &str = "postprocess.yml";
const FORMAT: &str = "temblor-package-2";
/// The format before hashes were recorded; still read.
const FORMAT_UNHASHED: &str = "temblor-package-1";
const ALIGN: usize = 64;
/// The manifest's own hash is its last field, written as exactly this text around the hex
/// digest, so a reader finds it without parsing and hashes the bytes before it.
const SELF_HASH_HEAD: &str = ",\n  \"manifest_blake3\": \"";
const SELF_HASH_TAIL: &str = "\"\n}";
const HEX_LEN: usize = 64;

/// Whether [`load`] checks the recorded hashes (the CLI's `--no-verify-hashes` clears it).
static VERIFY_HASHES: AtomicBool = AtomicBool::new(true);

/// Makes every later [`load`] in this process check (`true`, the default) or skip the hashes.
pub fn set_verify_hashes(verify: bool) {
    VERIFY_HASHES.store(verify, Ordering::Relaxed);
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    /// The temblor that wrote it; absent from format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    temblor_version: Option<String>,
    /// BLAKE3 of `weights.bin`, hex; absent from format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weights_blake3: Option<String>,
    #[serde(flatten)]
    graph: GraphDoc,
    /// Every weight of the graph and of its bodies.
    weights: Vec<WeightDoc>,
}

/// A graph: the model's, or a body of a control-flow op (whose weight numbers index the same
/// table as the model's).
#[derive(Serialize, Deserialize)]
struct GraphDoc {
    name: String,
    inputs: Vec<usize>,
    outputs: Vec<OutputDoc>,
    nodes: Vec<NodeDoc>,
    origins: Vec<Origin>,
    /// The bodies of its control-flow ops, by [`crate::BodyId`]; absent from packages written
    /// before control flow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    bodies: Vec<GraphDoc>,
}

#[derive(Serialize, Deserialize)]
struct OutputDoc {
    name: String,
    node: usize,
    port: usize,
}

#[derive(Serialize, Deserialize)]
struct NodeDoc {
    name: String,
    op: Op,
    outputs: Vec<TensorInfo>,
    inputs: Vec<Option<(usize, usize)>>,
    source_attrs: Vec<(String, AttrValue)>,
    provenance: Provenance,
    placement: Option<Placement>,
}

#[derive(Serialize, Deserialize)]
struct WeightDoc {
    dtype: DType,
    dims: Vec<usize>,
    offset: usize,
    len: usize,
}

/// True when `path` is a directory holding a package.
pub fn is_package(path: &Path) -> bool {
    path.join(MANIFEST).is_file()
}

/// Writes `g` as a package into the existing directory `dir`. Only weights still referenced by a
/// Constant node are kept, renumbered in order of first use.
pub fn write(g: &Graph, dir: &Path) -> Result<()> {
    let mut blob: Vec<u8> = Vec::new();
    let mut weights = Vec::new();
    let graph = graph_doc(g, &mut blob, &mut weights)?;
    let manifest = Manifest {
        format: FORMAT.into(),
        temblor_version: Some(env!("CARGO_PKG_VERSION").into()),
        weights_blake3: Some(hash(&blob)),
        graph,
        weights,
    };
    let mut json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Error::internal(format!("cannot serialize the package: {e}")))?;
    // The pretty text ends in "\n}"; the self hash replaces that end, covering what precedes it.
    let body_end = json.len() - "\n}".len();
    let digest = hash(json.as_bytes());
    json.truncate(body_end);
    json.push_str(SELF_HASH_HEAD);
    json.push_str(&digest);
    json.push_str(SELF_HASH_TAIL);
    let io = |e: std::io::Error| Error::internal(format!("cannot write the package: {e}"));
    std::fs::write(dir.join(WEIGHTS), blob).map_err(io)?;
    std::fs::write(dir.join(MANIFEST), json).map_err(io)
}

/// BLAKE3 of `bytes` as hex; large inputs are hashed on every core (a 100 MB weight file in
/// about 10 ms).
fn hash(bytes: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    if bytes.len() >= 1 << 20 {
        h.update_rayon(bytes);
    } else {
        h.update(bytes);
    }
    h.finalize().to_hex().to_string()
}

/// The manifest text without its self hash, and that hash, when the text ends in one.
fn split_self_hash(text: &[u8]) -> Option<(Vec<u8>, &str)> {
    let tail_at = text.len().checked_sub(SELF_HASH_TAIL.len())?;
    let hex_at = tail_at.checked_sub(HEX_LEN)?;
    let head_at = hex_at.checked_sub(SELF_HASH_HEAD.len())?;
    if &text[tail_at..] != SELF_HASH_TAIL.as_bytes()
        || &text[head_at..hex_at] != SELF_HASH_HEAD.as_bytes()
    {
        return None;
    }
    let digest = std::str::from_utf8(&text[hex_at..tail_at]).ok()?;
    let mut body = text[..head_at].to_vec();
    body.extend_from_slice(b"\n}");
    Some((body, digest))
}

/// `g` as a document, its weights appended to `blob` and `weights`.
fn graph_doc(g: &Graph, blob: &mut Vec<u8>, weights: &mut Vec<WeightDoc>) -> Result<GraphDoc> {
    let order = g
        .topo_order()
        .map_err(|n| Error::internal(format!("cycle through {}", g.describe(n))))?;
    let position: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let mut renumbered: HashMap<WeightId, WeightId> = HashMap::new();
    let mut nodes = Vec::with_capacity(order.len());
    for &id in &order {
        let node = g.node(id);
        let mut op = node.op.clone();
        if let Op::Constant { weight } = &mut op {
            let w = g
                .weights
                .get(*weight)
                .ok_or_else(|| Error::internal(format!("{} has no weight", g.describe(id))))?;
            let new_id = *renumbered.entry(*weight).or_insert_with(|| {
                blob.resize(blob.len().next_multiple_of(ALIGN), 0);
                weights.push(WeightDoc {
                    dtype: w.dtype,
                    dims: w.dims.clone(),
                    offset: blob.len(),
                    len: w.data.len(),
                });
                blob.extend_from_slice(&w.data);
                WeightId(weights.len() as u32 - 1)
            });
            *weight = new_id;
        }
        nodes.push(NodeDoc {
            name: node.name.clone(),
            op,
            outputs: node.outputs.clone(),
            inputs: g
                .inputs_of(id)
                .into_iter()
                .map(|v| v.map(|v| (position[&v.node], v.port)))
                .collect(),
            source_attrs: node.source_attrs.clone(),
            provenance: node.provenance.clone(),
            placement: node.placement,
        });
    }
    let bodies = g
        .bodies
        .iter()
        .map(|b| graph_doc(b, blob, weights))
        .collect::<Result<Vec<_>>>()?;
    Ok(GraphDoc {
        name: g.name.clone(),
        inputs: g.inputs.iter().map(|n| position[n]).collect(),
        outputs: g
            .outputs
            .iter()
            .map(|o| OutputDoc {
                name: o.name.clone(),
                node: position[&o.value.node],
                port: o.value.port,
            })
            .collect(),
        nodes,
        origins: g.origins.clone(),
        bodies,
    })
}

/// Loads a package directory back into a graph, checking its hashes (unless
/// [`set_verify_hashes`] turned that off), every index and byte range.
pub fn load(dir: &Path) -> Result<Graph> {
    let verify = VERIFY_HASHES.load(Ordering::Relaxed);
    let fail = |what: String| Error::bad_input(format!("package {}: {what}", dir.display()));
    let corrupt = |file: &str, what: &str| {
        fail(format!(
            "{file} is corrupt: {what} (the file changed after it was written; \
             --no-verify-hashes loads it anyway)"
        ))
    };
    let text = std::fs::read(dir.join(MANIFEST))
        .map_err(|e| fail(format!("cannot read {MANIFEST}: {e}")))?;
    let self_hash = split_self_hash(&text);
    if verify {
        if let Some((body, recorded)) = &self_hash {
            if hash(body) != *recorded {
                return Err(corrupt(
                    MANIFEST,
                    "its BLAKE3 differs from the one it records",
                ));
            }
        }
    }
    let m: Manifest =
        serde_json::from_slice(&text).map_err(|e| fail(format!("corrupt {MANIFEST}: {e}")))?;
    match m.format.as_str() {
        FORMAT => {}
        FORMAT_UNHASHED => eprintln!(
            "warning: package {} was written before packages recorded hashes ({}): its files \
             cannot be checked for corruption; compile it again to record them",
            dir.display(),
            m.format
        ),
        other => {
            return Err(fail(format!(
                "format '{other}'{}, this temblor ({}) reads '{FORMAT}' and \
                 '{FORMAT_UNHASHED}': compile the model again with this temblor",
                m.temblor_version
                    .as_ref()
                    .map_or(String::new(), |v| format!(" written by temblor {v}")),
                env!("CARGO_PKG_VERSION")
            )))
        }
    }
    if verify && m.format == FORMAT && (self_hash.is_none() || m.weights_blake3.is_none()) {
        return Err(corrupt(
            MANIFEST,
            "it does not hold the hashes its format records",
        ));
    }
    let file = std::fs::File::open(dir.join(WEIGHTS))
        .map_err(|e| fail(format!("cannot open {WEIGHTS}: {e}")))?;
    // SAFETY: the package is temblor's own output and is only read; a concurrent writer
    // truncating it is outside what any loader can defend against.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| fail(format!("cannot map {WEIGHTS}: {e}")))?;
    let blob = Bytes::from_owner(map);
    if verify {
        if let Some(recorded) = &m.weights_blake3 {
            if hash(&blob) != *recorded {
                return Err(corrupt(
                    WEIGHTS,
                    "its BLAKE3 differs from package.json's record",
                ));
            }
        }
    }

    let mut table = Vec::with_capacity(m.weights.len());
    for (i, w) in m.weights.iter().enumerate() {
        let end = w.offset.checked_add(w.len).filter(|&e| e <= blob.len());
        let expected = w
            .dims
            .iter()
            .try_fold(w.dtype.size_bytes(), |a, &d| a.checked_mul(d));
        table.push(match end {
            Some(end) if Some(w.len) == expected => Weight {
                dtype: w.dtype,
                dims: w.dims.clone(),
                data: blob.slice(w.offset..end),
            },
            // A graph-only model's weights are known by shape alone (`Weight::shape_only`).
            Some(_) if w.len == 0 => Weight::shape_only(w.dtype, w.dims.clone()),
            _ => {
                return Err(fail(format!(
                    "weight {i} lies outside {WEIGHTS} or has the wrong size"
                )))
            }
        });
    }
    let g = graph(&m.graph, &table).map_err(fail)?;
    crate::validate(&g).map_err(|e| fail(format!("inconsistent graph: {e}")))?;
    Ok(g)
}

/// The graph `doc` describes; each graph holds the whole weight table, so the weight numbers
/// of its Constant nodes stay valid (the weights themselves are slices of one mapped file).
fn graph(doc: &GraphDoc, table: &[Weight]) -> std::result::Result<Graph, String> {
    let mut g = Graph::new(doc.name.clone());
    g.origins = doc.origins.clone();
    for w in table {
        g.weights.add(w.clone());
    }
    let limits = crate::limits::Limits::get();
    let mut ids = Vec::with_capacity(doc.nodes.len());
    for n in &doc.nodes {
        // A package claiming an absurd value would otherwise reach the runtime's memory plan.
        for o in &n.outputs {
            let dims: Vec<usize> = o.ty.shape.dims().iter().filter_map(|d| d.known()).collect();
            limits
                .check_value(&dims, o.ty.dtype.size_bytes())
                .map_err(|e| format!("node '{}', output '{}': {e}", n.name, o.name))?;
        }
        let op = typed(&n.op).map_err(|e| format!("node '{}': {e}", n.name))?;
        let mut node = Node::new(n.name.clone(), op, n.outputs.clone());
        node.source_attrs = n.source_attrs.clone();
        node.provenance = n.provenance.clone();
        node.placement = n.placement;
        ids.push(g.add_node(node));
    }
    let value = |node: usize, port: usize| -> std::result::Result<ValueRef, String> {
        let id = *ids
            .get(node)
            .ok_or_else(|| format!("node index {node} out of range"))?;
        Ok(ValueRef::new(id, port))
    };
    for (n, &id) in doc.nodes.iter().zip(&ids) {
        for (port, input) in n.inputs.iter().enumerate() {
            if let Some((node, out_port)) = *input {
                g.connect(value(node, out_port)?, id, port);
            }
        }
    }
    for &i in &doc.inputs {
        g.inputs.push(value(i, 0)?.node);
    }
    for o in &doc.outputs {
        g.outputs.push(GraphOutput {
            value: value(o.node, o.port)?,
            name: o.name.clone(),
        });
    }
    for b in &doc.bodies {
        let body = graph(b, table)?;
        g.add_body(body);
    }
    Ok(g)
}

/// Packages written before ops_lib operators were typed in the IR (issue 14) hold them as
/// `Op::Custom` in ops_lib's domain with Paddle's attributes: they are parsed as import parses
/// them now, so those packages still run.
fn typed(op: &Op) -> std::result::Result<Op, String> {
    match op {
        Op::Custom {
            domain,
            name,
            attrs,
        } if domain == LibOp::DOMAIN => Ok(Op::Lib(LibOp::parse(name, attrs)?)),
        op => Ok(op.clone()),
    }
}
