//! The CPU executor: a plan over the graph's topological order, and one kernel file per op
//! family. Kernels take and return whole tensors; they check the shapes they are given and
//! return [`RuntimeError`]s, because a graph with symbolic dimensions only meets its real shapes
//! at run time.

mod activation;
mod amx;
mod args;
mod bf16_conv;
mod bf16_gemm;
mod buffers;
mod byte_table;
mod cast;
mod control;
mod conv;
#[cfg(target_arch = "x86_64")]
mod conv_blocked;
mod conv_gemm;
mod conv_padded;
#[cfg(target_arch = "x86_64")]
mod conv_shallow;
mod conv_tasks;
mod conv_transpose;
mod conv_transpose_phases;
#[cfg(target_arch = "x86_64")]
mod conv_winograd;
mod deform_conv;
mod denormals;
mod depthwise;
mod detection;
mod einsum;
mod elementwise;
mod elementwise_binary;
mod epilogue;
mod execute;
mod expand_depthwise;
mod fill;
mod fully_connected;
mod gemm;
mod grid_sample;
mod indexing;
#[cfg(target_arch = "x86_64")]
mod int8_blocked;
mod int8_conv;
mod int8_depthwise;
mod int8_gemm;
mod isa;
mod library;
mod linalg;
mod math;
mod matmul;
mod matmul_packed;
mod norm;
mod number;
mod peak;
mod plan;
mod pool;
mod quant;
mod real;
mod reduce;
mod resize;
mod shape_ops;

pub use peak::fma_peak_gflops;
pub use shape_ops::shape_of;
mod softmax;
mod spin;
mod stencil;
mod strided;
mod tiled_conv;

pub(crate) use execute::computes_in_f32;
pub(crate) use indexing::slice_bounds;
pub(crate) use isa::Isa;
pub(crate) use plan::{CpuPlan, CpuState};
pub(crate) use pool::out_extent;

/// Runs one op on whole tensors, outside any plan: compile-time evaluation of small values
/// (loop conditions, shape computations) uses the same kernels as the plan does.
pub fn run_op(
    op: &temblor_ir::Op,
    inputs: &[Option<&Tensor>],
    outputs: usize,
) -> Result<Vec<Tensor>, RuntimeError> {
    execute::execute(
        op,
        &args::Args {
            ins: inputs,
            outputs,
            isa: isa::Isa::detect(),
            lowered: None,
            bytes: None,
        },
    )
}

use crate::RuntimeError;
use crate::Tensor;
use crate::TensorData;
use crate::{bf16, f16};
use temblor_ir::DType;

/// An element type that a [`TensorData`] variant holds, so shape kernels are written once.
pub(crate) trait Element: Copy + Default + 'static {
    fn slice(data: &TensorData) -> Option<&[Self]>;
    fn wrap(values: Vec<Self>) -> TensorData;
}

macro_rules! element {
    ($t:ty, $variant:ident) => {
        impl Element for $t {
            fn slice(data: &TensorData) -> Option<&[Self]> {
                match data {
                    TensorData::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn wrap(values: Vec<Self>) -> TensorData {
                TensorData::$variant(values)
            }
        }
    };
}

element!(f32, F32);
element!(f16, F16);
element!(bf16, BF16);
element!(f64, F64);
element!(i8, I8);
element!(u8, U8);
element!(i16, I16);
element!(u16, U16);
element!(i32, I32);
element!(u32, U32);
element!(i64, I64);
element!(u64, U64);
element!(bool, Bool);

/// Runs `$body` with `$t` bound to the element type of `$dtype`.
macro_rules! dispatch {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            temblor_ir::DType::F32 => {
                type $t = f32;
                $body
            }
            temblor_ir::DType::F16 => {
                type $t = $crate::f16;
                $body
            }
            temblor_ir::DType::BF16 => {
                type $t = $crate::bf16;
                $body
            }
            temblor_ir::DType::F64 => {
                type $t = f64;
                $body
            }
            temblor_ir::DType::I8 => {
                type $t = i8;
                $body
            }
            temblor_ir::DType::U8 => {
                type $t = u8;
                $body
            }
            temblor_ir::DType::I16 => {
                type $t = i16;
                $body
            }
            temblor_ir::DType::U16 => {
                type $t = u16;
                $body
            }
            temblor_ir::DType::I32 => {
                type $t = i32;
                $body
            }
            temblor_ir::DType::U32 => {
                type $t = u32;
                $body
            }
            temblor_ir::DType::I64 => {
                type $t = i64;
                $body
            }
            temblor_ir::DType::U64 => {
                type $t = u64;
                $body
            }
            temblor_ir::DType::Bool => {
                type $t = bool;
                $body
            }
        }
    };
}
pub(crate) use dispatch;

/// The elements of `t` as `T`; a tensor of another dtype is an error naming `what` it is.
pub(crate) fn elements<'a, T: Element>(
    t: &'a Tensor,
    what: &str,
    want: DType,
) -> Result<&'a [T], RuntimeError> {
    T::slice(&t.data).ok_or_else(|| {
        RuntimeError::unsupported(format!("{what} is {}, only {want} is supported", t.dtype()))
    })
}

/// The f32 elements of `t`, the only dtype most kernels compute in.
pub(crate) fn f32s<'a>(t: &'a Tensor, what: &str) -> Result<&'a [f32], RuntimeError> {
    elements::<f32>(t, what, DType::F32)
}

/// Row-major strides of `shape`.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// `axis` counted from the end when negative, checked against `rank`.
pub(crate) fn normalize_axis(axis: i64, rank: usize) -> Result<usize, RuntimeError> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(RuntimeError::bad_input(format!(
            "axis {axis} is out of range for rank {rank}"
        )))
    }
}

/// The window attributes of a 2-D convolution agree with its weight and are usable.
pub(crate) fn check_window(
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    weight_kernel: [usize; 2],
    weight_shape: &[usize],
) -> Result<(), RuntimeError> {
    if kernel != weight_kernel {
        return Err(RuntimeError::bad_input(format!(
            "kernel attribute {kernel:?} disagrees with weight shape {weight_shape:?}"
        )));
    }
    if strides.contains(&0) || dilations.contains(&0) {
        return Err(RuntimeError::bad_input(
            "strides and dilations must be positive",
        ));
    }
    Ok(())
}

/// The kernels' tests' inputs: a seeded linear congruential sequence, uniform in [-0.5, 0.5).
#[cfg(test)]
fn test_values(seed: u32) -> impl FnMut() -> f32 {
    let mut state = seed;
    move || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    }
}
