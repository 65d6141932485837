//! Pushes a Transpose down through the elementwise layer that reads it: `f(transpose(x), c)`
//! becomes `transpose(f(x, c'))`, with each constant operand `c` permuted into `x`'s layout
//! (`c'`), and a binary layer whose two operands are transposed alike takes one Transpose after
//! it instead of two before. Models converted from Keras and TensorFlow (NHWC) wrap every
//! convolution in a Transpose pair and write BatchNorm, bias and residual Adds in NHWC between
//! them; pushed down, each Transpose meets its inverse (merged by `merge_reshapes`, then dropped
//! by `remove_no_ops`) and the affine layers reach the convolution they fold into.
//!
//! A layer whose transposed operand it broadcasts is left alone, as is a Transpose something
//! else also reads (the untransposed copy would stay behind).

use crate::rewrite::{Replacement, Rewrite};
use crate::{Pass, PassError, Rewriter};
use temblor_ir::{
    DType, Dim, Graph, Layout, Node, NodeId, Op, Shape, TensorInfo, TensorType, ValueRef, Weight,
};

pub struct PushTransposes;

impl Pass for PushTransposes {
    fn name(&self) -> &'static str {
        "push_transposes"
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        rw.each(elementwise, pushed);
        Ok(())
    }
}

/// Layers that compute each output element from the same element of every operand (after
/// broadcasting), so they commute with a permutation of the axes.
fn elementwise(op: &Op) -> bool {
    matches!(
        op,
        Op::Unary(_)
            | Op::Binary(_)
            | Op::LeakyRelu { .. }
            | Op::HardSigmoid { .. }
            | Op::Gelu { .. }
    )
}

/// What an operand of the layer becomes once the Transpose is below it.
enum Operand {
    /// The input of the Transpose (node) it read.
    Untransposed(ValueRef, NodeId),
    /// A constant, already in the untransposed layout (a scalar is the same in any).
    Constant(ValueRef),
    /// A constant to permute: its values and extents, aligned to the layer's rank.
    Permute(Vec<f32>, Vec<usize>),
}

fn pushed(g: &Graph, layer: NodeId) -> Option<Rewrite> {
    let node = g.node(layer);
    if node.outputs.len() != 1 {
        return None;
    }
    let out = &node.outputs[0].ty;
    let dims = out.shape.known()?;
    let mut perm: Option<Vec<usize>> = None;
    let mut operands = Vec::new();
    for v in g.inputs_of(layer) {
        let v = v?;
        let producer = g.node(v.node);
        if let Op::Transpose { perm: p } = &producer.op {
            let x = g.input(v.node, 0)?;
            if p.len() != dims.len()
                || perm.as_ref().is_some_and(|q| q != p)
                || g.value_type(v).shape.known()? != dims
                || !read_only_by(g, v, layer)
            {
                return None;
            }
            perm = Some(p.clone());
            operands.push(Operand::Untransposed(x, v.node));
            continue;
        }
        let w = g.constant(v)?;
        if w.element_count() == 1 {
            operands.push(Operand::Constant(v));
            continue;
        }
        let shape = w.shape().known()?;
        if w.dtype != DType::F32 || shape.len() > dims.len() {
            return None;
        }
        let mut aligned = vec![1; dims.len() - shape.len()];
        aligned.extend(shape);
        operands.push(Operand::Permute(w.to_f32()?, aligned));
    }
    let perm = perm?;
    let transposes: Vec<NodeId> = operands
        .iter()
        .filter_map(|o| match o {
            Operand::Untransposed(_, t) => Some(*t),
            _ => None,
        })
        .collect();
    let op = node.op.clone();
    let name = node.name.clone();
    let mut before = vec![Dim::Unknown; dims.len()];
    for (i, &axis) in perm.iter().enumerate() {
        before[axis] = Dim::Known(dims[i]);
    }
    let untransposed = TensorType {
        dtype: out.dtype,
        shape: Shape(before),
        layout: Layout::Any,
    };
    let mut matched = transposes.clone();
    matched.push(layer);
    Some(Rewrite::new(matched, layer, move |p| {
        let inputs: Vec<Option<ValueRef>> = operands
            .into_iter()
            .enumerate()
            .map(|(i, o)| match o {
                Operand::Untransposed(x, _) => x,
                Operand::Constant(v) => v,
                Operand::Permute(values, dims) => {
                    let (values, dims) = untranspose(&values, &dims, &perm);
                    let weight = Weight::from_f32(dims, &values);
                    p.constant(format!("{name}.in{i}.untransposed"), weight, Layout::Any)
                }
            })
            .map(Some)
            .collect();
        let info = TensorInfo {
            name: format!("{name}.untransposed"),
            ty: untransposed,
        };
        let inner = p.node(
            Node::new(format!("{name}.untransposed"), op, vec![info]),
            &inputs,
        );
        Replacement::New {
            name,
            op: Op::Transpose { perm },
            inputs: vec![Some(ValueRef::new(inner, 0))],
        }
    }))
}

/// `values` (extents `dims`) as they are before `perm` is applied: the tensor whose transpose by
/// `perm` they are. Axis `perm[i]` of the result is axis `i` of the input.
fn untranspose(values: &[f32], dims: &[usize], perm: &[usize]) -> (Vec<f32>, Vec<usize>) {
    let rank = dims.len();
    let mut out_dims = vec![0; rank];
    for (i, &p) in perm.iter().enumerate() {
        out_dims[p] = dims[i];
    }
    // Strides of the result, read in the order of the input's axes.
    let mut out_strides = vec![1; rank];
    for axis in (0..rank.saturating_sub(1)).rev() {
        out_strides[axis] = out_strides[axis + 1] * out_dims[axis + 1];
    }
    let strides: Vec<usize> = perm.iter().map(|&p| out_strides[p]).collect();
    let mut out = vec![0.0; values.len()];
    let mut index = vec![0; rank];
    for &v in values {
        let at: usize = index.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out[at] = v;
        for axis in (0..rank).rev() {
            index[axis] += 1;
            if index[axis] < dims[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    (out, out_dims)
}

/// Whether `reader` is the only reader of `v` and `v` is no graph output.
fn read_only_by(g: &Graph, v: ValueRef, reader: NodeId) -> bool {
    matches!(g.consumers(v)[..], [(r, _)] if r == reader) && !g.outputs.iter().any(|o| o.value == v)
}

#[cfg(test)]
mod tests {
    use super::untranspose;

    #[test]
    fn a_channel_vector_in_nhwc_becomes_one_in_nchw() {
        // [1,1,1,3] read through perm [0,2,3,1] (NCHW -> NHWC) is [1,3,1,1] before it.
        let (v, d) = untranspose(&[1.0, 2.0, 3.0], &[1, 1, 1, 3], &[0, 2, 3, 1]);
        assert_eq!((v, d), (vec![1.0, 2.0, 3.0], vec![1, 3, 1, 1]));
    }

    #[test]
    fn a_matrix_is_transposed_back() {
        // [[1,2,3],[4,5,6]] is the transpose by [1,0] of [[1,4],[2,5],[3,6]].
        let (v, d) = untranspose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], &[1, 0]);
        assert_eq!((v, d), (vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0], vec![3, 2]));
    }
}
