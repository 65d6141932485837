//! Elementwise ops: activations, arithmetic, comparisons, logic, Where and Cast. Ops that only
//! matter in training (Dropout) become Identity.

use super::ctx::{unlisted, Family, Mapped, NodeCtx};
use super::tensor;
use temblor_ir::{BinaryOp, DType, Op, UnaryOp, Weight};
use temblor_runtime::{bf16, f16};

pub(super) const FAMILY: Family = Family {
    constant_inputs: &[("Dropout", &[2])],
    ops: &[
        "Identity",
        "Dropout",
        "Relu",
        "LeakyRelu",
        "PRelu",
        "Sigmoid",
        "HardSigmoid",
        "HardSwish",
        "Mish",
        "Tanh",
        "Erf",
        "Gelu",
        "Softplus",
        "Clip",
        "Sqrt",
        "Exp",
        "Log",
        "Neg",
        "Abs",
        "Reciprocal",
        "Cos",
        "Sin",
        "Floor",
        "Ceil",
        "Round",
        "Sign",
        "Not",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Mod",
        "Min",
        "Max",
        "Sum",
        "Equal",
        "Greater",
        "GreaterOrEqual",
        "Less",
        "LessOrEqual",
        "And",
        "Or",
        "Xor",
        "Where",
        "Cast",
        "CastLike",
    ],
    map,
};

fn map(ctx: &NodeCtx) -> Result<Mapped, String> {
    let a = &ctx.attrs;
    if let Some(u) = unary(ctx.op_type) {
        return Ok(Op::Unary(u).into());
    }
    if let Some(b) = binary(ctx.op_type) {
        return Ok(Op::Binary(b).into());
    }
    Ok(match ctx.op_type {
        "Dropout" => dropout(ctx)?,
        "LeakyRelu" => Op::LeakyRelu {
            alpha: a.float("alpha", 0.01)?,
        },
        "HardSigmoid" => Op::HardSigmoid {
            alpha: a.float("alpha", 0.2)?,
            beta: a.float("beta", 0.5)?,
        },
        "Gelu" => Op::Gelu {
            tanh: match a.string("approximate", "none")?.as_str() {
                "none" => false,
                "tanh" => true,
                other => return Err(format!("approximate '{other}' is not 'none' or 'tanh'")),
            },
        },
        "Clip" => clip(ctx)?,
        "Mod" => Op::Binary(match a.int("fmod", 0)? {
            0 => BinaryOp::Mod,
            _ => BinaryOp::Fmod,
        }),
        "Min" | "Max" | "Sum" => variadic(ctx)?,
        "Where" => Op::Where,
        "Cast" => Op::Cast {
            to: cast_target(a.int("to", 0)?)?,
        },
        "CastLike" => match like_dtype(ctx)? {
            Some(to) => Op::Cast { to },
            None => Op::CastLike,
        },
        _ => return Err(unlisted(ctx)),
    }
    .into())
}

fn unary(op_type: &str) -> Option<UnaryOp> {
    UnaryOp::ALL.into_iter().find(|u| u.name() == op_type)
}

/// The binary ops whose ONNX op type is their name and that take exactly two inputs.
fn binary(op_type: &str) -> Option<BinaryOp> {
    use BinaryOp::*;
    [
        Add,
        Sub,
        Mul,
        Div,
        Pow,
        Equal,
        Greater,
        GreaterOrEqual,
        Less,
        LessOrEqual,
        And,
        Or,
        Xor,
        PRelu,
    ]
    .into_iter()
    .find(|b| b.name() == op_type)
}

/// Variadic Min/Max/Sum: one input is the identity, two a binary op; three or more import as a
/// chain (expand.rs).
fn variadic(ctx: &NodeCtx) -> Result<Op, String> {
    let op = match ctx.op_type {
        "Min" => BinaryOp::Min,
        "Max" => BinaryOp::Max,
        "Sum" => BinaryOp::Add,
        _ => return Err(unlisted(ctx)),
    };
    match ctx.inputs.len() {
        0 => Err(format!("{} needs at least one input", ctx.op_type)),
        1 => Ok(Op::Unary(UnaryOp::Identity)),
        _ => Ok(Op::Binary(op)),
    }
}

/// Inference Dropout passes its input through (its mask output, all true, is expand.rs's).
fn dropout(ctx: &NodeCtx) -> Result<Op, String> {
    dropout_at_inference(ctx)?;
    Ok(Op::Unary(UnaryOp::Identity))
}

/// Refuses a Dropout in training mode. The `is_test` attribute of opsets before 7 is ignored, as
/// inference runtimes do. Training with ratio 0 keeps every element, so it is inference too.
pub(super) fn dropout_at_inference(ctx: &NodeCtx) -> Result<(), String> {
    if !ctx.present(2) {
        return Ok(());
    }
    let w = ctx
        .constant(2)
        .ok_or("input 2 ('training_mode') is computed at run time; only a constant is supported")?;
    if w.dtype != DType::Bool || w.data.iter().all(|&b| b == 0) {
        return Ok(());
    }
    let ratio = match ctx.constant(1) {
        Some(r) if r.element_count() == 1 => scalar(r),
        _ => None,
    };
    if ratio == Some(0.0) {
        return Ok(());
    }
    Err(
        "training mode with a ratio other than a constant 0 is not supported (inference only)"
            .into(),
    )
}

/// Clip bounds: attributes before opset 11, constant scalar inputs since (bounds computed at run
/// time expand to Max and Min, expand.rs). An absent bound is the IR's finite stand-in for
/// unbounded; a bound outside the f32 range is unbounded too.
fn clip(ctx: &NodeCtx) -> Result<Op, String> {
    let (min, max) = if ctx.opset < 11 {
        (
            ctx.attrs.float("min", f32::MIN)?,
            ctx.attrs.float("max", f32::MAX)?,
        )
    } else {
        (
            bound(ctx, 1, "min")?.unwrap_or(f32::MIN),
            bound(ctx, 2, "max")?.unwrap_or(f32::MAX),
        )
    };
    let finite = |v: f32| {
        if v.is_nan() {
            Err("a Clip bound is NaN".to_string())
        } else {
            Ok(v.clamp(f32::MIN, f32::MAX))
        }
    };
    Ok(Op::Clip {
        min: finite(min)?,
        max: finite(max)?,
    })
}

/// A Clip bound input: absent, or a constant scalar of any numeric dtype.
fn bound(ctx: &NodeCtx, i: usize, what: &str) -> Result<Option<f32>, String> {
    if !ctx.present(i) {
        return Ok(None);
    }
    let w = ctx.constant(i).ok_or_else(|| {
        format!("input {i} ('{what}') is computed at run time; only a constant is supported")
    })?;
    if w.element_count() != 1 {
        return Err(format!(
            "input {i} ('{what}') has shape {:?}, expected a scalar",
            w.dims
        ));
    }
    scalar(w)
        .map(|v| Some(v as f32))
        .ok_or_else(|| format!("input {i} ('{what}') is {}, expected a number", w.dtype))
}

/// The value of a one-element numeric weight.
fn scalar(w: &Weight) -> Option<f64> {
    let b = &w.data[..];
    let bytes = |n: usize| b.get(..n);
    Some(match w.dtype {
        DType::F32 => f32::from_le_bytes(bytes(4)?.try_into().ok()?) as f64,
        DType::F64 => f64::from_le_bytes(bytes(8)?.try_into().ok()?),
        DType::F16 => f16::from_le_bytes(bytes(2)?.try_into().ok()?).to_f64(),
        DType::BF16 => bf16::from_le_bytes(bytes(2)?.try_into().ok()?).to_f64(),
        DType::I8 => i8::from_le_bytes(bytes(1)?.try_into().ok()?) as f64,
        DType::U8 => u8::from_le_bytes(bytes(1)?.try_into().ok()?) as f64,
        DType::I16 => i16::from_le_bytes(bytes(2)?.try_into().ok()?) as f64,
        DType::U16 => u16::from_le_bytes(bytes(2)?.try_into().ok()?) as f64,
        DType::I32 => i32::from_le_bytes(bytes(4)?.try_into().ok()?) as f64,
        DType::U32 => u32::from_le_bytes(bytes(4)?.try_into().ok()?) as f64,
        DType::I64 => i64::from_le_bytes(bytes(8)?.try_into().ok()?) as f64,
        DType::U64 => u64::from_le_bytes(bytes(8)?.try_into().ok()?) as f64,
        DType::Bool => return None,
    })
}

fn cast_target(code: i64) -> Result<DType, String> {
    let code = i32::try_from(code).map_err(|_| format!("'to' is {code}, not a data type"))?;
    tensor::dtype(code)
        .ok_or_else(|| format!("casting to {} is not supported", tensor::dtype_name(code)))
}

/// CastLike's target is the dtype of input 1. A graph input or a constant has it at import, and
/// the node becomes a plain Cast the fusions know; a computed target is typed only by shape
/// inference (`None`), and the node stays a CastLike until then.
fn like_dtype(ctx: &NodeCtx) -> Result<Option<DType>, String> {
    let v = ctx
        .inputs
        .get(1)
        .copied()
        .flatten()
        .ok_or("required input 1 is missing")?;
    Ok(match ctx.g.node(v.node).op {
        Op::Input { .. } | Op::Constant { .. } => Some(ctx.g.value_type(v).dtype),
        _ => None,
    })
}
