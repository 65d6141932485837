//! A PIR program written back as the legacy `ProgramDesc` it would have been, so one importer
//! maps both formats. PIR is SSA: each value is written once and named by an integer id; the
//! legacy program names variables and may write them again. The translation names every value
//! (`conv2d_23`), turns `builtin.combine`/`split` into the variadic parameters they stand for,
//! turns constant ops into the legacy attributes they replaced (rules.rs), and writes a
//! `pd_op.while` region as a legacy `while` sub-block whose block arguments are variables the
//! loop reassigns at its `cf.yield`.

mod regions;

use super::json::{Attr, Block, Operation, Program, Type};
use super::legacy::{
    boolean, bools, float64, float64s, floats, int, legacy_attr, legacy_op, long, longs,
    longs_named, number, position, string,
};
use super::rules::{self, In, Rule};
use crate::paddle::proto::{
    var_type::{LoDTensorArrayDesc, LoDTensorDesc, TensorDesc, Type as VarKind},
    BlockDesc, OpDesc, ProgramDesc, VarDesc, VarType, Version,
};
use std::collections::{HashMap, HashSet};

/// The attribute through which an op of the translated program tells the importer where it
/// came from, so messages point into `inference.json`, not into the translation.
pub(in crate::paddle) const POSITION: &str = "op_pir_position";

/// The op a `pd_op.if` becomes: no legacy Paddle op has both branches, so the importer takes
/// this one as its own structural op (a name no Paddle op can have).
pub(in crate::paddle) const IF_ELSE: &str = "pir.if";

/// PIR attributes that say nothing about what an op computes.
const BOOKKEEPING: [&str; 6] = [
    "place",
    "struct_name",
    "op_role",
    "op_dist_attr",
    "stop_gradient",
    "persistable",
];

/// The ops every PIR program may hold that have no rule but are translated here.
const STRUCTURAL: [&str; 15] = [
    "builtin.parameter",
    "builtin.combine",
    "builtin.split",
    "builtin.slice",
    "cf.yield",
    "pd_op.data",
    "pd_op.feed",
    "pd_op.fetch",
    "pd_op.full",
    "pd_op.full_int_array",
    "pd_op.assign_value",
    "pd_op.while",
    "pd_op.if",
    "pd_op.create_array",
    "pd_op.array_write_",
];

/// What a PIR value is in the legacy program.
#[derive(Clone)]
enum Binding {
    Var(String),
    /// A `vec` value: one variable per element.
    List(Vec<String>),
}

/// A value a constant op writes: the legacy op that makes it (added to a block where it is
/// first used as a tensor) and its numbers, for folding into attributes.
struct Constant {
    op: OpDesc,
    var: String,
    values: Vec<f64>,
}

struct Translator<'p> {
    blocks: Vec<BlockDesc>,
    bind: HashMap<i64, Binding>,
    types: HashMap<i64, Type>,
    constants: HashMap<i64, Constant>,
    /// (block, value) pairs whose constant op a block already holds.
    emitted: HashSet<(usize, i64)>,
    parameters: HashSet<&'p str>,
    taken: HashSet<String>,
    inputs: i64,
}

type R<T = ()> = Result<T, String>;

/// The ops of `program` that have neither a rule nor a structural translation, with their
/// positions, in file order.
pub(super) fn unknown_ops(program: &Program) -> Vec<String> {
    fn walk(block: &Block, out: &mut Vec<String>) {
        for (k, op) in block.ops.iter().enumerate() {
            let known = STRUCTURAL.contains(&op.name.as_str())
                || op
                    .name
                    .strip_prefix("pd_op.")
                    .is_some_and(|n| rules::find(n).is_some());
            if !known {
                out.push(format!("{} ({}, op {k})", op.name, block.label));
            }
            for region in &op.regions {
                walk(region, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&program.body, &mut out);
    out
}

pub(super) fn translate(program: &Program) -> R<ProgramDesc> {
    let mut parameters = HashSet::new();
    for op in &program.body.ops {
        if op.name == "builtin.parameter" {
            if let Some(Attr::Str(n)) = op.attr("parameter_name") {
                parameters.insert(n.as_str());
            }
        }
    }
    let mut t = Translator {
        blocks: vec![BlockDesc {
            idx: 0,
            parent_idx: -1,
            ..Default::default()
        }],
        bind: HashMap::new(),
        types: HashMap::new(),
        constants: HashMap::new(),
        emitted: HashSet::new(),
        taken: parameters.iter().map(|s| s.to_string()).collect(),
        parameters,
        inputs: 0,
    };
    t.block(&program.body, 0)?;
    Ok(ProgramDesc {
        blocks: t.blocks,
        version: Some(Version { version: Some(0) }),
        op_version_map: None,
    })
}

impl<'p> Translator<'p> {
    fn block(&mut self, block: &'p Block, b: usize) -> R {
        for (k, op) in block.ops.iter().enumerate() {
            let at = format!("op '{}' ({}, op {k})", op.name, block.label);
            self.op(op, b, &at).map_err(|e| format!("{at}: {e}"))?;
        }
        Ok(())
    }

    fn op(&mut self, op: &'p Operation, b: usize, at: &str) -> R {
        for v in &op.results {
            self.types.insert(v.id, v.ty.clone());
        }
        match op.name.as_str() {
            "builtin.parameter" => {
                let Some(Attr::Str(name)) = op.attr("parameter_name") else {
                    return Err("a parameter without a name".into());
                };
                let v = one_result(op)?;
                self.declare(0, name, &v.ty, true)?;
                self.bind.insert(v.id, Binding::Var(name.clone()));
                Ok(())
            }
            "pd_op.data" | "pd_op.feed" => self.input(op, b),
            "pd_op.fetch" => self.fetch(op, b, at),
            "pd_op.full" | "pd_op.full_int_array" | "pd_op.assign_value" => self.constant(op),
            "builtin.combine" => {
                let mut names = Vec::new();
                for &id in &op.operands {
                    names.extend(self.tensor_names(id, b)?);
                }
                self.bind.insert(one_result(op)?.id, Binding::List(names));
                Ok(())
            }
            "builtin.split" => {
                let names = self.list(operand(op, 0)?)?;
                if names.len() != op.results.len() {
                    return Err(format!(
                        "splits {} values into {} results",
                        names.len(),
                        op.results.len()
                    ));
                }
                for (v, n) in op.results.iter().zip(names) {
                    self.bind.insert(v.id, Binding::Var(n));
                }
                Ok(())
            }
            "builtin.slice" => {
                let names = self.list(operand(op, 0)?)?;
                let index = match op.attr("index") {
                    Some(Attr::I32(i) | Attr::I64(i)) => *i,
                    _ => return Err("attribute 'index' is missing".into()),
                };
                let name = usize::try_from(index)
                    .ok()
                    .and_then(|i| names.get(i))
                    .ok_or_else(|| format!("index {index} is outside {} values", names.len()))?;
                self.bind
                    .insert(one_result(op)?.id, Binding::Var(name.clone()));
                Ok(())
            }
            "pd_op.create_array" => {
                let v = one_result(op)?;
                let name = self.fresh(&format!("array_{}", v.id));
                self.declare(b, &name, &v.ty, false)?;
                self.bind.insert(v.id, Binding::Var(name));
                Ok(())
            }
            "pd_op.array_write_" => {
                // The result is the array written in place.
                let array = self.var(operand(op, 0)?)?;
                let x = self.tensor_names(operand(op, 1)?, b)?;
                let i = self.tensor_names(operand(op, 2)?, b)?;
                let desc = legacy_op(
                    "write_to_array",
                    vec![("X", x), ("I", i)],
                    vec![("Out", vec![array.clone()])],
                    vec![position(at)],
                );
                self.blocks[b].ops.push(desc);
                self.bind.insert(one_result(op)?.id, Binding::Var(array));
                Ok(())
            }
            "pd_op.while" => self.while_loop(op, b, at),
            "pd_op.if" => self.if_else(op, b, at),
            "cf.yield" => Err("a yield outside a loop body".into()),
            name => {
                let rule = name
                    .strip_prefix("pd_op.")
                    .and_then(rules::find)
                    .ok_or_else(|| format!("{name} has no mapping"))?;
                self.rule(op, rule, b, at)
            }
        }
    }

    fn rule(&mut self, op: &'p Operation, rule: &Rule, b: usize, at: &str) -> R {
        if op.operands.len() > rule.ins.len() {
            return Err(format!(
                "{} operands, {} expected",
                op.operands.len(),
                rule.ins.len()
            ));
        }
        let mut inputs: Vec<(&str, Vec<String>)> = Vec::new();
        let mut attrs = Vec::new();
        for (&id, &how) in op.operands.iter().zip(rule.ins) {
            if id == 0 {
                continue;
            }
            match how {
                In::P(param) => inputs.push((param, self.tensor_names(id, b)?)),
                In::Either(single, list) => match self.bind.get(&id) {
                    Some(Binding::List(_)) => inputs.push((list, self.tensor_names(id, b)?)),
                    _ => inputs.push((single, self.tensor_names(id, b)?)),
                },
                In::Ints(name) => {
                    let values = self.folded(id, name)?;
                    let ints = values.iter().map(|&v| v as i64).collect();
                    attrs.push(longs(name, ints));
                }
                In::Number(name) => match self.folded(id, name)?.as_slice() {
                    [v] => attrs.push(float64(name, *v)),
                    other => {
                        return Err(format!(
                            "operand '{name}' holds {} values, expected 1",
                            other.len()
                        ))
                    }
                },
                In::Drop => {}
            }
        }
        for (name, a) in &op.attrs {
            if BOOKKEEPING.contains(&name.as_str()) {
                continue;
            }
            let name = rule
                .renames
                .iter()
                .find(|(p, _)| p == name)
                .map_or(name.as_str(), |(_, l)| l);
            if let Some(a) = legacy_attr(name, a)? {
                attrs.push(a);
            }
        }
        if rule.legacy.starts_with("reduce_")
            && !attrs.iter().any(|a| a.name == "dim" && !a.longs.is_empty())
        {
            attrs.push(boolean("reduce_all", true));
        }
        let mut outputs: Vec<(&str, Vec<String>)> = Vec::new();
        for (k, v) in op.results.iter().enumerate() {
            let Some(&param) = rule.outs.get(k) else {
                return Err(format!("result {k} has no legacy output"));
            };
            let base = format!("{}_{}", rule.pir, v.id);
            let names = match &v.ty {
                Type::Null => continue,
                Type::Vec(elements) => {
                    let mut names = Vec::new();
                    for (e, ty) in elements.iter().enumerate() {
                        let n = self.fresh(&format!("{base}.{e}"));
                        self.declare(b, &n, ty, false)?;
                        names.push(n);
                    }
                    self.bind.insert(v.id, Binding::List(names.clone()));
                    names
                }
                ty => {
                    let n = self.fresh(&base);
                    self.declare(b, &n, ty, false)?;
                    self.bind.insert(v.id, Binding::Var(n.clone()));
                    vec![n]
                }
            };
            outputs.push((param, names));
        }
        // The site as the legacy importer writes it: `op 'pd_op.conv2d' (block_0, op 19,
        // writes conv2d_20)`.
        let written = outputs.first().and_then(|(_, n)| n.first());
        attrs.push(position(&match (at.strip_suffix(')'), written) {
            (Some(open), Some(var)) => format!("{open}, writes {var})"),
            _ => at.to_string(),
        }));
        self.blocks[b]
            .ops
            .push(legacy_op(rule.legacy, inputs, outputs, attrs));
        Ok(())
    }

    /// `pd_op.data` (native exports) and `pd_op.feed` (translated programs) become `feed`.
    fn input(&mut self, op: &Operation, b: usize) -> R {
        let Some(Attr::Str(name)) = op.attr("name") else {
            return Err("attribute 'name' is missing".into());
        };
        let v = one_result(op)?;
        if !self.taken.insert(name.clone()) {
            return Err(format!("a second input or parameter is named '{name}'"));
        }
        self.declare(b, name, &v.ty, false)?;
        let col = self.inputs;
        self.inputs += 1;
        self.blocks[b].ops.push(legacy_op(
            "feed",
            vec![("X", vec!["feed".into()])],
            vec![("Out", vec![name.clone()])],
            vec![long("col", col)],
        ));
        self.bind.insert(v.id, Binding::Var(name.clone()));
        Ok(())
    }

    /// An output keeps the fetch's name (`fetch_name_0`), which paddle.inference reports.
    fn fetch(&mut self, op: &Operation, b: usize, at: &str) -> R {
        let (Some(Attr::Str(name)), Some(Attr::I32(col) | Attr::I64(col))) =
            (op.attr("name"), op.attr("col"))
        else {
            return Err("attributes 'name' and 'col' are missing".into());
        };
        let x = self.tensor_names(operand(op, 0)?, b)?;
        let out = self.fresh(name);
        let ty = self
            .types
            .get(&operand(op, 0)?)
            .cloned()
            .unwrap_or(Type::Null);
        self.declare(b, &out, &ty, false)?;
        let block = &mut self.blocks[b].ops;
        block.push(legacy_op(
            "assign",
            vec![("X", x)],
            vec![("Out", vec![out.clone()])],
            vec![position(at)],
        ));
        block.push(legacy_op(
            "fetch",
            vec![("X", vec![out])],
            vec![("Out", vec!["fetch".into()])],
            vec![long("col", *col)],
        ));
        Ok(())
    }

    /// Records a constant op; it becomes a legacy op only where a tensor operand reads it.
    fn constant(&mut self, op: &Operation) -> R {
        let v = one_result(op)?;
        let Type::Tensor(t) = &v.ty else {
            return Err("the constant is not a dense tensor".into());
        };
        let dtype = t.dtype;
        let var = self.fresh(&format!(
            "{}_{}",
            op.name.trim_start_matches("pd_op."),
            v.id
        ));
        let (desc, values) = match op.name.as_str() {
            "pd_op.full" => {
                let shape = match op.attr("shape") {
                    Some(Attr::IntArray(s)) => s.clone(),
                    _ => return Err("attribute 'shape' is missing".into()),
                };
                let value = match op.attr("value") {
                    Some(Attr::F64(x) | Attr::F32(x)) => *x,
                    Some(Attr::I32(x) | Attr::I64(x)) => *x as f64,
                    _ => return Err("attribute 'value' is missing".into()),
                };
                let count = shape.iter().product::<i64>().max(0) as usize;
                let desc = legacy_op(
                    "fill_constant",
                    vec![],
                    vec![("Out", vec![var.clone()])],
                    vec![
                        longs("shape", shape),
                        int("dtype", dtype as i64),
                        string("str_value", &format!("{value:?}")),
                    ],
                );
                (desc, vec![value; count.min(1 << 16)])
            }
            _ => {
                let key = if op.name == "pd_op.full_int_array" {
                    "value"
                } else {
                    "values"
                };
                let values = match op.attr(key) {
                    Some(Attr::Array(list)) => list
                        .iter()
                        .map(number)
                        .collect::<Option<Vec<f64>>>()
                        .ok_or_else(|| format!("attribute '{key}' holds a non-number"))?,
                    Some(Attr::IntArray(list)) => list.iter().map(|&x| x as f64).collect(),
                    _ => return Err(format!("attribute '{key}' is missing")),
                };
                let shape = match (op.attr("shape"), op.name.as_str()) {
                    (_, "pd_op.full_int_array") => vec![values.len() as i64],
                    (Some(Attr::IntArray(s)), _) => s.clone(),
                    (Some(Attr::Array(s)), _) => s
                        .iter()
                        .map(|a| number(a).map(|x| x as i64))
                        .collect::<Option<Vec<_>>>()
                        .ok_or("attribute 'shape' holds a non-integer")?,
                    _ => return Err("attribute 'shape' is missing".into()),
                };
                let mut attrs = vec![longs("shape", shape), int("dtype", dtype as i64)];
                attrs.push(match dtype {
                    0 => bools("bool_values", values.iter().map(|&x| x != 0.0).collect()),
                    2 => longs_named("int32_values", &values),
                    3 => longs_named("int64_values", &values),
                    5 => floats("fp32_values", &values),
                    6 => float64s("fp64_values", &values),
                    other => {
                        return Err(format!("a constant of type code {other} is not supported"))
                    }
                });
                let desc = legacy_op(
                    "assign_value",
                    vec![],
                    vec![("Out", vec![var.clone()])],
                    attrs,
                );
                (desc, values)
            }
        };
        self.constants.insert(
            v.id,
            Constant {
                op: desc,
                var,
                values,
            },
        );
        Ok(())
    }

    fn assign(&mut self, b: usize, x: Vec<String>, out: &str, at: &str) {
        self.blocks[b].ops.push(legacy_op(
            "assign",
            vec![("X", x)],
            vec![("Out", vec![out.to_string()])],
            vec![position(at)],
        ));
    }

    /// The variables a tensor operand reads, adding the op of a constant where it is first read.
    fn tensor_names(&mut self, id: i64, b: usize) -> R<Vec<String>> {
        if let Some(c) = self.constants.get(&id) {
            if self.emitted.insert((b, id)) {
                let desc = c.op.clone();
                let ty = self.types.get(&id).cloned().unwrap_or(Type::Null);
                let var = c.var.clone();
                self.declare(b, &var, &ty, false)?;
                self.blocks[b].ops.push(desc);
            }
            return Ok(vec![self.constants[&id].var.clone()]);
        }
        match self.bind.get(&id) {
            Some(Binding::Var(n)) => Ok(vec![n.clone()]),
            Some(Binding::List(names)) => Ok(names.clone()),
            None => Err(format!("reads value %{id}, which no earlier op writes")),
        }
    }

    fn var(&mut self, id: i64) -> R<String> {
        match self.bind.get(&id) {
            Some(Binding::Var(n)) => Ok(n.clone()),
            Some(Binding::List(_)) => Err(format!("value %{id} is a list, not one tensor")),
            None => Err(format!("reads value %{id}, which no earlier op writes")),
        }
    }

    fn list(&mut self, id: i64) -> R<Vec<String>> {
        match self.bind.get(&id) {
            Some(Binding::List(names)) => Ok(names.clone()),
            _ => Err(format!("value %{id} is not a list")),
        }
    }

    /// The numbers of a constant operand, which `attr` of the legacy op needs.
    fn folded(&self, id: i64, attr: &str) -> R<Vec<f64>> {
        self.constants
            .get(&id)
            .map(|c| c.values.clone())
            .ok_or_else(|| {
                format!(
                    "operand '{attr}' is computed at run time; it must be a constant (legacy \
                     Paddle had it as an attribute)"
                )
            })
    }

    /// A variable name not used yet (and never a parameter's).
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while !self.taken.insert(name.clone()) || self.parameters.contains(name.as_str()) {
            name = format!("{base}_{k}");
            k += 1;
        }
        name
    }

    fn declare(&mut self, b: usize, name: &str, ty: &Type, persistable: bool) -> R {
        let desc = |t: &super::json::Tensor| TensorDesc {
            data_type: t.dtype,
            dims: t.dims.clone(),
        };
        let r#type = match ty {
            Type::Tensor(t) => VarType {
                r#type: VarKind::LodTensor as i32,
                lod_tensor: Some(LoDTensorDesc {
                    tensor: desc(t),
                    lod_level: Some(0),
                }),
                ..Default::default()
            },
            Type::TensorArray(t) => VarType {
                r#type: VarKind::LodTensorArray as i32,
                tensor_array: Some(LoDTensorArrayDesc {
                    tensor: desc(t),
                    lod_level: Some(0),
                }),
                ..Default::default()
            },
            Type::Vec(_) => return Err(format!("'{name}' would be a list variable")),
            Type::Null => VarType {
                r#type: VarKind::Raw as i32,
                ..Default::default()
            },
        };
        self.blocks[b].vars.push(VarDesc {
            name: name.to_string(),
            r#type,
            persistable: Some(persistable),
            ..Default::default()
        });
        Ok(())
    }
}

fn one_result(op: &Operation) -> R<&super::json::Value> {
    match op.results.as_slice() {
        [v] => Ok(v),
        other => Err(format!("{} results, expected 1", other.len())),
    }
}

fn operand(op: &Operation, k: usize) -> R<i64> {
    op.operands
        .get(k)
        .copied()
        .filter(|&id| id != 0)
        .ok_or_else(|| format!("operand {k} is missing"))
}
