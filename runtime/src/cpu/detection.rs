//! ONNX NonMaxSuppression and RoiAlign: the runtime's tensors checked and handed to their
//! kernels in `temblor_ops_lib::detection`, the one home of detection arithmetic (ONNX's and
//! Paddle's), so every backend and the TensorRT export share one reference.

use super::conv::dims4;
use super::{elements, f32s};
use crate::{RuntimeError, Tensor, TensorData};
use rayon::prelude::*;
use temblor_ir::{DType, RoiAlignAttrs};
use temblor_ops_lib::detection;

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

/// ONNX NonMaxSuppression: boxes `[N,B,4]`, scores `[N,C,B]`, then optional
/// max_output_boxes_per_class, iou_threshold and score_threshold scalars.
pub(crate) fn non_max_suppression(
    center_point: bool,
    boxes: &Tensor,
    scores: &Tensor,
    limit: Option<&Tensor>,
    iou_threshold: Option<&Tensor>,
    score_threshold: Option<&Tensor>,
) -> Result<Tensor, RuntimeError> {
    let (bv, sv) = (f32s(boxes, "boxes")?, f32s(scores, "scores")?);
    let (n, b) = match boxes.shape[..] {
        [n, b, 4] => (n, b),
        _ => {
            return Err(RuntimeError::bad_input(format!(
                "boxes have shape {:?}, expected [batches, boxes, 4]",
                boxes.shape
            )))
        }
    };
    let classes = match scores.shape[..] {
        [sn, c, sb] if sn == n && sb == b => c,
        _ => {
            return Err(RuntimeError::bad_input(format!(
                "scores have shape {:?}, expected [{n}, classes, {b}]",
                scores.shape
            )))
        }
    };
    let limit = match limit {
        Some(t) => usize::try_from(scalar_i64(t, "max_output_boxes_per_class")?.max(0))
            .unwrap_or(usize::MAX),
        None => 0,
    };
    let iou = match iou_threshold {
        Some(t) => scalar_f32(t, "iou_threshold")?,
        None => 0.0,
    };
    if !(0.0..=1.0).contains(&iou) {
        return Err(RuntimeError::bad_input(format!(
            "iou_threshold is {iou}, expected a value in [0, 1]"
        )));
    }
    let score = score_threshold
        .map(|t| scalar_f32(t, "score_threshold"))
        .transpose()?;
    // The classes in parallel, collected in order: PicoDet's 80 classes of 3598 boxes took
    // 0.28 ms on one thread.
    let dims = [n, classes, b];
    let selected =
        detection::non_max_suppression_with(bv, sv, dims, center_point, limit, |boxes, rows| {
            rows.par_chunks(b.max(1))
                .map(|s| boxes.select(s, limit, iou, score))
                .collect()
        });
    Ok(Tensor::i64(vec![selected.len() / 3, 3], selected))
}

/// ONNX RoiAlign: x `[N,C,H,W]`, rois `[R,4]`, batch_indices `[R]` (int64).
pub(crate) fn roi_align(
    a: &RoiAlignAttrs,
    x: &Tensor,
    rois: &Tensor,
    indices: &Tensor,
) -> Result<Tensor, RuntimeError> {
    let dims = dims4(x, "input")?;
    let xv = f32s(x, "input")?;
    let rv = f32s(rois, "rois")?;
    let r = match rois.shape[..] {
        [r, 4] => r,
        _ => {
            return Err(RuntimeError::bad_input(format!(
                "rois have shape {:?}, expected [regions, 4]",
                rois.shape
            )))
        }
    };
    if indices.shape != [r] {
        return Err(RuntimeError::bad_input(format!(
            "batch_indices have shape {:?}, expected [{r}] (one per region)",
            indices.shape
        )));
    }
    let index = |i: i64| usize::try_from(i).unwrap_or(usize::MAX);
    let batch: Vec<usize> = match &indices.data {
        TensorData::I64(v) => v.iter().map(|&i| index(i)).collect(),
        TensorData::I32(v) => v.iter().map(|&i| index(i.into())).collect(),
        _ => {
            return Err(RuntimeError::unsupported(format!(
                "batch_indices are {}, only int64 and int32 are supported",
                indices.dtype()
            )))
        }
    };
    let out = detection::roi_align(a, xv, dims, rv, &batch).map_err(RuntimeError::bad_input)?;
    Ok(Tensor::f32(
        vec![r, dims[1], a.output_height, a.output_width],
        out,
    ))
}
