//! Shape inference: fills every node output's dtype, shape and layout tag in topological order,
//! one small rule per op family. Dims are known, a named symbol (a dynamic batch, an ONNX
//! `dim_param`), or unknown; a symbol survives every op that keeps its axis, anything that
//! cannot be computed becomes unknown, and the rank is always known. The rules also resolve
//! what the frontend had to leave open until shapes are known: an equal Split (sizes all zero)
//! and a Transpose with no perm (reverse).

mod conv;
mod dims;
mod elementwise;
mod movement;

use crate::{Error, Result};
use temblor_ir::{Dim, Graph, NodeId, Op, TensorType};

/// Sets the dims of named graph inputs (`Usage` errors: the user gave the names and sizes). A
/// dim the model fixes must be given its own value.
pub fn fix_inputs(g: &mut Graph, dims: &[(String, Vec<usize>)]) -> Result<()> {
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
                Dim::Known(k) if *k != w => {
                    return Err(Error::usage(format!(
                        "input '{name}' has a fixed size {k} on axis {axis}, but {w} was given"
                    )));
                }
                _ => *d = Dim::Known(w),
            }
        }
    }
    Ok(())
}

/// Computes the type of every node output from its inputs. Errors name the node.
pub fn infer(g: &mut Graph) -> Result<()> {
    let order = g.topo_order().map_err(|n| {
        Error::bad_input(format!("the graph has a cycle through {}", g.describe(n)))
    })?;
    for id in order {
        let (op, types) =
            infer_node(g, id).map_err(|e| Error::bad_input(format!("{}: {e}", g.describe(id))))?;
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
    }
    Ok(())
}

/// The output types of one node, and its op when shape inference resolved an attribute.
fn infer_node(g: &Graph, id: NodeId) -> Result<(Option<Op>, Vec<TensorType>), String> {
    let node = g.node(id);
    let ins = g.inputs_of(id);
    let ty = |p: usize| {
        ins.get(p)
            .copied()
            .flatten()
            .map(|v| g.value_type(v))
            .ok_or_else(|| format!("input {p} is not connected"))
    };
    let opt = |p: usize| ins.get(p).copied().flatten().map(|v| g.value_type(v));
    let one = |t: TensorType| Ok((None, vec![t]));
    match &node.op {
        Op::Input { .. } => Ok((None, node.outputs.iter().map(|o| o.ty.clone()).collect())),
        Op::Constant { weight } => {
            let w = g.weights.get(*weight).ok_or("refers to a missing weight")?;
            let layout = node
                .outputs
                .first()
                .map(|o| o.ty.layout)
                .unwrap_or_default();
            one(TensorType {
                dtype: w.dtype,
                shape: w.shape(),
                layout,
            })
        }
        Op::Conv(a) => one(conv::conv(a, ty(0)?, ty(1)?, opt(2))?),
        Op::ConvTranspose(a) => one(conv::conv_transpose(a, ty(0)?, ty(1)?, opt(2))?),
        Op::BatchNorm { .. } => {
            let params = [ty(1)?, ty(2)?, ty(3)?, ty(4)?];
            one(conv::batch_norm(ty(0)?, &params)?)
        }
        Op::GlobalAveragePool => one(conv::global_pool(ty(0)?)?),
        Op::Resize(a) => one(conv::resize(a, ty(0)?)?),
        Op::Unary(_) | Op::HardSigmoid { .. } | Op::Clip { .. } => one(ty(0)?.clone()),
        Op::Binary(_) => one(elementwise::binary(ty(0)?, ty(1)?)?),
        Op::Concat { axis } => {
            let all = (0..ins.len()).map(ty).collect::<Result<Vec<_>, _>>()?;
            one(movement::concat(*axis, &all)?)
        }
        Op::Reshape { allowzero } => {
            let target = ins
                .get(1)
                .copied()
                .flatten()
                .and_then(|v| g.constant(v))
                .and_then(|w| w.to_i64());
            one(movement::reshape(
                ty(0)?,
                ty(1)?,
                target.as_deref(),
                *allowzero,
            )?)
        }
        Op::Transpose { perm } => {
            let (perm, out) = movement::transpose(perm, ty(0)?)?;
            Ok((Some(Op::Transpose { perm }), vec![out]))
        }
        Op::Split { axis, sizes } => {
            let (sizes, outs) = movement::split(*axis, sizes, ty(0)?)?;
            Ok((Some(Op::Split { axis: *axis, sizes }), outs))
        }
        Op::Custom { domain, name, .. } => {
            Err(format!("no shape rule for custom op {domain}:{name}"))
        }
    }
}
