//! Which shape rule each op takes. The match names every [`Op`] variant and has no wildcard, so
//! an op added to the IR does not compile until it has a rule here; each arm hands the family
//! file (or ops_lib) the op's own attributes and the inputs it reads.

use super::evaluate::Static;
use super::{
    conv, detection, elementwise, indexing, linalg, movement, one, pool, reduce, Inferred, Ins,
};
use temblor_ir::{DType, Dim, Graph, NodeId, Op, Shape, TensorInfo, TensorType, ValueRef};

pub(super) fn infer_node(g: &Graph, id: NodeId, known: &Static) -> Result<Inferred, String> {
    let node = g.node(id);
    infer_op(g, &node.op, g.inputs_of(id), &node.outputs, known)
}

/// The rule of `op` over `values` (by port), for a node declaring `outputs`: a node of the graph,
/// or one a rewrite is about to build.
pub(super) fn infer_op(
    g: &Graph,
    op: &Op,
    values: Vec<Option<ValueRef>>,
    outputs: &[TensorInfo],
    known: &Static,
) -> Result<Inferred, String> {
    let ins = &Ins {
        g,
        known,
        values,
        n_outputs: outputs.len(),
    };
    match op {
        Op::Input { .. } => Ok((None, outputs.iter().map(|o| o.ty.clone()).collect())),
        Op::Constant { weight } => {
            let w = g.weights.get(*weight).ok_or("refers to a missing weight")?;
            let layout = outputs.first().map(|o| o.ty.layout).unwrap_or_default();
            one(TensorType {
                dtype: w.dtype,
                shape: w.shape(),
                layout,
            })
        }

        // Nothing is known of what an unmapped op computes, but the IR has no unknown rank:
        // each output takes the dtype and rank the source declares for it, else its first
        // input's, so that the rules downstream still type the rest of the graph for `inspect`
        // and the parse view. Every dim is unknown: a declared extent of a value temblor cannot
        // compute is a claim it cannot check.
        Op::Opaque { declared, .. } => {
            let fallback = ins.opt(0).cloned();
            let types = (0..outputs.len())
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

        // `infer` types control flow with its bodies (control.rs) before it reaches this rule;
        // a rewrite that only moves such a node keeps its types.
        Op::Loop(_) | Op::If { .. } => Ok((None, outputs.iter().map(|o| o.ty.clone()).collect())),

        Op::Conv(a) => {
            let resolved = conv::explicit_pads(a, ins.ty(0)?);
            let a = resolved.as_ref().unwrap_or(a);
            let out = conv::conv(a, ins.ty(0)?, ins.ty(1)?, ins.opt(2))?;
            Ok((resolved.map(Op::Conv), vec![out]))
        }
        Op::ConvTranspose(a) => one(conv::conv_transpose(a, ins.ty(0)?, ins.ty(1)?, ins.opt(2))?),
        Op::BatchNorm { .. } => {
            let params = [ins.ty(1)?, ins.ty(2)?, ins.ty(3)?, ins.ty(4)?];
            one(conv::batch_norm(ins.ty(0)?, &params)?)
        }
        Op::Resize(a) => one(conv::resize(a, ins)?),

        Op::Unary(_)
        | Op::LeakyRelu { .. }
        | Op::HardSigmoid { .. }
        | Op::Clip { .. }
        | Op::Gelu { .. } => one(ins.ty(0)?.clone()),
        Op::Binary(b) => one(elementwise::binary_op(*b, ins.ty(0)?, ins.ty(1)?)?),
        Op::Where => one(elementwise::where_(ins.ty(0)?, ins.ty(1)?, ins.ty(2)?)?),
        Op::Cast { to } => one(TensorType {
            dtype: *to,
            ..ins.ty(0)?.clone()
        }),
        Op::CastLike => one(TensorType {
            dtype: ins.ty(1)?.dtype,
            ..ins.ty(0)?.clone()
        }),

        Op::Concat { axis } => one(movement::concat(*axis, &ins.all()?)?),
        Op::Reshape { allowzero } => one(movement::reshape(
            ins.ty(0)?,
            ins.ty(1)?,
            ins.ints(1).as_deref(),
            *allowzero,
        )?),
        Op::Transpose { perm } => {
            let (perm, out) = movement::transpose(perm, ins.ty(0)?)?;
            Ok((Some(Op::Transpose { perm }), vec![out]))
        }
        Op::Split { axis, sizes } => {
            let (sizes, outs) = movement::split(*axis, sizes, ins.ty(0)?, ins.ints(1))?;
            Ok((Some(Op::Split { axis: *axis, sizes }), outs))
        }
        Op::Slice => one(indexing::slice(ins)?),
        Op::Flatten { axis } => one(movement::flatten(*axis, ins.ty(0)?)?),
        Op::Squeeze => one(movement::squeeze(
            ins.ty(0)?,
            ins.opt(1),
            ins.ints(1).as_deref(),
        )?),
        Op::Unsqueeze => one(movement::unsqueeze(
            ins.ty(0)?,
            ins.ty(1)?,
            ins.ints(1).as_deref(),
        )?),
        Op::Expand => one(movement::expand(
            ins.ty(0)?,
            ins.ty(1)?,
            ins.ints(1).as_deref(),
        )?),
        Op::Tile => one(movement::tile(ins.ty(0)?, ins.ints(1).as_deref())?),
        Op::Gather { axis } => one(indexing::gather(*axis, ins.ty(0)?, ins.ty(1)?)?),
        Op::GatherElements { axis } => {
            one(indexing::gather_elements(*axis, ins.ty(0)?, ins.ty(1)?)?)
        }
        Op::GatherNd { batch_dims } => {
            one(indexing::gather_nd(*batch_dims, ins.ty(0)?, ins.ty(1)?)?)
        }
        Op::ScatterNd { .. } => one(indexing::scatter_nd(ins.ty(0)?, ins.ty(1)?, ins.ty(2)?)?),
        Op::Shape { start, end } => one(movement::shape_of(ins.ty(0)?, *start, *end)),
        Op::Size => one(movement::size()),
        Op::ConstantOfShape { value } => one(movement::constant_of_shape(
            value.dtype,
            ins.ty(0)?,
            ins.ints(0).as_deref(),
        )?),
        Op::Range => one(movement::range(ins)?),
        Op::Pad { .. } => one(movement::pad(ins)?),
        Op::NonZero => one(indexing::non_zero(ins.ty(0)?)),

        Op::MaxPool(a) => {
            let resolved = pool::explicit_pads(a, ins.ty(0)?);
            let a = resolved.as_ref().unwrap_or(a);
            let outs = pool::window(a, ins.ty(0)?, ins.n_outputs)?;
            Ok((resolved.map(Op::MaxPool), outs))
        }
        Op::AveragePool(a) => {
            let resolved = pool::explicit_pads(a, ins.ty(0)?);
            let a = resolved.as_ref().unwrap_or(a);
            let outs = pool::window(a, ins.ty(0)?, 1)?;
            Ok((resolved.map(Op::AveragePool), outs))
        }
        Op::GlobalAveragePool | Op::GlobalMaxPool => one(conv::global_pool(ins.ty(0)?)?),
        Op::Reduce {
            keepdims,
            noop_with_empty_axes,
            ..
        } => one(reduce::reduce(ins, *keepdims, *noop_with_empty_axes)?),
        Op::ArgExtreme { axis, keepdims, .. } => {
            one(reduce::arg_extreme(ins.ty(0)?, *axis, *keepdims)?)
        }
        Op::TopK { axis, .. } => reduce::top_k(ins, *axis),
        Op::MatMul => one(linalg::matmul(ins.ty(0)?, ins.ty(1)?)?),
        Op::Gemm {
            trans_a, trans_b, ..
        } => one(reduce::gemm(ins, *trans_a, *trans_b)?),
        Op::Einsum { equation } => one(linalg::einsum(equation, &ins.all()?)?),
        Op::Softmax { axis, .. } => one(reduce::softmax(ins.ty(0)?, *axis)?),
        Op::LayerNorm { axis, .. } => reduce::layer_norm(ins, *axis),

        Op::NonMaxSuppression { .. } => {
            one(detection::non_max_suppression(ins.ty(0)?, ins.ty(1)?)?)
        }
        Op::RoiAlign(a) => {
            let (oh, ow) = (a.output_height, a.output_width);
            one(detection::roi_align(
                ins.ty(0)?,
                ins.ty(1)?,
                ins.ty(2)?,
                oh,
                ow,
            )?)
        }
        Op::DeformConv(a) => one(detection::deform_conv(a, ins)?),
        Op::DeformSample(a) => one(detection::deform_sample(a, ins)?),
        Op::GridSample { .. } => one(detection::grid_sample(ins.ty(0)?, ins.ty(1)?)?),

        Op::QuantizeLinear { .. } => {
            let dtype = ins.opt(2).map_or(DType::U8, |z| z.dtype);
            one(detection::with_dtype(ins.ty(0)?, dtype))
        }
        Op::DequantizeLinear { .. } => one(detection::with_dtype(ins.ty(0)?, ins.ty(1)?.dtype)),

        Op::Lib(op) => {
            let types: Vec<Option<TensorType>> =
                (0..ins.len()).map(|p| ins.opt(p).cloned()).collect();
            Ok((None, temblor_ops_lib::infer(op, &types)?))
        }
        Op::Custom { domain, name, .. } => {
            Err(format!("no shape rule for custom op {domain}:{name}"))
        }
    }
}
