//! Shape inference: fills every node output's dtype, shape and layout tag in topological order,
//! one small rule per op, in one file per op family, chosen in `dispatch.rs` by a match over
//! every op. Dims are known, a named symbol (a dynamic batch, an ONNX
//! `dim_param`), or unknown; a symbol survives every op that keeps its axis, anything that
//! cannot be computed becomes unknown, and the rank is always known. The rules also resolve
//! what the frontend had to leave open until shapes are known: an equal Split (sizes all zero)
//! and a Transpose with no perm (reverse).

#![forbid(unsafe_code)]

mod control;
mod conv;
mod detection;
mod dims;
mod dispatch;
mod elementwise;
pub mod evaluate;
mod footprint;
use evaluate::Static;
pub use footprint::{check_peak, peak_bytes};
mod indexing;
mod linalg;
mod movement;
mod pool;
mod reduce;

use temblor_ir::{Dim, Error, Graph, Op, Result, TensorInfo, TensorType, ValueRef, Weight};

/// Whether `--input NAME:DIMS` may change a dim the model declares static.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StaticDims {
    /// A static dim must be given its own value (the default: a different one is a mistake).
    #[default]
    Keep,
    /// The given value replaces it (`--override-shapes`: models exported with a placeholder
    /// size). Shape inference then retypes the whole graph, and a node that cannot take the new
    /// size fails there, named.
    Override,
}

/// Sets the dims of named graph inputs (`Usage` errors: the user gave the names and sizes). A
/// dim the model fixes must be given its own value unless `statics` is [`StaticDims::Override`].
pub fn fix_inputs(g: &mut Graph, dims: &[(String, Vec<usize>)], statics: StaticDims) -> Result<()> {
    for (name, want) in dims {
        let Some(id) = g
            .inputs
            .iter()
            .copied()
            .find(|&id| g.node(id).outputs.first().is_some_and(|o| &o.name == name))
        else {
            let names: Vec<String> = g
                .inputs
                .iter()
                .filter_map(|&id| g.node(id).outputs.first().map(|o| o.name.clone()))
                .collect();
            return Err(Error::usage(format!(
                "the model has no input named '{name}'; its inputs are: {}",
                names.join(", ")
            )));
        };
        let Some(info) = g.node_mut(id).outputs.first_mut() else {
            return Err(Error::internal(format!(
                "input '{name}' has no output value"
            )));
        };
        let shape = &mut info.ty.shape;
        if shape.rank() != want.len() {
            return Err(Error::usage(format!(
                "input '{name}' has rank {} ({shape}), but {} dims were given",
                shape.rank(),
                want.len()
            )));
        }
        for (axis, (d, &w)) in shape.0.iter_mut().zip(want).enumerate() {
            match d {
                Dim::Known(k) if *k != w && statics == StaticDims::Keep => {
                    return Err(Error::usage(format!(
                        "input '{name}' has a fixed size {k} on axis {axis}, but {w} was given \
                         (--override-shapes replaces a size the model declares)"
                    )));
                }
                _ => *d = Dim::Known(w),
            }
        }
    }
    Ok(())
}

/// Whether `dims` lead with an open batch: rank 2 or more (an image, a row of sizes; a rank-1
/// input is a list, not a batch of anything) and axis 0 not known.
pub fn has_open_batch(dims: &[Dim]) -> bool {
    dims.len() >= 2 && dims[0].known().is_none()
}

/// Sets an open batch (axis 0, see [`has_open_batch`]) of every graph input to 1, as trtexec
/// and Polygraphy do for a shape they are not given. Returns each changed input as
/// `'name' [dims before]`, for the caller's warning; other unknown dims stay as they are.
pub fn default_batch(g: &mut Graph) -> Vec<String> {
    let mut changed = Vec::new();
    for id in g.inputs.clone() {
        let Some(info) = g.node_mut(id).outputs.first_mut() else {
            continue;
        };
        if has_open_batch(info.ty.shape.dims()) {
            let dims: Vec<String> = info.ty.shape.0.iter().map(Dim::to_string).collect();
            changed.push(format!("'{}' [{}]", info.name, dims.join(", ")));
            info.ty.shape.0[0] = Dim::Known(1);
        }
    }
    changed
}

/// Computes the type of every node output from its inputs. Errors name the node; so does an
/// output larger than the process's value limit, found before it is evaluated, and a graph whose
/// run would exceed the peak limit.
///
/// Values that only depend on constants and static extents (a Shape -> Gather -> Concat chain,
/// a Reshape target computed from a rank) are evaluated as the walk goes, so that a rule reading
/// an operand (Reshape's shape, ConstantOfShape's extents, Split's sizes) sees it as the
/// constant it is once the inputs' dims are fixed; the graph itself is left as it is, for
/// constant folding to rewrite.
pub fn infer(g: &mut Graph) -> Result<()> {
    let order = g.topo_order().map_err(|n| {
        Error::bad_input(format!("the graph has a cycle through {}", g.describe(n)))
    })?;
    let mut known = Static::default();
    let limits = temblor_ir::limits::Limits::get();
    for id in order {
        let (op, types) = match control::infer(g, id)? {
            Some(types) => (None, types),
            None => dispatch::infer_node(g, id, &known)
                .map_err(|e| Error::bad_input(format!("{}: {e}", g.describe(id))))?,
        };
        let node = g.node_mut(id);
        if types.len() != node.outputs.len() {
            return Err(Error::internal(format!(
                "node '{}': shape rule gave {} outputs for {}",
                node.name,
                types.len(),
                node.outputs.len()
            )));
        }
        if let Some(op) = op {
            node.op = op;
        }
        for (info, ty) in node.outputs.iter_mut().zip(types) {
            info.ty = ty;
        }
        footprint::check_outputs(g, id, &limits)?;
        known.evaluate(g, id);
    }
    check_peak(g, &limits)
}

/// A node's inputs as shape rules see them: types, and the values of constant operands.
pub(crate) struct Ins<'a> {
    g: &'a Graph,
    /// Values shape inference has evaluated so far.
    known: &'a Static,
    values: Vec<Option<ValueRef>>,
    /// How many outputs the node declares.
    pub n_outputs: usize,
}

impl<'a> Ins<'a> {
    /// The number of input ports the node has (connected or not).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn ty(&self, p: usize) -> Result<&'a TensorType, String> {
        self.opt(p)
            .ok_or_else(|| format!("input {p} is not connected"))
    }

    pub fn opt(&self, p: usize) -> Option<&'a TensorType> {
        let g = self.g;
        self.values
            .get(p)
            .copied()
            .flatten()
            .map(|v| g.value_type(v))
    }

    /// The value of input `p`, when a constant feeds it or it is static (computed only from
    /// constants and static extents).
    pub fn weight(&self, p: usize) -> Option<&'a Weight> {
        let (g, known) = (self.g, self.known);
        self.values
            .get(p)
            .copied()
            .flatten()
            .and_then(|v| g.constant(v).or_else(|| known.get(v)))
    }

    /// The integer values of a constant input `p`.
    pub fn ints(&self, p: usize) -> Option<Vec<i64>> {
        self.weight(p).and_then(|w| w.to_i64())
    }

    /// The value of input `p` when it is static: a constant, or computed from constants and
    /// static shapes (see [`evaluate::static_value`]).
    fn static_value(&self, p: usize) -> Option<temblor_runtime::Tensor> {
        let v = self.values.get(p).copied().flatten()?;
        evaluate::static_value(self.g, v)
    }

    /// The f32 values of a static input `p`.
    pub fn static_f32(&self, p: usize) -> Option<Vec<f32>> {
        self.static_value(p)
            .and_then(|t| t.as_f32().map(<[f32]>::to_vec))
    }

    /// The int64 values of a static input `p`.
    pub fn static_i64(&self, p: usize) -> Option<Vec<i64>> {
        self.static_value(p)
            .and_then(|t| t.as_i64().map(<[i64]>::to_vec))
    }

    /// Every connected input's type, in port order.
    pub fn all(&self) -> Result<Vec<&'a TensorType>, String> {
        (0..self.len()).map(|p| self.ty(p)).collect()
    }
}

/// The output types of a node, and its op when shape inference resolved an attribute.
pub(crate) type Inferred = (Option<Op>, Vec<TensorType>);

pub(crate) fn one(t: TensorType) -> Result<Inferred, String> {
    Ok((None, vec![t]))
}

/// The output types a node computing `op` over `inputs` (by port) would have, without adding it
/// to `g`: a rewrite checks its replacement with this before it changes the graph, so a
/// replacement of the wrong type is never built. `outputs` are the outputs the node would
/// declare.
pub fn output_types(
    g: &Graph,
    op: &Op,
    inputs: Vec<Option<ValueRef>>,
    outputs: &[TensorInfo],
) -> Result<Vec<TensorType>, String> {
    dispatch::infer_op(g, op, inputs, outputs, &Static::default()).map(|(_, types)| types)
}
