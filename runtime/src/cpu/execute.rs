//! One step of a plan: the op's family kernel on the step's input tensors.

use super::args::{not_in_family, Args};
use super::{
    activation, conv, conv_transpose, detection, elementwise, linalg, norm, pool, quant, reduce,
    resize, shape_ops,
};
use crate::{RuntimeError, Tensor};
use temblor_ir::{Op, OpFamily};

pub(crate) fn execute(op: &Op, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
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
            args.required(0)?,
            args.required(1)?,
            args.optional(2),
            args.optional(3),
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
