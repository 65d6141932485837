//! One step of a plan: the op's kernel on the step's input tensors.

use super::args::Args;
use super::expand_depthwise::expand_depthwise;
use super::{
    activation, bf16_conv, buffers, cast, conv, conv_transpose, deform_conv, detection, einsum,
    elementwise, elementwise_binary, fill, fully_connected, grid_sample, indexing, int8_conv,
    int8_depthwise, library, linalg, norm, pool, quant, reduce, resize, shape_ops, softmax,
};
use crate::RuntimeError;
use crate::Tensor;
use temblor_ir::{AutoPad, ConvAttrs, DType, Op, OpFamily, PoolAttrs, ResizeMode};

pub(crate) fn execute(op: &Op, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
    if let (Op::Conv(a), Some(c)) = (op, args.bf16_conv()) {
        let x = args.required(0)?;
        let a = &explicit_conv_pads(a, x)?;
        let out = bf16_conv::conv(a, c, x, args.optional(2), args.optional(3), args.isa)?;
        return Ok(vec![out]);
    }
    if computes_in_f32(op) {
        if let Some(half) = args
            .ins
            .iter()
            .flatten()
            .map(|t| t.dtype())
            .find(|d| d.is_half())
        {
            return in_f32(op, args, half);
        }
    }
    dispatch(op, args)
}

/// Whether an op that reads half values computes in f32 instead: the arithmetic families do, as
/// TensorRT's fp16 layers accumulate in f32 and onnxruntime's CPU provider widens fp16 nodes;
/// ops that only move or convert values keep their element type, and so does nearest resizing,
/// which picks one of its inputs and gives the same values either way without two conversions
/// over the tensor. (Max pooling picks too, but half's `max` is a conversion and a compare per
/// element: on the half values it took 2.5x the widened pooling and its conversions.)
pub(crate) fn computes_in_f32(op: &Op) -> bool {
    let picks = matches!(op, Op::Resize(a) if a.mode == ResizeMode::Nearest);
    !picks
        && !matches!(
            op.family(),
            OpFamily::Movement | OpFamily::Quantization | OpFamily::Value
        )
        && !matches!(op, Op::Cast { .. } | Op::CastLike)
}

/// Runs `op` on its half inputs widened to f32 and rounds its float outputs back to `half` (f16
/// or bf16), so a half layer stores half values and loses precision only where its outputs are
/// written.
fn in_f32(op: &Op, args: &Args, half: DType) -> Result<Vec<Tensor>, RuntimeError> {
    let widened: Vec<Option<Tensor>> = args
        .ins
        .iter()
        .map(|t| match t {
            Some(t) if t.dtype().is_half() => Some(cast::cast(t, DType::F32)).transpose(),
            _ => Ok(None),
        })
        .collect::<Result<_, _>>()?;
    let ins: Vec<Option<&Tensor>> = args
        .ins
        .iter()
        .zip(&widened)
        .map(|(t, w)| w.as_ref().or(*t))
        .collect();
    let outs = dispatch(
        op,
        &Args {
            ins: &ins,
            outputs: args.outputs,
            isa: args.isa,
            lowered: args.lowered,
            bytes: None,
        },
    )?;
    // The f32 temporaries go back to the run's pool: fresh buffers on every fp16 layer cost a
    // page fault per 4 KiB written.
    drop(ins);
    widened
        .into_iter()
        .flatten()
        .for_each(buffers::give_back_f32);
    outs.into_iter()
        .map(|t| match t.dtype() {
            DType::F32 => {
                let narrowed = cast::cast(&t, half);
                buffers::give_back_f32(t);
                narrowed
            }
            _ => Ok(t),
        })
        .collect()
}

/// The kernel of every op, by name: a new [`Op`] variant does not compile until it has a CPU
/// kernel here (or an error saying why it has none), instead of failing when a model first
/// reaches it.
fn dispatch(op: &Op, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
    let x = || args.required(0);
    let (req, opt) = (|p| args.required(p), |p| args.optional(p));
    let one = |t: Tensor| Ok(vec![t]);
    if let Some(fc) = args.fully_connected() {
        return one(fully_connected::run(fc, x()?, opt(1), args.isa)?);
    }
    if let Some(table) = args.byte_table() {
        return one(table.run(x()?, args.isa, args.bytes)?);
    }
    match op {
        Op::Input { .. } | Op::Constant { .. } => Err(RuntimeError::internal(format!(
            "{} is not a step",
            op.name()
        ))),

        Op::Conv(a) => {
            let a = &explicit_conv_pads(a, x()?)?;
            if let Some(f) = args.expand_depthwise() {
                let fused = [opt(4), opt(5), opt(6), opt(7)];
                let epilogue = (opt(2), opt(3));
                return one(expand_depthwise(
                    f,
                    a,
                    [x()?, req(1)?],
                    epilogue,
                    fused,
                    args.isa,
                )?);
            }
            let (epilogue, bytes) = ((opt(2), opt(3)), args.bytes);
            if let Some(d) = args.int8_depthwise() {
                return one(int8_depthwise::run(a, d, x()?, epilogue, args.isa, bytes)?);
            }
            one(match args.int8_conv() {
                Some(c) => int8_conv::conv(a, c, x()?, epilogue, args.isa, bytes)?,
                None => {
                    let lowered = (args.packed(), args.fake_quantize());
                    conv::conv_to(a, [x()?, req(1)?], epilogue, args.isa, lowered, bytes)?
                }
            })
        }
        Op::ConvTranspose(a) => one(conv_transpose::conv_transpose(
            a,
            x()?,
            req(1)?,
            opt(2),
            args.isa,
            args.phase_weights(),
        )?),
        Op::BatchNorm { epsilon } => {
            let params = [req(1)?, req(2)?, req(3)?, req(4)?];
            one(norm::batch_norm(x()?, params, *epsilon)?)
        }
        Op::Resize(a) => one(resize::resize(a, x()?, [opt(1), opt(2), opt(3)], args.isa)?),

        Op::Unary(u) => one(activation::unary(*u, x()?, args.isa)?),
        Op::LeakyRelu { alpha } => one(activation::leaky_relu(x()?, *alpha, args.isa)?),
        Op::HardSigmoid { alpha, beta } => {
            one(activation::hard_sigmoid(x()?, *alpha, *beta, args.isa)?)
        }
        Op::Clip { min, max } => one(activation::clip(x()?, *min, *max, args.isa)?),
        Op::Gelu { tanh } => one(activation::gelu(x()?, *tanh, args.isa)?),
        Op::Binary(b) => one(elementwise_binary::binary(*b, x()?, req(1)?)?),
        Op::Where => one(elementwise::where_(x()?, req(1)?, req(2)?)?),
        Op::Cast { to } => one(cast::cast(x()?, *to)?),
        Op::CastLike => one(cast::cast(x()?, req(1)?.dtype())?),

        Op::Concat { axis } => {
            let inputs = args.all()?;
            let bytes = match args.bytes {
                Some(q) => shape_ops::concat_bytes(&inputs, *axis, q, args.isa)?,
                None => None,
            };
            one(match bytes {
                Some(bytes) => bytes,
                None => shape_ops::concat(&inputs, *axis)?,
            })
        }
        Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze | Op::Unsqueeze => {
            one(shape_ops::view(op, x()?, opt(1))?)
        }
        Op::Transpose { perm } => one(shape_ops::transpose(x()?, perm)?),
        Op::Split { axis, sizes } => {
            shape_ops::split(x()?, *axis, sizes, args.optional(1), args.outputs)
        }
        Op::Slice => one(indexing::slice(x()?, args)?),
        Op::Expand => one(fill::expand(x()?, req(1)?)?),
        Op::Tile => one(fill::tile(x()?, req(1)?)?),
        Op::Gather { axis } => one(indexing::gather(x()?, req(1)?, *axis)?),
        Op::GatherElements { axis } => one(indexing::gather_elements(x()?, req(1)?, *axis)?),
        Op::GatherNd { batch_dims } => one(indexing::gather_nd(x()?, req(1)?, *batch_dims)?),
        Op::ScatterNd { reduction } => {
            one(indexing::scatter_nd(x()?, req(1)?, req(2)?, *reduction)?)
        }
        Op::Shape { start, end } => one(shape_ops::shape_of(&x()?.shape, *start, *end)),
        Op::Size => one(shape_ops::size(x()?)),
        Op::ConstantOfShape { value } => one(fill::constant_of_shape(x()?, *value)?),
        Op::Range => one(fill::range(x()?, req(1)?, req(2)?)?),
        Op::Pad { mode } => one(fill::pad(x()?, args, *mode)?),
        Op::NonZero => one(indexing::nonzero(x()?)?),

        Op::MaxPool(a) => pool::max_pool(
            &explicit_pool_pads(a, x()?),
            x()?,
            args.outputs > 1,
            args.isa,
        ),
        Op::AveragePool(a) => one(pool::average_pool(
            &explicit_pool_pads(a, x()?),
            x()?,
            args.isa,
        )?),
        Op::GlobalAveragePool => one(pool::global_average_pool(x()?)?),
        Op::GlobalMaxPool => one(pool::global_max_pool(x()?)?),
        Op::Reduce {
            op,
            keepdims,
            noop_with_empty_axes,
        } => one(reduce::reduce(
            *op,
            x()?,
            opt(1),
            (*keepdims, *noop_with_empty_axes),
        )?),
        Op::ArgExtreme {
            min,
            axis,
            keepdims,
            select_last_index,
        } => one(reduce::arg_extreme(
            x()?,
            *axis,
            *keepdims,
            (*min, *select_last_index),
        )?),
        Op::TopK {
            axis,
            largest,
            sorted: _,
        } => reduce::top_k(x()?, req(1)?, *axis, *largest),
        Op::MatMul => one(match args.packed_right() {
            Some(right) => linalg::matmul_packed(x()?, right, args.isa)?,
            None => linalg::matmul(x()?, req(1)?, args.isa)?,
        }),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => one(linalg::gemm(
            [x()?, req(1)?],
            opt(2),
            (*alpha, *beta),
            (*trans_a, *trans_b),
            args.isa,
        )?),
        Op::Einsum { equation } => one(einsum::einsum(equation, &args.all()?, args.isa)?),
        Op::Softmax { axis, log, flatten } => {
            one(softmax::softmax(x()?, *axis, *log, *flatten, args.isa)?)
        }
        Op::LayerNorm { axis, epsilon } => norm::layer_norm(
            x()?,
            req(1)?,
            opt(2),
            *axis,
            *epsilon,
            args.outputs,
            args.isa,
        ),

        Op::NonMaxSuppression { center_point_box } => one(detection::non_max_suppression(
            *center_point_box,
            x()?,
            req(1)?,
            opt(2),
            opt(3),
            opt(4),
        )?),
        Op::RoiAlign(a) => one(detection::roi_align(a, x()?, req(1)?, req(2)?)?),
        Op::DeformConv(a) => one(deform_conv::execute(
            a,
            x()?,
            req(1)?,
            req(2)?,
            opt(3),
            opt(4),
        )?),
        Op::DeformSample(a) => one(deform_conv::sample(a, x()?, req(1)?, opt(2))?),
        Op::GridSample {
            mode,
            padding,
            align_corners,
        } => {
            let sampling = grid_sample::Sampling {
                mode: *mode,
                padding: *padding,
                align_corners: *align_corners,
            };
            one(grid_sample::execute(&sampling, x()?, req(1)?)?)
        }

        Op::QuantizeLinear { axis, saturate: _ } => {
            one(quant::quantize(*axis, x()?, req(1)?, opt(2), args.isa)?)
        }
        Op::DequantizeLinear { axis } => one(match args.fake_quantize() {
            Some(q) => quant::fake_quantize(q, x()?, args.isa)?,
            None => quant::dequantize(*axis, x()?, req(1)?, opt(2), args.isa)?,
        }),

        Op::Lib(lib) => library::execute(lib, args),
        // The plan runs control flow itself (control.rs), with the bodies it prepared.
        Op::Loop(_) | Op::If { .. } => Err(RuntimeError::internal(format!(
            "{} reached the kernels without its bodies",
            op.name()
        ))),
        Op::Opaque { op_type, .. } => Err(RuntimeError::unsupported(format!(
            "{op_type} is an op temblor cannot map"
        ))),
        Op::Custom { domain, name, .. } => Err(RuntimeError::unsupported(format!(
            "custom op {domain}:{name} has no CPU kernel"
        ))),
    }
}

/// A Conv's SAME pads computed for this run's input (a model compiled with dynamic extents);
/// shape inference has made them explicit wherever the extents were known.
fn explicit_conv_pads(a: &ConvAttrs, x: &Tensor) -> Result<ConvAttrs, RuntimeError> {
    match (a.auto_pad, x.shape.as_slice()) {
        (AutoPad::NotSet, _) => Ok(a.clone()),
        (_, [_, _, h, w]) => Ok(a.resolved([*h, *w])),
        (_, s) => Err(RuntimeError::bad_input(format!(
            "Conv input has shape {s:?}, expected [N, C, H, W]"
        ))),
    }
}

/// A pool's SAME pads computed for this run's input, as [`explicit_conv_pads`].
fn explicit_pool_pads(a: &PoolAttrs, x: &Tensor) -> PoolAttrs {
    match a.auto_pad {
        AutoPad::NotSet => a.clone(),
        _ => a.resolved(x.shape.get(2..).unwrap_or(&[])),
    }
}
