//! `compile --verify`: the optimized graph must compute what the parsed one did. Both run on the
//! CPU runtime with the same seeded inputs; every graph output must agree (relative L2 at most
//! [`TOLERANCE`] for floats, [`QUANTIZED_TOLERANCE`] where the graph quantizes activations,
//! exactly otherwise). When one does not, the tensors both graphs
//! still have (matched by name, so no fusion is undone to see them) are compared layer by layer
//! in the optimized graph's order, and the first that diverges is named.
//!
//! Some graphs amplify rounding: a deformable convolution samples at positions a convolution
//! computed, so a last-bit change in a weight moves a sample across a bilinear kink. The allowed
//! error of each checked value is therefore the larger of [`TOLERANCE`] and [`NOISE_FACTOR`]
//! times its noise floor: how far the parsed graph moves when its float inputs change in the
//! last bit. A wrong rewrite differs by orders of magnitude more than either.
//!
//! Outputs computed after a data-dependent selection (NMS, top-k, proposal generation) are
//! checked where the selection reads its candidates instead: a selection turns a last-bit
//! difference between two near-equal scores into a different choice, so what a rewrite must
//! preserve is what the selection chooses from.

use std::collections::{HashMap, HashSet};
use temblor_ir::{DType, Error, Graph, GraphOutput, Op, Result, ValueRef, VerifyStatus};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor, TensorData};

/// Relative L2 error allowed between parse and optimize outputs in fp32.
pub const TOLERANCE: f64 = 1e-5;

/// Relative L2 error allowed in a graph that quantizes computed values (a QDQ model's
/// activations): there a last-bit difference in what a QuantizeLinear rounds, which any fusion
/// may make, moves an element by a whole quantization step, and perturbing the inputs rarely
/// lands on one to measure it. A wrong rewrite still differs by orders of magnitude more.
pub const QUANTIZED_TOLERANCE: f64 = 1e-3;

/// How many times its own noise floor a checked value may differ by.
pub const NOISE_FACTOR: f64 = 10.0;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Verification {
    /// Skipped comes with the reason.
    pub status: VerifyStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Per checked value: its relative L2 error (0 for exact integer agreement) and the error
    /// it was allowed.
    pub outputs: Vec<Checked>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Checked {
    pub name: String,
    pub rel_l2: f64,
    pub allowed: f64,
}

impl Verification {
    fn skipped(reason: String) -> Verification {
        Verification {
            status: VerifyStatus::Skipped,
            reason: Some(reason),
            outputs: Vec::new(),
        }
    }
}

/// Synthesized inputs: seeded uniform values in [0, 1) for floats, ones for integers. `Err`
/// with the reason when an input has an open extent or the model has no weights.
pub fn synthesize(g: &Graph) -> std::result::Result<Vec<(String, Tensor)>, String> {
    if !g.has_values() {
        return Err("the model has no parameter values (graph only)".into());
    }
    let mut state = 0x853C_49E6_748F_EA9Bu64;
    let mut out = Vec::new();
    for &id in &g.inputs {
        let info = &g.node(id).outputs[0];
        let dims = info.ty.shape.known().ok_or_else(|| {
            format!(
                "input '{}' has open extents [{}]; give them with --input NAME:DIMS",
                info.name, info.ty.shape
            )
        })?;
        let n: usize = dims.iter().product();
        let data = if info.ty.dtype.is_float() {
            let values = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 24) as f32
                })
                .collect::<Vec<f32>>();
            Tensor::f32(dims, values)
        } else {
            let ones = Tensor::f32(dims, vec![1.0; n]);
            let cast = Op::Cast { to: info.ty.dtype };
            temblor_runtime::run_op(&cast, &[Some(&ones)], 1)
                .ok()
                .and_then(|mut t| t.pop())
                .ok_or_else(|| {
                    format!(
                        "input '{}': no {} values to synthesize",
                        info.name, info.ty.dtype
                    )
                })?
        };
        out.push((info.name.clone(), data));
    }
    Ok(out)
}

/// The inputs with every float element moved by one unit in the last place, up or down at
/// random (integers unchanged).
fn perturbed(inputs: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    inputs
        .iter()
        .map(|(name, t)| {
            let mut t = t.clone();
            if let TensorData::F32(v) = &mut t.data {
                for x in v.iter_mut() {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let bits = x.to_bits();
                    *x = f32::from_bits(if state & 1 == 0 {
                        bits.wrapping_add(1)
                    } else {
                        bits.wrapping_sub(1)
                    });
                }
            }
            (name.clone(), t)
        })
        .collect()
}

/// Relative L2 error of `a` against `b`, or infinity when their shapes or dtypes differ.
fn error(a: &Tensor, b: &Tensor) -> f64 {
    if a.shape != b.shape || a.dtype() != b.dtype() {
        return f64::INFINITY;
    }
    let (x, y) = (values(a), values(b));
    if x.len() != a.len() || y.len() != b.len() {
        return f64::INFINITY;
    }
    let (mut num, mut den) = (0.0, 0.0);
    for (p, q) in x.iter().zip(&y) {
        num += (p - q) * (p - q);
        den += q * q;
    }
    if !a.dtype().is_float() {
        return if num == 0.0 { 0.0 } else { f64::INFINITY };
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// The elements widened to f64 by the runtime's own Cast (every dtype converts).
pub(crate) fn values(t: &Tensor) -> Vec<f64> {
    let cast = Op::Cast { to: DType::F64 };
    match temblor_runtime::run_op(&cast, &[Some(t)], 1).map(|mut o| o.pop()) {
        Ok(Some(Tensor {
            data: TensorData::F64(v),
            ..
        })) => v,
        _ => Vec::new(),
    }
}

fn run(g: &Graph, inputs: &[(String, Tensor)]) -> Result<Vec<(String, Tensor)>> {
    prepare(g, &Device::Cpu, &PrepareOptions::default())
        .and_then(|p| p.run_once(inputs))
        .map_err(|e| Error::internal(format!("verification run of '{}': {e}", g.name)))
}

/// Checks `optimize` against `parse`; an `Internal` error (exit 1) names the first diverging
/// layer.
pub fn verify(parse: &Graph, optimize: &Graph) -> Result<Verification> {
    let inputs = match synthesize(parse) {
        Ok(i) => i,
        Err(reason) => return Ok(Verification::skipped(reason)),
    };
    let checked = checkpoints(parse, optimize);
    let a = run(&with_outputs(parse, &checked), &inputs)?;
    let b = run(&with_outputs(optimize, &checked), &inputs)?;
    let (a, b): (HashMap<String, Tensor>, HashMap<String, Tensor>) =
        (a.into_iter().collect(), b.into_iter().collect());
    let noisy: HashMap<String, Tensor> = run(&with_outputs(parse, &checked), &perturbed(&inputs))?
        .into_iter()
        .collect();
    let tolerance = if quantizes_activations(parse) {
        QUANTIZED_TOLERANCE
    } else {
        TOLERANCE
    };
    let mut outputs = Vec::new();
    let mut failed = None;
    for name in &checked {
        let e = error(&b[name], &a[name]);
        let allowed = tolerance.max(NOISE_FACTOR * error(&noisy[name], &a[name]));
        if e > allowed && failed.is_none() {
            failed = Some((name.clone(), e, allowed));
        }
        outputs.push(Checked {
            name: name.clone(),
            rel_l2: e,
            allowed,
        });
    }
    let Some((name, e, allowed)) = failed else {
        return Ok(Verification {
            status: VerifyStatus::Passed,
            reason: None,
            outputs,
        });
    };
    Err(Error::internal(format!(
        "verification failed: output '{name}' of the optimized graph differs from the parsed \
         graph's (relative L2 {e:.3e}, allowed {allowed:.3e}){}",
        first_divergence(parse, optimize, &inputs)?
    )))
}

/// Whether `g` quantizes a computed value: a QDQ model's activations.
fn quantizes_activations(g: &Graph) -> bool {
    g.node_ids().any(|id| {
        matches!(g.node(id).op, Op::QuantizeLinear { .. })
            && g.input(id, 0).is_some_and(|v| g.constant(v).is_none())
    })
}

fn is_selection(op: &Op) -> bool {
    matches!(
        op,
        Op::NonMaxSuppression { .. }
            | Op::TopK { .. }
            | Op::NonZero
            | Op::Lib(_)
            | Op::Custom { .. }
    )
}

/// The values verification compares, by name: the graph outputs that no selection precedes,
/// and the candidates (inputs) of each selection, when both graphs have them.
pub fn checkpoints(parse: &Graph, optimize: &Graph) -> Vec<String> {
    let mut after_selection: HashSet<temblor_ir::NodeId> = HashSet::new();
    let mut selections = Vec::new();
    if let Ok(order) = parse.topo_order() {
        for id in order {
            let fed = parse
                .inputs_of(id)
                .into_iter()
                .flatten()
                .any(|v| after_selection.contains(&v.node));
            if is_selection(&parse.node(id).op) && !fed {
                selections.push(id);
            }
            if fed || is_selection(&parse.node(id).op) {
                after_selection.insert(id);
            }
        }
    }
    let in_optimize: HashSet<&str> = optimize
        .node_ids()
        .flat_map(|id| optimize.node(id).outputs.iter().map(|o| o.name.as_str()))
        .collect();
    let mut names: Vec<String> = parse
        .outputs
        .iter()
        .filter(|o| !after_selection.contains(&o.value.node))
        .map(|o| o.name.clone())
        .collect();
    for id in selections {
        for v in parse.inputs_of(id).into_iter().flatten() {
            let name = &parse.value_info(v).name;
            if in_optimize.contains(name.as_str()) && !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names
}

/// A copy of `g` whose outputs are the named tensors (graph outputs by their output name,
/// anything else by its tensor name).
pub fn with_outputs(g: &Graph, names: &[String]) -> Graph {
    let mut out = g.clone();
    out.outputs = names
        .iter()
        .filter_map(|n| {
            let value = g
                .outputs
                .iter()
                .find(|o| &o.name == n)
                .map(|o| o.value)
                .or_else(|| {
                    g.node_ids().find_map(|id| {
                        g.node(id)
                            .outputs
                            .iter()
                            .position(|o| &o.name == n)
                            .map(|p| ValueRef::new(id, p))
                    })
                })?;
            Some(GraphOutput {
                name: n.clone(),
                value,
            })
        })
        .collect();
    out
}

/// `; the first layer to diverge is ...`, from the tensors both graphs compute.
fn first_divergence(
    parse: &Graph,
    optimize: &Graph,
    inputs: &[(String, Tensor)],
) -> Result<String> {
    let layer_values = |g: &Graph| -> HashMap<String, ValueRef> {
        g.node_ids()
            .filter(|&id| !matches!(g.node(id).op, Op::Input { .. } | Op::Constant { .. }))
            .flat_map(|id| {
                g.node(id)
                    .outputs
                    .iter()
                    .enumerate()
                    .map(move |(p, o)| (o.name.clone(), ValueRef::new(id, p)))
            })
            .collect()
    };
    let (in_parse, in_opt) = (layer_values(parse), layer_values(optimize));
    let order = optimize
        .topo_order()
        .map_err(|n| Error::internal(format!("cycle through {}", optimize.describe(n))))?;
    let shared: Vec<(String, ValueRef)> = order
        .iter()
        .flat_map(|&id| optimize.node(id).outputs.iter().map(|o| o.name.clone()))
        .filter(|n| in_parse.contains_key(n))
        .map(|n| (n.clone(), in_opt[&n]))
        .collect();
    let probe = |g: &Graph, values: &HashMap<String, ValueRef>| {
        let mut g = g.clone();
        let seen: HashSet<String> = g.outputs.iter().map(|o| o.name.clone()).collect();
        for (name, _) in &shared {
            if !seen.contains(name) {
                g.outputs.push(GraphOutput {
                    name: name.clone(),
                    value: values[name],
                });
            }
        }
        g
    };
    let a: HashMap<String, Tensor> = run(&probe(parse, &in_parse), inputs)?.into_iter().collect();
    let b: HashMap<String, Tensor> = run(&probe(optimize, &in_opt), inputs)?
        .into_iter()
        .collect();
    for (name, v) in &shared {
        let e = error(&b[name], &a[name]);
        if e > TOLERANCE {
            return Ok(format!(
                "; the first layer to diverge is {} (relative L2 {e:.3e})",
                optimize.describe(v.node)
            ));
        }
    }
    Ok("; every layer both graphs share agrees, so the difference is in a fused layer".into())
}
