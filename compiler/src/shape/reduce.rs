//! Rules of pooling, reductions, linear algebra, Softmax and LayerNorm.

use super::{conv, not_in_family, one, Inferred, Ins};
use temblor_ir::Op;

pub(super) fn infer(op: &Op, ins: &Ins) -> Result<Inferred, String> {
    match op {
        Op::GlobalAveragePool => one(conv::global_pool(ins.ty(0)?)?),
        Op::MaxPool(_)
        | Op::AveragePool(_)
        | Op::GlobalMaxPool
        | Op::Reduce { .. }
        | Op::ArgExtreme { .. }
        | Op::TopK { .. }
        | Op::MatMul
        | Op::Gemm { .. }
        | Op::Einsum { .. }
        | Op::Softmax { .. }
        | Op::LayerNorm { .. } => Err(format!("no shape rule for {} yet", op.name())),
        _ => Err(not_in_family(op)),
    }
}
