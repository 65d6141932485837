//! PaddlePaddle frontend: legacy inference programs (ProgramDesc protobuf) and Paddle 3's PIR
//! programs (`inference.json`, which pir/ translates into a ProgramDesc first), with their
//! parameter files. The import reads top to bottom: find the files, decode the program, read the
//! parameters (checked against the program's variable declarations), then walk the main block:
//! `feed` ops declare the graph inputs, each other op is mapped by its family's file into
//! canonical IR nodes (an op with no mapping into an opaque node, so the model can still be
//! inspected and viewed), `while` loops are unrolled (control.rs), and `fetch` ops name the graph
//! outputs.
//!
//! Paddle variables may be written more than once (a loop counter, `assign` into an existing
//! name), so the importer keeps a scope from variable name to the value that last wrote it.

mod attrs;
mod bodies;
mod control;
mod conv;
mod creation;
mod ctx;
mod detection;
mod files;
mod linalg;
mod math;
mod movement;
mod ops;
mod params;
mod pir;
mod proto;

use files::Params;
use prost::Message;
use proto::{BlockDesc, OpDesc, ProgramDesc, VarDesc};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use temblor_ir::{
    Dim, Error, Framework, Graph, GraphOutput, Node, NodeId, Op, Origin, Provenance, Result, Shape,
    TensorInfo, TensorType, ValueRef, Weight,
};
use temblor_runtime::Tensor;

pub(super) fn load(path: &Path, input_dims: &[(String, Vec<usize>)]) -> Result<Graph> {
    let file = path.display().to_string();
    let bad = |msg: String| Error::bad_input(format!("{file}: {msg}"));
    let files = files::locate(path).map_err(bad)?;
    let program_file = files.program.display().to_string();
    let bad = |msg: String| Error::bad_input(format!("{program_file}: {msg}"));
    let bytes = params::map_file(&files.program).map_err(bad)?;
    if bytes.is_empty() {
        return Err(bad("the program file is empty".into()));
    }
    if files::is_pir(&bytes) || files.program.extension().is_some_and(|e| e == "json") {
        return pir::load(&bytes, &files, input_dims);
    }
    let program = ProgramDesc::decode(bytes).map_err(|e| {
        bad(format!(
            "not a Paddle program (corrupt or truncated ProgramDesc protobuf: {e})"
        ))
    })?;
    import(&program, &files, input_dims)
}

/// Imports a program (decoded, or translated from PIR) with the parameters `files` locates.
fn import(
    program: &ProgramDesc,
    files: &files::Files,
    input_dims: &[(String, Vec<usize>)],
) -> Result<Graph> {
    let program_file = files.program.display().to_string();
    let bad = |msg: String| Error::bad_input(format!("{program_file}: {msg}"));
    if program.blocks.first().is_none_or(|b| b.ops.is_empty()) {
        return Err(bad(
            "not a Paddle program (its main block holds no ops)".into()
        ));
    }
    let weights = read_params(program, &files.params).map_err(bad)?;
    if weights.is_none() {
        eprintln!(
            "warning: {program_file}: no parameter file next to the program; weights are shown by \
             shape alone, and the model can be compiled and viewed but not run"
        );
    }
    let mut imp = Importer::new(program, program_file, weights, input_dims);
    imp.facts(files);
    imp.block(0)?;
    imp.outputs()?;
    Ok(imp.g)
}

/// The persistable dense tensors of the main block, the variables a parameter file holds.
fn persistable(program: &ProgramDesc) -> Vec<&VarDesc> {
    let mut vars: Vec<&VarDesc> = program.blocks[0]
        .vars
        .iter()
        .filter(|v| v.persistable == Some(true) && params::tensor_desc(v).is_some())
        .filter(|v| v.name != "feed" && v.name != "fetch")
        .collect();
    vars.sort_by(|a, b| a.name.cmp(&b.name));
    vars
}

/// Parameters by variable name; `None` when the model comes without them (graph only).
fn read_params(
    program: &ProgramDesc,
    layout: &Params,
) -> std::result::Result<Option<HashMap<String, Weight>>, String> {
    let vars = persistable(program);
    let mut out = HashMap::new();
    match layout {
        Params::Missing => return Ok(None),
        Params::Combined(path) => {
            let shown = path.display();
            let mut reader =
                params::Reader::new(params::map_file(path).map_err(|e| format!("{shown}: {e}"))?);
            for var in &vars {
                let w = reader.tensor(var).map_err(|e| format!("{shown}: {e}"))?;
                out.insert(var.name.clone(), w);
            }
            if reader.remaining() > 0 {
                return Err(format!(
                    "{shown}: {} bytes are left after the program's {} parameters; \
                     the parameters belong to another model",
                    reader.remaining(),
                    vars.len()
                ));
            }
        }
        Params::Separate(dir) => {
            if !vars.iter().any(|v| dir.join(&v.name).is_file()) {
                return Ok(None);
            }
            for var in &vars {
                let path = dir.join(&var.name);
                let shown = path.display();
                let data = params::map_file(&path).map_err(|e| {
                    format!("{shown}: parameter '{}' of the program: {e}", var.name)
                })?;
                let w = params::Reader::new(data)
                    .tensor(var)
                    .map_err(|e| format!("{shown}: {e}"))?;
                out.insert(var.name.clone(), w);
            }
        }
    }
    Ok(Some(out))
}

pub(super) struct Importer<'p> {
    program: &'p ProgramDesc,
    file: String,
    g: Graph,
    /// Paddle variable name -> the IR value that last wrote it.
    scope: HashMap<String, ValueRef>,
    /// Tensor arrays (`write_to_array`), by variable.
    arrays: HashMap<String, control::Array>,
    /// The iteration number, while a loop body decided at run time is imported.
    iteration: Option<ValueRef>,
    /// Declared variables of every block, by name (inner blocks may shadow outer ones).
    vars: HashMap<&'p str, &'p VarDesc>,
    /// `None` for a graph-only model: weights are then shown by their declared shape alone.
    weights: Option<HashMap<String, Weight>>,
    names: super::names::Names,
    input_dims: Vec<(String, Vec<usize>)>,
    fetches: BTreeMap<i64, GraphOutput>,
}

impl<'p> Importer<'p> {
    fn new(
        program: &'p ProgramDesc,
        file: String,
        weights: Option<HashMap<String, Weight>>,
        input_dims: &[(String, Vec<usize>)],
    ) -> Importer<'p> {
        let vars = program
            .blocks
            .iter()
            .flat_map(|b| b.vars.iter())
            .map(|v| (v.name.as_str(), v))
            .collect();
        let stem = Path::new(&file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "paddle_program".into());
        Importer {
            program,
            file,
            g: Graph::new(stem),
            scope: HashMap::new(),
            arrays: HashMap::new(),
            iteration: None,
            vars,
            weights,
            names: Default::default(),
            input_dims: input_dims.to_vec(),
            fetches: BTreeMap::new(),
        }
    }

    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::bad_input(format!("{}: {msg}", self.file))
    }

    /// Facts `temblor inspect` shows about the source program.
    fn facts(&mut self, files: &files::Files) {
        let p = self.program;
        let mut facts = vec![
            (
                "format".to_string(),
                "paddle program (ProgramDesc)".to_string(),
            ),
            (
                "program_version".to_string(),
                p.version
                    .as_ref()
                    .and_then(|v| v.version)
                    .unwrap_or(0)
                    .to_string(),
            ),
            (
                "parameters".to_string(),
                match (&files.params, &self.weights) {
                    (_, None) => "none (graph only)".to_string(),
                    (Params::Combined(path), Some(w)) => {
                        format!("{} tensors in {}", w.len(), path.display())
                    }
                    (_, Some(w)) => format!("{} tensors, one file each", w.len()),
                },
            ),
        ];
        for b in &p.blocks {
            facts.push((
                format!("block {}", b.idx),
                format!(
                    "parent {}, {} ops, {} vars",
                    b.parent_idx,
                    b.ops.len(),
                    b.vars.len()
                ),
            ));
        }
        let main = &p.blocks[0];
        for (kind, param, output) in [("feed", "Out", true), ("fetch", "X", false)] {
            let names: Vec<String> = main
                .ops
                .iter()
                .filter(|o| o.r#type == kind)
                .flat_map(|o| args(o, param, output))
                .collect();
            facts.push((kind.to_string(), names.join(", ")));
        }
        self.g.facts = facts;
    }

    fn origin(&mut self, node_name: &str, op_type: &str) -> Provenance {
        Provenance::imported(self.g.add_origin(Origin {
            framework: Framework::Paddle,
            node_name: node_name.to_string(),
            op_type: op_type.to_string(),
            file: self.file.clone(),
        }))
    }

    fn block(&mut self, idx: usize) -> Result<()> {
        let program = self.program;
        let block: &BlockDesc = program
            .blocks
            .get(idx)
            .ok_or_else(|| self.err(format!("block {idx} does not exist")))?;
        for (index, op) in block.ops.iter().enumerate() {
            let at = describe(op, idx, index);
            let result = match op.r#type.as_str() {
                "feed" => self.feed(op),
                "fetch" => self.fetch(op),
                "while" => control::unroll(self, op),
                "conditional_block" => control::conditional_block(self, op),
                pir::IF_ELSE => bodies::if_else(self, op),
                t if !ops::supported(t) => ops::opaque(
                    &mut ctx::Ctx::new(self, op),
                    format!("block {idx}, op {index}"),
                ),
                _ => ops::map(&mut ctx::Ctx::new(self, op)),
            };
            result.map_err(|e| match e {
                Failure::Msg(m) => self.err(format!("{at}: {m}")),
                Failure::Err(e) => e,
            })?;
        }
        Ok(())
    }

    fn declared_type(&self, var: &str) -> std::result::Result<TensorType, String> {
        let desc = self
            .vars
            .get(var)
            .and_then(|v| params::tensor_desc(v))
            .ok_or_else(|| format!("variable '{var}' is not declared as a dense tensor"))?;
        let dtype = params::dtype(desc.data_type).map_err(|e| format!("variable '{var}': {e}"))?;
        let dims = desc
            .dims
            .iter()
            .map(|&d| {
                if d < 0 {
                    Dim::Unknown
                } else {
                    Dim::Known(d as usize)
                }
            })
            .collect();
        Ok(TensorType::new(dtype, Shape(dims)))
    }

    fn feed(&mut self, op: &'p OpDesc) -> std::result::Result<(), Failure> {
        let var = single(op, "Out", true)?;
        let mut ty = self.declared_type(&var)?;
        if let Some((_, dims)) = self.input_dims.iter().find(|(n, _)| *n == var) {
            if dims.len() == ty.shape.rank() {
                ty.shape = Shape::from_known(dims);
            }
        }
        let name = self.names.unique(&var);
        let mut node = Node::new(
            name.clone(),
            Op::Input {
                index: self.g.inputs.len(),
            },
            vec![TensorInfo {
                name: var.clone(),
                ty,
            }],
        );
        node.provenance = self.origin(&name, "feed");
        let id = self.g.add_node(node);
        self.g.inputs.push(id);
        self.scope.insert(var, ValueRef::new(id, 0));
        Ok(())
    }

    fn fetch(&mut self, op: &'p OpDesc) -> std::result::Result<(), Failure> {
        let var = single(op, "X", false)?;
        let col = attrs::Attrs(&op.attrs).int("col")?;
        let value = self.value(&var)?;
        self.fetches.insert(col, GraphOutput { name: var, value });
        Ok(())
    }

    fn outputs(&mut self) -> Result<()> {
        if self.fetches.is_empty() {
            return Err(self.err("the program has no fetch ops, so no outputs"));
        }
        self.g.outputs = std::mem::take(&mut self.fetches).into_values().collect();
        Ok(())
    }

    /// The value of `v` when it is static, after typing the graph built so far.
    fn static_value(&mut self, v: ValueRef) -> std::result::Result<Option<Tensor>, Failure> {
        temblor_infer::infer(&mut self.g)?;
        Ok(temblor_infer::evaluate::static_value(&self.g, v))
    }

    /// Fixes an open batch extent of the graph inputs to 1, for a loop whose trip count is the
    /// batch size; returns the inputs it fixed (empty when none had an open batch).
    fn fix_batch(&mut self) -> Vec<NodeId> {
        let mut fixed = Vec::new();
        for id in self.g.inputs.clone() {
            let info = &mut self.g.node_mut(id).outputs[0];
            if let Some(d @ Dim::Unknown) = info.ty.shape.0.first_mut() {
                *d = Dim::Known(1);
                fixed.push(id);
            }
        }
        fixed
    }

    /// Says on stderr that `fixed` (from [`Importer::fix_batch`]) stays fixed.
    fn keep_batch(&self, fixed: &[NodeId]) {
        let names: Vec<&str> = fixed
            .iter()
            .map(|&id| self.g.node(id).outputs[0].name.as_str())
            .collect();
        eprintln!(
            "warning: {}: a while loop runs once per image, so the batch of {} is fixed to 1 \
             (give --input NAME:DIMS for another batch size)",
            self.file,
            names.join(", ")
        );
    }

    /// Opens again the batch extents [`Importer::fix_batch`] fixed.
    fn open_batch(&mut self, fixed: &[NodeId]) {
        for &id in fixed {
            if let Some(d) = self.g.node_mut(id).outputs[0].ty.shape.0.first_mut() {
                *d = Dim::Unknown;
            }
        }
    }

    /// The value a variable holds now: the last write to it, or its parameter.
    fn value(&mut self, var: &str) -> std::result::Result<ValueRef, String> {
        if let Some(&v) = self.scope.get(var) {
            return Ok(v);
        }
        let Some(desc) = self.vars.get(var).copied() else {
            return Err(format!(
                "reads variable '{var}', which the program does not declare"
            ));
        };
        if desc.persistable != Some(true) {
            return Err(format!(
                "reads variable '{var}' before any op writes it and it is not a parameter"
            ));
        }
        let weight = match &self.weights {
            Some(w) => w
                .get(var)
                .cloned()
                .ok_or_else(|| format!("parameter '{var}' is missing from the parameter file"))?,
            None => {
                let ty = self.declared_type(var)?;
                let dims = ty.shape.known().ok_or_else(|| {
                    format!("parameter '{var}' has no static shape in the program")
                })?;
                Weight::shape_only(ty.dtype, dims)
            }
        };
        let v = self.constant(var, weight, "parameter");
        self.scope.insert(var.to_string(), v);
        Ok(v)
    }

    /// A constant node holding `weight`, named after `var`.
    fn constant(&mut self, var: &str, weight: Weight, op_type: &str) -> ValueRef {
        let ty = TensorType::new(weight.dtype, weight.shape());
        let id = self.g.weights.add(weight);
        let name = self.names.unique(var);
        let mut node = Node::new(
            name.clone(),
            Op::Constant { weight: id },
            vec![TensorInfo {
                name: name.clone(),
                ty,
            }],
        );
        node.provenance = self.origin(&name, op_type);
        ValueRef::new(self.g.add_node(node), 0)
    }
}

/// What an op mapping can fail with: a phrase the caller prefixes with the file and op, or an
/// error already complete (from a nested block).
pub(super) enum Failure {
    Msg(String),
    Err(Error),
}

impl From<String> for Failure {
    fn from(m: String) -> Failure {
        Failure::Msg(m)
    }
}

impl From<&str> for Failure {
    fn from(m: &str) -> Failure {
        Failure::Msg(m.to_string())
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Err(e)
    }
}

/// The arguments of an op's input (or output) parameter.
pub(super) fn args(op: &OpDesc, param: &str, output: bool) -> Vec<String> {
    let list = if output { &op.outputs } else { &op.inputs };
    list.iter()
        .find(|v| v.parameter == param)
        .map(|v| v.arguments.clone())
        .unwrap_or_default()
}

fn single(op: &OpDesc, param: &str, output: bool) -> std::result::Result<String, String> {
    match args(op, param, output).as_slice() {
        [one] => Ok(one.clone()),
        other => Err(format!(
            "{} '{param}' has {} arguments, expected 1",
            if output { "output" } else { "input" },
            other.len()
        )),
    }
}

/// The variable an op is known by: its result (`Out`, `Output` or `Y`), else its first output.
/// Paddle lists outputs by parameter name, so batch_norm's `MeanOut` would otherwise come first.
pub(super) fn main_output(op: &OpDesc) -> Option<&str> {
    let first = |param: &str| {
        op.outputs
            .iter()
            .find(|v| v.parameter == param)
            .and_then(|v| v.arguments.first())
    };
    ["Out", "Output", "Y"]
        .into_iter()
        .find_map(first)
        .or_else(|| op.outputs.iter().flat_map(|v| v.arguments.first()).next())
        .map(String::as_str)
}

/// `op 'conv2d' (block 0, op 12, writes conv2d_0.tmp_0)`: Paddle ops have no names, so an op is
/// known by its position and the first variable it writes.
fn describe(op: &OpDesc, block: usize, index: usize) -> String {
    if let Some(at) = op.attrs.iter().find(|a| a.name == pir::POSITION) {
        return at.s.clone().unwrap_or_default();
    }
    let first = main_output(op)
        .map(|s| format!(", writes {s}"))
        .unwrap_or_default();
    format!("op '{}' (block {block}, op {index}{first})", op.r#type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/models/paddle/paddle_basic")
    }

    /// The same model in Paddle's three layouts gives the same graph and weights: the combined
    /// `model.pdmodel` + `model.pdiparams` as exported, and derived from it a `__model__` with
    /// `__params__`, and a `__model__` with one parameter file per variable.
    #[test]
    fn the_three_layouts_load_the_same_weights() {
        let program_bytes = std::fs::read(basic().join("model.pdmodel")).unwrap();
        let params_bytes = std::fs::read(basic().join("model.pdiparams")).unwrap();
        let reference = load(&basic().join("model.pdmodel"), &[]).unwrap();

        let combined = tempfile::tempdir().unwrap();
        std::fs::write(combined.path().join("__model__"), &program_bytes).unwrap();
        std::fs::write(combined.path().join("__params__"), &params_bytes).unwrap();

        let separate = tempfile::tempdir().unwrap();
        std::fs::write(separate.path().join("__model__"), &program_bytes).unwrap();
        let program = ProgramDesc::decode(&program_bytes[..]).unwrap();
        let mut reader = params::Reader::new(params_bytes.clone().into());
        for var in persistable(&program) {
            let start = reader.offset();
            reader.tensor(var).unwrap();
            let record = &params_bytes[start..reader.offset()];
            std::fs::write(separate.path().join(&var.name), record).unwrap();
        }

        let weights = |g: &Graph| -> Vec<(Vec<usize>, Vec<u8>)> {
            g.weights
                .iter()
                .map(|(_, w)| (w.dims.clone(), w.data.to_vec()))
                .collect()
        };
        for dir in [combined.path(), separate.path()] {
            let g = load(dir, &[]).unwrap();
            assert_eq!(weights(&g), weights(&reference), "{}", dir.display());
            assert_eq!(g.op_counts(), reference.op_counts());
        }
    }
}
