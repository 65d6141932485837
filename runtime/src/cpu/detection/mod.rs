//! Detection kernels: NonMaxSuppression, RoiAlign, DeformConv, DeformSample, GridSample. The
//! NMS and RoiAlign cores are plain functions over slices, shared with the Paddle detection ops.

pub(crate) mod deform_conv;
pub(crate) mod grid_sample;
pub(crate) mod nms;
pub(crate) mod roi_align;

use super::elements;
use crate::{RuntimeError, Tensor};
use temblor_ir::DType;

/// The value of a one-element operand (a scalar or `[1]`).
fn one<'a, T: super::Element>(
    t: &'a Tensor,
    what: &str,
    dtype: DType,
) -> Result<&'a T, RuntimeError> {
    match elements::<T>(t, what, dtype)? {
        [v] => Ok(v),
        v => Err(RuntimeError::bad_input(format!(
            "{what} has {} elements, expected a single value",
            v.len()
        ))),
    }
}

fn scalar_f32(t: &Tensor, what: &str) -> Result<f32, RuntimeError> {
    one::<f32>(t, what, DType::F32).copied()
}

fn scalar_i64(t: &Tensor, what: &str) -> Result<i64, RuntimeError> {
    one::<i64>(t, what, DType::I64).copied()
}
