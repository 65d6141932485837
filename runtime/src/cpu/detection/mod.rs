//! Detection kernels: NonMaxSuppression, RoiAlign, DeformConv, DeformSample, GridSample. The
//! NMS and RoiAlign cores are plain functions over slices, shared with the Paddle detection ops.

mod deform_conv;
mod grid_sample;
pub(crate) mod nms;
pub(crate) mod roi_align;

use super::args::{not_in_family, Args};
use super::elements;
use crate::RuntimeError;
use crate::Tensor;
use temblor_ir::{DType, Op};

pub(crate) fn execute(op: &Op, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
    let out = match op {
        Op::NonMaxSuppression { center_point_box } => nms::non_max_suppression(
            *center_point_box,
            args.required(0)?,
            args.required(1)?,
            args.optional(2),
            args.optional(3),
            args.optional(4),
        )?,
        Op::RoiAlign(a) => {
            roi_align::execute(a, args.required(0)?, args.required(1)?, args.required(2)?)?
        }
        Op::DeformConv(a) => deform_conv::execute(
            a,
            args.required(0)?,
            args.required(1)?,
            args.required(2)?,
            args.optional(3),
            args.optional(4),
        )?,
        Op::DeformSample(a) => {
            deform_conv::sample(a, args.required(0)?, args.required(1)?, args.optional(2))?
        }
        Op::GridSample {
            mode,
            padding,
            align_corners,
        } => grid_sample::execute(
            &grid_sample::Sampling {
                mode: *mode,
                padding: *padding,
                align_corners: *align_corners,
            },
            args.required(0)?,
            args.required(1)?,
        )?,
        _ => return Err(not_in_family(op, "detection")),
    };
    Ok(vec![out])
}

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
