//! Elementwise ops on the GPU, each computing the CPU kernel's bits: the activations and float
//! functions of one tensor (`activation.cuh`, the CPU's `cpu/activation.rs`), the binary ops with
//! numpy broadcasting (`binary.cuh`, `cpu/elementwise_binary.rs`) and Cast (`convert.cuh`,
//! `cpu/cast.rs`).
//!
//! Exp, Log, Sin, Cos, Softplus, Mish and Pow are the exception to the CPU's bits: the CPU
//! computes them with libm, and a GPU with CUDA's expf, logf, sinf, cosf, log1pf and (Pow, in
//! f64 as the CPU) pow, each within an ulp or two of the correctly rounded result, so a GPU's
//! values differ from the CPU's by a few ulp, within the backend's 1e-4 relative L2 check (the
//! host emulator links the host's libm and computes the CPU's bits).
//!
//! Limits, each left to the CPU kernel: only f32 operands, except Cast and Identity (Pow too: an
//! f32 base and an f32 exponent); no Mod, Fmod or the logic ops; no casts to f16 or bf16 from
//! anything but f32, nor from bf16 to anything but f32 (the CPU converts those through the
//! `half` crate, whose bits depend on the host's instructions).

use super::movement::MAX_RANK;
use super::params::{self, layout, Layout, Pod};
use super::{grid_stride, Arg, Buf, Cx, Lowering, Unsupported, Work};
use temblor_ir::{BinaryOp, DType, UnaryOp};

/// activation.cuh's `ActivationParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ActivationParams {
    pub kind: i32,
    pub alpha: f32,
    pub beta: f32,
}

// SAFETY: repr(C), three 4-byte fields, no padding.
unsafe impl Pod for ActivationParams {}

/// binary.cuh's `BinaryParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct BinaryParams {
    op: i32,
    rank: i32,
    extent: [i64; MAX_RANK],
    a_stride: [i64; MAX_RANK],
    b_stride: [i64; MAX_RANK],
}

// SAFETY: repr(C), two 4-byte fields then 8-byte arrays: no padding.
unsafe impl Pod for BinaryParams {}

/// convert.cuh's `CastParams`: `RtDType` codes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct CastParams {
    pub(super) from: i32,
    pub(super) to: i32,
}

// SAFETY: repr(C), two 4-byte fields.
unsafe impl Pod for CastParams {}

pub(super) const LAYOUTS: &[Layout] = &[
    layout!(ActivationParams, "ActivationParams", [kind, alpha, beta]),
    layout!(
        BinaryParams,
        "BinaryParams",
        [op, rank, extent, a_stride, b_stride]
    ),
    layout!(CastParams, "CastParams", [from, to]),
];

/// activation.cuh's `RtActivation` kinds.
pub(crate) mod kind {
    pub const RELU: i32 = 1;
    pub const LEAKY_RELU: i32 = 2;
    pub const SIGMOID: i32 = 3;
    pub const HARD_SWISH: i32 = 5;
    pub const HARD_SIGMOID: i32 = 6;
    pub const GELU: i32 = 7;
    pub const TANH: i32 = 8;
    pub const CLIP: i32 = 9;
    pub const GELU_TANH: i32 = 10;
    pub const MISH: i32 = 11;
}

/// A function of one tensor as a kernel computes it.
enum Function {
    Activation(i32),
    /// activation.cuh's `RtUnaryOp`.
    Unary(i32),
}

fn function(u: UnaryOp) -> Result<Function, Unsupported> {
    use Function::{Activation, Unary};
    Ok(match u {
        UnaryOp::Relu => Activation(kind::RELU),
        UnaryOp::Sigmoid => Activation(kind::SIGMOID),
        UnaryOp::Tanh => Activation(kind::TANH),
        UnaryOp::HardSwish => Activation(kind::HARD_SWISH),
        UnaryOp::Mish => Activation(kind::MISH),
        UnaryOp::Neg => Unary(0),
        UnaryOp::Abs => Unary(1),
        UnaryOp::Sqrt => Unary(2),
        UnaryOp::Reciprocal => Unary(3),
        UnaryOp::Floor => Unary(4),
        UnaryOp::Ceil => Unary(5),
        UnaryOp::Round => Unary(6),
        UnaryOp::Sign => Unary(7),
        UnaryOp::Erf => Unary(8),
        UnaryOp::Exp => Unary(9),
        UnaryOp::Log => Unary(10),
        UnaryOp::Sin => Unary(11),
        UnaryOp::Cos => Unary(12),
        UnaryOp::Softplus => Unary(13),
        UnaryOp::Not | UnaryOp::Identity => {
            return Err(Unsupported::new(format!("no kernel for {}", u.name())))
        }
    })
}

pub(super) fn unary(u: UnaryOp, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    if u == UnaryOp::Identity {
        return Ok(Lowering::Alias { input: 0 });
    }
    let f = function(u)?;
    cx.all_f32()?;
    match f {
        Function::Activation(kind) => activation(
            ActivationParams {
                kind,
                alpha: 0.0,
                beta: 0.0,
            },
            cx,
        ),
        Function::Unary(op) => {
            let n = cx.output(0).elements();
            Ok(launches(n, || {
                let args = vec![
                    Arg::Ptr(Buf::Input(0).at()),
                    Arg::I64(n as i64),
                    Arg::I32(op),
                    Arg::Ptr(Buf::Output(0).at()),
                ];
                grid_stride("runtime_unary", n, args)
            }))
        }
    }
}

pub(super) fn leaky_relu(alpha: f32, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    activation(
        ActivationParams {
            kind: kind::LEAKY_RELU,
            alpha,
            beta: 0.0,
        },
        cx,
    )
}

pub(super) fn hard_sigmoid(alpha: f32, beta: f32, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    activation(
        ActivationParams {
            kind: kind::HARD_SIGMOID,
            alpha,
            beta,
        },
        cx,
    )
}

/// The IR's `f32::MIN` and `f32::MAX` for an absent bound are what the kernel tests for.
pub(super) fn clip(min: f32, max: f32, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    activation(
        ActivationParams {
            kind: kind::CLIP,
            alpha: min,
            beta: max,
        },
        cx,
    )
}

pub(super) fn gelu(tanh: bool, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let kind = if tanh { kind::GELU_TANH } else { kind::GELU };
    activation(
        ActivationParams {
            kind,
            alpha: 0.0,
            beta: 0.0,
        },
        cx,
    )
}

fn activation(a: ActivationParams, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    cx.all_f32()?;
    let n = cx.output(0).elements();
    Ok(launches(n, || {
        let args = vec![
            Arg::Ptr(Buf::Input(0).at()),
            Arg::I64(n as i64),
            Arg::Pod(params::bytes(&a)),
            Arg::Ptr(Buf::Output(0).at()),
        ];
        grid_stride("runtime_activation", n, args)
    }))
}

/// The launch of `n` elements, or no work at all for an empty tensor.
fn launches(n: usize, launch: impl FnOnce() -> super::Launch) -> Lowering {
    Lowering::Work(if n == 0 {
        Vec::new()
    } else {
        vec![Work::Launch(launch())]
    })
}

/// binary.cuh's `RtBinaryOp` or `RtCompareOp` code, and whether the op is a comparison.
fn binary_code(b: BinaryOp) -> Result<(i32, bool), Unsupported> {
    Ok(match b {
        BinaryOp::Add => (0, false),
        BinaryOp::Sub => (1, false),
        BinaryOp::Mul => (2, false),
        BinaryOp::Div => (3, false),
        BinaryOp::Min => (4, false),
        BinaryOp::Max => (5, false),
        BinaryOp::PRelu => (6, false),
        BinaryOp::Pow => (7, false),
        BinaryOp::Equal => (0, true),
        BinaryOp::Greater => (1, true),
        BinaryOp::GreaterOrEqual => (2, true),
        BinaryOp::Less => (3, true),
        BinaryOp::LessOrEqual => (4, true),
        BinaryOp::Mod | BinaryOp::Fmod | BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => {
            return Err(Unsupported::new(format!("no kernel for {}", b.name())));
        }
    })
}

pub(super) fn binary(b: BinaryOp, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let (op, comparison) = binary_code(b)?;
    let (x, y, out) = (cx.input(0)?, cx.input(1)?, cx.output(0));
    let want_out = if comparison { DType::Bool } else { DType::F32 };
    if x.dtype != DType::F32 || y.dtype != DType::F32 || out.dtype != want_out {
        return Err(Unsupported::new(format!(
            "{} of {} and {} into {} (the kernel takes f32)",
            b.name(),
            x.dtype,
            y.dtype,
            out.dtype
        )));
    }
    let mut p = broadcast(x.shape, y.shape)?;
    p.op = op;
    if p.extent[..p.rank as usize]
        .iter()
        .map(|&e| e as usize)
        .ne(out.shape.iter().copied())
    {
        return Err(Unsupported::new(format!(
            "{:?} and {:?} do not broadcast to the output's {:?}",
            x.shape, y.shape, out.shape
        )));
    }
    let n = out.elements();
    let function = if comparison {
        "runtime_compare"
    } else {
        "runtime_binary"
    };
    Ok(launches(n, || {
        let args = vec![
            Arg::Ptr(Buf::Input(0).at()),
            Arg::Ptr(Buf::Input(1).at()),
            Arg::I64(n as i64),
            Arg::Pod(params::bytes(&p)),
            Arg::Ptr(Buf::Output(0).at()),
        ];
        grid_stride(function, n, args)
    }))
}

/// binary.cuh's `rt_binary_broadcast` (op left 0): the shapes aligned from the right, each
/// operand's stride 0 along an axis it has extent 1 on.
fn broadcast(a: &[usize], b: &[usize]) -> Result<BinaryParams, Unsupported> {
    let rank = a.len().max(b.len());
    if rank > MAX_RANK {
        return Err(Unsupported::new(format!(
            "rank {rank}, past the kernel's {MAX_RANK}"
        )));
    }
    let mut p = BinaryParams {
        op: 0,
        rank: rank as i32,
        extent: [0; MAX_RANK],
        a_stride: [0; MAX_RANK],
        b_stride: [0; MAX_RANK],
    };
    let (mut a_step, mut b_step) = (1i64, 1i64);
    for k in (0..rank).rev() {
        let da = (k + a.len()).checked_sub(rank).map_or(1, |i| a[i]) as i64;
        let db = (k + b.len()).checked_sub(rank).map_or(1, |j| b[j]) as i64;
        if da != db && da != 1 && db != 1 {
            return Err(Unsupported::new(format!(
                "{a:?} and {b:?} do not broadcast"
            )));
        }
        p.extent[k] = if da == 1 { db } else { da };
        p.a_stride[k] = if da == 1 { 0 } else { a_step };
        p.b_stride[k] = if db == 1 { 0 } else { b_step };
        a_step *= da;
        b_step *= db;
    }
    Ok(p)
}

/// convert.cuh's `RtDType` code: the IR's order.
pub(super) fn dtype_code(d: DType) -> i32 {
    match d {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::BF16 => 2,
        DType::F64 => 3,
        DType::I8 => 4,
        DType::U8 => 5,
        DType::I16 => 6,
        DType::U16 => 7,
        DType::I32 => 8,
        DType::U32 => 9,
        DType::I64 => 10,
        DType::U64 => 11,
        DType::Bool => 12,
    }
}

pub(super) fn cast(to: DType, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let from = cx.input(0)?.dtype;
    if cx.output(0).dtype != to {
        return Err(Unsupported::new(format!(
            "a cast to {to} whose output is {}",
            cx.output(0).dtype
        )));
    }
    if from == to {
        return Ok(Lowering::Alias { input: 0 });
    }
    let half_exact = match (from, to) {
        (_, DType::F16 | DType::BF16) => from == DType::F32,
        (DType::BF16, _) => to == DType::F32,
        _ => true,
    };
    if !half_exact {
        return Err(Unsupported::new(format!(
            "a cast from {from} to {to}, which the CPU makes through the half crate"
        )));
    }
    let p = CastParams {
        from: dtype_code(from),
        to: dtype_code(to),
    };
    let n = cx.output(0).elements();
    Ok(launches(n, || {
        let args = vec![
            Arg::Ptr(Buf::Input(0).at()),
            Arg::I64(n as i64),
            Arg::Pod(params::bytes(&p)),
            Arg::Ptr(Buf::Output(0).at()),
        ];
        grid_stride("runtime_cast", n, args)
    }))
}

#[cfg(test)]
mod tests;
