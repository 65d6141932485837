//! Shape inference: fills every node output's dtype, shape and layout tag in topological order,
//! one small rule per op family. Dims are known, a named symbol (a dynamic batch, an ONNX
//! `dim_param`), or unknown; a symbol survives every op that keeps its axis, anything that
//! cannot be computed becomes unknown, and the rank is always known. The rules also resolve
//! what the frontend had to leave open until shapes are known: an equal Split (sizes all zero)
//! and a Transpose with no perm (reverse).

#![forbid(unsafe_code)]

mod conv;
mod detection;
mod dims;
mod elementwise;
pub mod evaluate;
mod indexing;
mod linalg;
mod movement;
mod pool;
mod reduce;

use temblor_ir::{
    DType, Dim, Error, Graph, NodeId, Op, OpFamily, Result, Shape, TensorType, ValueRef, Weight,
};

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

/// A node's inputs as shape rules see them: types, and the values of constant operands.
pub(crate) struct Ins<'a> {
    g: &'a Graph,
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

    /// The weight behind input `p`, when a constant feeds it.
    pub fn weight(&self, p: usize) -> Option<&'a Weight> {
        let g = self.g;
        self.values
            .get(p)
            .copied()
            .flatten()
            .and_then(|v| g.constant(v))
    }

    /// The integer values of a constant input `p`.
    pub fn ints(&self, p: usize) -> Option<Vec<i64>> {
        self.weight(p).and_then(|w| w.to_i64())
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

fn infer_node(g: &Graph, id: NodeId) -> Result<Inferred, String> {
    let node = g.node(id);
    let ins = Ins {
        g,
        values: g.inputs_of(id),
        n_outputs: node.outputs.len(),
    };
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
        Op::Custom {
            domain,
            name,
            attrs,
        } => {
            if domain != temblor_ops_lib::DOMAIN {
                return Err(format!("no shape rule for custom op {domain}:{name}"));
            }
            let lib = temblor_ops_lib::LibOp::parse(name, attrs)?;
            let types: Vec<Option<TensorType>> =
                (0..ins.len()).map(|p| ins.opt(p).cloned()).collect();
            Ok((None, lib.infer(&types)?))
        }
        // Nothing is known of what an unmapped op computes, but the IR has no unknown rank:
        // each output takes the dtype and rank the source declares for it, else its first
        // input's, so that the rules downstream still type the rest of the graph for `inspect`
        // and the parse view. Every dim is unknown: a declared extent of a value temblor cannot
        // compute is a claim it cannot check.
        Op::Opaque { declared, .. } => {
            let fallback = ins.opt(0).cloned();
            let types = (0..node.outputs.len())
                .map(|k| {
                    let ty = declared.get(k).cloned().flatten().or(fallback.clone());
                    let ty = ty.unwrap_or_else(|| TensorType::new(DType::F32, Shape::default()));
                    TensorType {
                        shape: Shape(vec![Dim::Unknown; ty.shape.rank()]),
                        ..ty
                    }
                })
                .collect();
            Ok((None, types))
        }
        op => match op.family() {
            OpFamily::Convolution => conv::infer(op, &ins),
            OpFamily::Elementwise => elementwise::infer(op, &ins),
            OpFamily::Movement => movement::infer(op, &ins),
            OpFamily::Reduction => reduce::infer(op, &ins),
            OpFamily::Detection | OpFamily::Quantization => detection::infer(op, &ins),
            OpFamily::Value | OpFamily::Custom | OpFamily::Opaque => Err(not_in_family(op)),
        },
    }
}

/// The error of a family rule asked for an op outside its family.
pub(crate) fn not_in_family(op: &Op) -> String {
    format!("internal error: {} reached the wrong shape rule", op.name())
}
