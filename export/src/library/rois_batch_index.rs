//! rois_batch_index: per-image RoI counts `[N]` to the image index of each RoI `[sum]` int64.
//! RoI `r` belongs to the number of images whose running count ends at or before it.

use super::super::attrs::int;
use super::super::lower::Lower;
use super::Sub;
use temblor_ir::DType;

pub(super) fn lower(s: &mut Sub, cx: &Lower) -> Result<(), String> {
    image_of(s, &cx.ins[0], &cx.outs[0]);
    Ok(())
}

/// Writes the image of each RoI to `out`, from the per-image RoI counts.
pub(super) fn image_of(s: &mut Sub, counts: &str, out: &str) {
    let counts = s.cast("counts", counts, DType::I64);
    let axis = s.i64("axis", 0);
    let ends = s.op("CumSum", "ends", &[&counts, &axis], vec![]);
    let total = s.op("ReduceSum", "total", &[&counts], vec![int("keepdims", 0)]);
    let (zero, one) = (s.i64("zero", 0), s.i64("one", 1));
    let rois = s.op("Range", "rois", &[&zero, &total, &one], vec![]);
    let rois = s.unsqueeze("rois_column", &rois, &[1]);
    let ends = s.unsqueeze("ends_row", &ends, &[0]);
    let past = s.binary("GreaterOrEqual", "past", &rois, &ends);
    let past = s.cast("past_count", &past, DType::I64);
    let axes = s.i64s("sum_axes", &[1]);
    s.op_into(
        "ReduceSum",
        "image",
        &[&past, &axes],
        &[out],
        vec![int("keepdims", 0)],
    );
}
