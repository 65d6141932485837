//! `temblor compare`: layer by layer, how far graph B of a model is from graph A (two stages, or
//! two precision plans), on the values both compute ([`matching`]).
//!
//! Cumulative mode runs each graph on its own on the same inputs: a pair's error is everything
//! B lost up to that layer. Isolated mode feeds each layer of B the values A computed for its
//! inputs, so a pair's error is what that layer adds by itself. B's own nodes between the fed
//! values and the layer still run: an int8 layer's input QuantizeLinear/DequantizeLinear and an
//! fp16 region's casts are part of the error the layer adds.

pub mod matching;
pub mod metrics;

use crate::progress;
use indicatif::ProgressBar;
use matching::{match_values, Matching};
use metrics::{metrics, Metrics};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;
use temblor_ir::{Error, Graph, Op, Precision, Result, ValueRef};
use temblor_runtime::{
    prepare, run_op, Device, Observer, Plan, PrepareOptions, RuntimeError, StepInfo, Tensor,
    ValueView,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Cumulative,
    Isolated,
}

/// One value of B and the value of A that holds the same tensor.
#[derive(Clone, Debug, Serialize)]
pub struct Pair {
    /// B's node (its name in the optimize view for a compiled layer) and op.
    pub layer: String,
    pub op: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<Precision>,
    pub reference_layer: String,
    pub reference_value: String,
    pub shape: Vec<usize>,
    pub reference_shape: Vec<usize>,
    /// Absent when the shapes differ (after a data-dependent selection).
    #[serde(flatten)]
    pub metrics: Option<Metrics>,
}

impl Pair {
    /// True when the pair's relative L2 error is above `tolerance` (or NaN).
    pub fn exceeds(&self, tolerance: f64) -> bool {
        self.metrics
            .is_some_and(|m| m.rel_l2.is_nan() || m.rel_l2 > tolerance)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub mode: Mode,
    /// Layer nodes of A and of B.
    pub layers_a: usize,
    pub layers_b: usize,
    /// Every matched pair, in B's topological order.
    pub pairs: Vec<Pair>,
}

impl Comparison {
    /// The first pair in B's topological order whose error exceeds `tolerance`.
    pub fn first_over(&self, tolerance: f64) -> Option<&Pair> {
        self.pairs.iter().find(|p| p.exceeds(tolerance))
    }

    /// The `n` pairs with the largest relative L2 error, largest first (NaN first of all).
    pub fn worst(&self, n: usize) -> Vec<&Pair> {
        let mut ranked: Vec<(f64, &Pair)> = self
            .pairs
            .iter()
            .filter_map(|p| p.metrics.map(|m| (m.rel_l2, p)))
            .collect();
        ranked.sort_by(|x, y| match (x.0.is_nan(), y.0.is_nan()) {
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            _ => y.0.total_cmp(&x.0),
        });
        ranked.into_iter().take(n).map(|(_, p)| p).collect()
    }
}

/// Compares `b` against `a` on `inputs`. `labels` name the two graphs in errors.
pub fn compare(
    a: &Graph,
    b: &Graph,
    inputs: &[(String, Tensor)],
    mode: Mode,
    labels: [&str; 2],
) -> Result<Comparison> {
    let matching = match_values(a, b, labels)?;
    let reference = run_collecting(a, &matching, inputs, labels[0])?;
    let measured = match mode {
        Mode::Cumulative => run_cumulative(b, &matching, &reference, inputs, labels[1])?,
        Mode::Isolated => run_isolated(b, &matching, &reference, inputs, labels[1])?,
    };
    let pairs = matching
        .pairs
        .iter()
        .zip(measured)
        .map(|(&(vb, va), (shape, m))| {
            let node = b.node(vb.node);
            Pair {
                layer: node.name.clone(),
                op: node.op.name().to_string(),
                value: node.outputs[vb.port].name.clone(),
                precision: node.placement.map(|p| p.precision),
                reference_layer: a.node(va.node).name.clone(),
                reference_value: a.value_info(va).name.clone(),
                shape,
                reference_shape: reference[&va].shape.clone(),
                metrics: m,
            }
        })
        .collect();
    Ok(Comparison {
        mode,
        layers_a: matching.layers.0,
        layers_b: matching.layers.1,
        pairs,
    })
}

/// Maps the value names a plan reports to the wanted values of `g`; an internal error when a
/// wanted name is not unique, since a step could then not be told apart.
fn by_name<'g>(g: &'g Graph, wanted: &[ValueRef]) -> Result<HashMap<&'g str, ValueRef>> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for id in g.node_ids() {
        for o in &g.node(id).outputs {
            *count.entry(o.name.as_str()).or_default() += 1;
        }
    }
    let mut map = HashMap::new();
    for &v in wanted {
        let name = g.value_info(v).name.as_str();
        if count[name] > 1 {
            return Err(Error::internal(format!(
                "graph '{}' names more than one value '{name}'",
                g.name
            )));
        }
        map.insert(name, v);
    }
    Ok(map)
}

/// Keeps the wanted values as a plan computes them.
struct Collect<'g> {
    wanted: HashMap<&'g str, ValueRef>,
    got: HashMap<ValueRef, Tensor>,
    bar: ProgressBar,
}

impl Observer for Collect<'_> {
    fn step(
        &mut self,
        _: usize,
        s: &StepInfo,
        _: &[Option<ValueView>],
        out: &[ValueView],
        _: Duration,
    ) -> Result<(), RuntimeError> {
        self.bar.inc(1);
        for (name, t) in s.output_names.iter().zip(out) {
            if let Some(&v) = self.wanted.get(name.as_str()) {
                self.got.insert(v, t.to_host()?.into_owned());
            }
        }
        Ok(())
    }
}

/// A runtime failure while running the graph `label`: bad input data or an op the runtime
/// lacks is the user's (exit 2), anything else temblor's.
fn runtime(label: &str, e: RuntimeError) -> Error {
    e.context(&format!("running {label}")).into()
}

fn plan(g: &Graph, label: &str) -> Result<Plan> {
    let options = PrepareOptions {
        every_value: true,
        ..PrepareOptions::default()
    };
    prepare(g, &Device::Cpu, &options).map_err(|e| runtime(label, e))
}

/// Runs `a` and keeps the values of A that some value of B is matched with.
fn run_collecting(
    a: &Graph,
    matching: &Matching,
    inputs: &[(String, Tensor)],
    label: &str,
) -> Result<HashMap<ValueRef, Tensor>> {
    let wanted: Vec<ValueRef> = matching.pairs.iter().map(|&(_, va)| va).collect();
    let plan = plan(a, label)?;
    let mut collect = Collect {
        wanted: by_name(a, &wanted)?,
        got: HashMap::new(),
        bar: progress::bar(plan.steps().len(), "reference"),
    };
    plan.run_observed(&mut plan.new_state(), inputs, &mut collect)
        .map_err(|e| runtime(label, e))?;
    collect.bar.finish_and_clear();
    if let Some(&missing) = wanted.iter().find(|v| !collect.got.contains_key(v)) {
        return Err(Error::internal(format!(
            "running {label}: {} was never computed",
            a.describe(missing.node)
        )));
    }
    Ok(collect.got)
}

/// A pair's measurement: B's shape and the metrics.
type Measured = (Vec<usize>, Option<Metrics>);

/// Measures each B value against its partner while the plan of `b` runs.
struct Measure<'g, 'r> {
    wanted: HashMap<&'g str, usize>,
    partners: Vec<ValueRef>,
    reference: &'r HashMap<ValueRef, Tensor>,
    got: Vec<Option<Measured>>,
    bar: ProgressBar,
}

impl Observer for Measure<'_, '_> {
    fn step(
        &mut self,
        _: usize,
        s: &StepInfo,
        _: &[Option<ValueView>],
        out: &[ValueView],
        _: Duration,
    ) -> Result<(), RuntimeError> {
        self.bar.inc(1);
        for (name, t) in s.output_names.iter().zip(out) {
            if let Some(&i) = self.wanted.get(name.as_str()) {
                let m = metrics(&self.reference[&self.partners[i]], &*t.to_host()?);
                self.got[i] = Some((t.shape().to_vec(), m));
            }
        }
        Ok(())
    }
}

fn run_cumulative(
    b: &Graph,
    matching: &Matching,
    reference: &HashMap<ValueRef, Tensor>,
    inputs: &[(String, Tensor)],
    label: &str,
) -> Result<Vec<Measured>> {
    let values: Vec<ValueRef> = matching.pairs.iter().map(|&(vb, _)| vb).collect();
    let index: HashMap<ValueRef, usize> = values.iter().enumerate().map(|(i, &v)| (v, i)).collect();
    let plan = plan(b, label)?;
    let mut measure = Measure {
        wanted: by_name(b, &values)?
            .into_iter()
            .map(|(name, v)| (name, index[&v]))
            .collect(),
        partners: matching.pairs.iter().map(|&(_, va)| va).collect(),
        reference,
        got: vec![None; values.len()],
        bar: progress::bar(plan.steps().len(), "compare"),
    };
    plan.run_observed(&mut plan.new_state(), inputs, &mut measure)
        .map_err(|e| runtime(label, e))?;
    measure.bar.finish_and_clear();
    measure
        .got
        .into_iter()
        .zip(&values)
        .map(|(m, v)| {
            m.ok_or_else(|| {
                Error::internal(format!(
                    "running {label}: {} was never computed",
                    b.describe(v.node)
                ))
            })
        })
        .collect()
}

/// `t` as the dtype `b` declares for the value it stands in for.
fn as_dtype(t: &Tensor, to: temblor_ir::DType, label: &str) -> Result<Tensor> {
    if t.dtype() == to {
        return Ok(t.clone());
    }
    run_op(&Op::Cast { to }, &[Some(t)], 1)
        .map_err(|e| runtime(label, e))?
        .pop()
        .ok_or_else(|| Error::internal("Cast made no output"))
}

/// Runs every layer of `b` once, in topological order, on what it reads in isolation: a value
/// matched with A is replaced by A's (in B's dtype), anything else (B's own Q/DQ chains, casts,
/// values A lacks) is B's node run on such inputs. Each matched value is measured before it is
/// replaced.
fn run_isolated(
    b: &Graph,
    matching: &Matching,
    reference: &HashMap<ValueRef, Tensor>,
    inputs: &[(String, Tensor)],
    label: &str,
) -> Result<Vec<Measured>> {
    let partner = matching.partner();
    let index: HashMap<ValueRef, usize> = matching
        .pairs
        .iter()
        .enumerate()
        .map(|(i, &(v, _))| (v, i))
        .collect();
    let order = b
        .topo_order()
        .map_err(|n| Error::internal(format!("cycle through {}", b.describe(n))))?;
    let mut left: HashMap<ValueRef, usize> = HashMap::new();
    for &id in &order {
        for v in b.inputs_of(id).into_iter().flatten() {
            *left.entry(v).or_default() += 1;
        }
    }
    let mut got: Vec<Option<Measured>> = vec![None; matching.pairs.len()];
    let mut live: HashMap<ValueRef, Tensor> = HashMap::new();
    let bar = progress::bar(order.len(), "isolated");
    for &id in &order {
        bar.inc(1);
        let node = b.node(id);
        let outs = match &node.op {
            Op::Input { .. } => {
                let name = &node.outputs[0].name;
                let given = inputs.iter().find(|(n, _)| n == name).ok_or_else(|| {
                    Error::usage(format!("{label}: no value for its input '{name}'"))
                })?;
                vec![given.1.clone()]
            }
            Op::Constant { weight } => {
                let w = b
                    .weights
                    .get(*weight)
                    .ok_or_else(|| Error::internal(format!("{} has no weight", b.describe(id))))?;
                vec![Tensor::from_weight(w).map_err(|e| runtime(label, e))?]
            }
            op => {
                let args: Vec<Option<&Tensor>> = b
                    .inputs_of(id)
                    .into_iter()
                    .map(|v| v.and_then(|v| live.get(&v)))
                    .collect();
                run_op(op, &args, node.outputs.len())
                    .map_err(|e| runtime(label, e.context(&b.describe(id))))?
            }
        };
        for v in b.inputs_of(id).into_iter().flatten() {
            let n = left.get_mut(&v).expect("counted above");
            *n -= 1;
            if *n == 0 {
                live.remove(&v);
            }
        }
        for (port, t) in outs.into_iter().enumerate() {
            let v = ValueRef::new(id, port);
            let fed = match partner.get(&v) {
                Some(va) => {
                    let a = &reference[va];
                    got[index[&v]] = Some((t.shape.clone(), metrics(a, &t)));
                    as_dtype(a, node.outputs[port].ty.dtype, label)?
                }
                None => t,
            };
            if left.get(&v).is_some_and(|&n| n > 0) {
                live.insert(v, fed);
            }
        }
    }
    bar.finish_and_clear();
    Ok(got
        .into_iter()
        .map(|m| m.expect("every matched value of B is a node output"))
        .collect())
}
