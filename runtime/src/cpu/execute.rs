//! One step of a plan: the op's family kernel on the step's input tensors.

use super::args::{not_in_family, Args};
use super::{
    activation, cast, conv, conv_transpose, detection, elementwise, linalg, norm, pool, quant,
    reduce, resize, shape_ops,
};
use crate::RuntimeError;
use crate::Tensor;
use temblor_ir::{DType, Op, OpFamily};

pub(crate) fn execute(op: &Op, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
    if computes_in_f32(op) && args.ins.iter().flatten().any(|t| t.dtype() == DType::F16) {
        return in_f32(op, args);
    }
    dispatch(op, args)
}

/// Whether an op that reads half values computes in f32 instead: the arithmetic families do, as
/// TensorRT's fp16 layers accumulate in f32 and onnxruntime's CPU provider widens fp16 nodes;
/// ops that only move or convert values keep their element type.
fn computes_in_f32(op: &Op) -> bool {
    !matches!(
        op.family(),
        OpFamily::Movement | OpFamily::Quantization | OpFamily::Value
    ) && !matches!(op, Op::Cast { .. })
}

/// Runs `op` on its half inputs widened to f32 and rounds its float outputs back to half, so a
/// half layer stores half values and loses precision only where its outputs are written.
fn in_f32(op: &Op, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
    let widened: Vec<Option<Tensor>> = args
        .ins
        .iter()
        .map(|t| match t {
            Some(t) if t.dtype() == DType::F16 => Some(cast::cast(t, DType::F32)).transpose(),
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
            packed: args.packed,
        },
    )?;
    outs.into_iter()
        .map(|t| match t.dtype() {
            DType::F32 => cast::cast(&t, DType::F16),
            _ => Ok(t),
        })
        .collect()
}

fn dispatch(op: &Op, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
    match op.family() {
        OpFamily::Convolution => convolution(op, args),
        OpFamily::Elementwise => match op {
            Op::Binary(_) | Op::Where | Op::Cast { .. } => elementwise::execute(op, args),
            _ => activation::execute(op, args),
        },
        OpFamily::Movement => shape_ops::execute(op, args),
        OpFamily::Reduction => match op {
            Op::MaxPool(_) | Op::AveragePool(_) | Op::GlobalAveragePool | Op::GlobalMaxPool => {
                pool::execute(op, args)
            }
            Op::MatMul | Op::Gemm { .. } | Op::Einsum { .. } => linalg::execute(op, args),
            _ => reduce::execute(op, args),
        },
        OpFamily::Detection => detection::execute(op, args),
        OpFamily::Quantization => quant::execute(op, args),
        OpFamily::Custom => super::library::execute(op, args),
        OpFamily::Opaque => Err(RuntimeError::unsupported(format!(
            "{} is an op temblor cannot map",
            op.name()
        ))),
        OpFamily::Value => Err(RuntimeError::internal(format!(
            "{} is not a step",
            op.name()
        ))),
    }
}

fn convolution(op: &Op, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
    let one = |t: Tensor| Ok(vec![t]);
    match op {
        Op::Conv(a) => one(conv::conv(
            a,
            [args.required(0)?, args.required(1)?],
            args.optional(2),
            args.optional(3),
            args.packed,
        )?),
        Op::ConvTranspose(a) => one(conv_transpose::conv_transpose(
            a,
            args.required(0)?,
            args.required(1)?,
            args.optional(2),
        )?),
        Op::BatchNorm { epsilon } => {
            let params = [
                args.required(1)?,
                args.required(2)?,
                args.required(3)?,
                args.required(4)?,
            ];
            one(norm::batch_norm(args.required(0)?, params, *epsilon)?)
        }
        Op::Resize(a) => one(resize::resize(a, args.required(0)?)?),
        _ => Err(not_in_family(op, "convolution")),
    }
}
