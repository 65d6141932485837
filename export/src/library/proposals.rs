//! generate_proposals_v2 and distribute_fpn_proposals as standard ONNX, with ops_lib's kernels
//! (`generate_proposals.rs`, `distribute_fpn.rs`) as the reference for every number and order.
//!
//! generate_proposals_v2, for one image: candidate `k` is (y, x, anchor) as in Paddle; TopK
//! takes the best `pre_nms_topN` (ties by the lower index, as the kernel's order does), the
//! deltas are decoded, clipped, filtered and NMS'd in the kernel's float operation order.
//! The kernel's NMS visits equal scores later candidate first, while onnxruntime's visits the
//! lower index first, so NMS sees the candidates reversed. An image left with nothing gets one
//! all-zero box: a zero row is appended and the result cut to `max(kept, 1)` rows.
//!
//! distribute_fpn_proposals: a RoI's level is a step function of its scale `sqrt(area)`, so the
//! scales where each level begins are found here by bisection over the kernel's own rule
//! ([`fpn_level`]) and compared against, which gives its levels exactly with no log in the
//! graph. Each level's RoIs are a NonZero and a Gather; RestoreIndex scatters positions to the
//! concatenation of the levels.

use super::super::attrs::int;
use super::super::lower::Lower;
use super::multiclass_nms::TOPK_LIMIT;
use super::{rois_batch_index, Sub};
use temblor_ir::{DType, DistributeFpnAttrs, GenerateProposalsAttrs};
use temblor_ops_lib::detection::fpn_level;

pub(super) fn generate(s: &mut Sub, cx: &Lower, a: &GenerateProposalsAttrs) -> Result<(), String> {
    for port in 0..5 {
        if cx.in_type(port)?.dtype != DType::F32 {
            return Err(format!("input {port} is not float32"));
        }
    }
    let dims: Vec<Option<usize>> = cx
        .in_type(0)?
        .shape
        .dims()
        .iter()
        .map(|d| d.known())
        .collect();
    if dims.first() != Some(&Some(1)) {
        return Err("it is written for a batch of 1 known at compile time".into());
    }
    if a.eta < 1.0 && a.nms_thresh > 0.5 {
        return Err(format!("adaptive NMS (eta {}) has no ONNX form", a.eta));
    }
    let count = dims.iter().skip(1).copied().product::<Option<usize>>();
    let top = match usize::try_from(a.pre_nms_top_n).ok().filter(|&t| t > 0) {
        Some(t) if t < TOPK_LIMIT => t,
        _ => count
            .filter(|&c| c < TOPK_LIMIT)
            .ok_or("pre_nms_topN keeps more candidates than TensorRT's TopK takes")?,
    };
    let offset = a.pixel_offset;

    let (scores, index) = candidates(s, cx, top);
    let deltas = s.reshape("deltas_by_cell", &cx.ins[1], &[0, 0, -1]);
    let deltas = s.reshape("deltas_by_anchor", &deltas, &[-1, 4, 0]);
    let deltas = s.transpose("deltas_hwa", &deltas, &[2, 0, 1]);
    let deltas = s.reshape("deltas_flat", &deltas, &[-1, 4]);
    let deltas = rows(s, "top_deltas", &deltas, &index);
    let anchors = s.reshape("anchors_flat", &cx.ins[3], &[-1, 4]);
    let anchors = rows(s, "top_anchors", &anchors, &index);
    let variances = s.reshape("variances_flat", &cx.ins[4], &[-1, 4]);
    let variances = rows(s, "top_variances", &variances, &index);
    let boxes = decode(s, &anchors, &variances, &deltas, offset);

    let im = &cx.ins[2];
    let bounds = s.i64s("bounds_at", &[1, 0, 1, 0]);
    let bounds = s.op("Gather", "bounds", &[im, &bounds], vec![int("axis", 1)]);
    let bounds = minus_offset(s, "bounds_inclusive", &bounds, offset);
    let zero = s.f32("zero", 0.0);
    let boxes = s.binary("Min", "boxes_clipped_high", &boxes, &bounds);
    let boxes = s.binary("Max", "boxes_clipped", &boxes, &zero);
    let kept = kept_after_filter(s, im, &boxes, a);
    let boxes = rows(s, "filtered_boxes", &boxes, &kept);
    let scores = rows(s, "filtered_scores", &scores, &kept);
    let (boxes, scores) = if a.nms_thresh > 0.0 {
        let kept = nms(s, &boxes, &scores, a, top);
        (
            rows(s, "nms_boxes_kept", &boxes, &kept),
            rows(s, "nms_scores_kept", &scores, &kept),
        )
    } else {
        (boxes, scores)
    };
    at_least_one(s, cx, &boxes, &scores);
    Ok(())
}

/// The top candidates' scores and indices (`[K]` each), candidate `k` = (y, x, anchor).
fn candidates(s: &mut Sub, cx: &Lower, top: usize) -> (String, String) {
    let scores = s.reshape("scores_by_anchor", &cx.ins[0], &[0, 0, -1]);
    let scores = s.transpose("scores_hwa", &scores, &[0, 2, 1]);
    let scores = s.reshape("scores_flat", &scores, &[-1]);
    let count = s.op("Shape", "count", &[&scores], vec![]);
    let cap = s.i64s("pre_nms_top_n", &[top as i64]);
    let k = s.binary("Min", "k", &count, &cap);
    let out = s.ops("TopK", "top", &[&scores, &k], 2, vec![int("axis", 0)]);
    (out[0].clone(), out[1].clone())
}

/// Paddle's box coder on `[K, 4]` rows, with the kernel's operation order: centre-size deltas
/// scaled by the variances, log-sizes clamped at log(1000/16).
fn decode(s: &mut Sub, anchors: &str, variances: &str, deltas: &str, offset: bool) -> String {
    let halves = |s: &mut Sub, what: &str, x: &str| {
        (
            s.slice(&format!("{what}_start"), x, 1, 0, 2),
            s.slice(&format!("{what}_end"), x, 1, 2, 4),
        )
    };
    let (an_lo, an_hi) = halves(s, "anchor", anchors);
    let (var_c, var_s) = halves(s, "variance", variances);
    let (d_c, d_s) = halves(s, "delta", deltas);
    let size = s.binary("Sub", "anchor_extent", &an_hi, &an_lo);
    let size = plus_offset(s, "anchor_size", &size, offset);
    let half = s.f32("half", 0.5);
    let centre = s.binary("Mul", "anchor_half_size", &half, &size);
    let centre = s.binary("Add", "anchor_centre", &an_lo, &centre);
    let shift = s.binary("Mul", "centre_delta", &var_c, &d_c);
    let shift = s.binary("Mul", "centre_shift", &shift, &size);
    let centre = s.binary("Add", "centre", &shift, &centre);
    let log = s.binary("Mul", "size_delta", &var_s, &d_s);
    let clip_log = s.f32("clip_log", (1000.0f64 / 16.0).ln() as f32);
    let log = s.binary("Min", "size_delta_clipped", &log, &clip_log);
    let scale = s.op("Exp", "size_scale", &[&log], vec![]);
    let extent = s.binary("Mul", "size", &scale, &size);
    let two = s.f32("two", 2.0);
    let extent = s.binary("Div", "half_size", &extent, &two);
    let lo = s.binary("Sub", "box_start", &centre, &extent);
    let hi = s.binary("Add", "box_end_open", &centre, &extent);
    let hi = minus_offset(s, "box_end", &hi, offset);
    s.concat("boxes", &[&lo, &hi], 1)
}

/// The indices `[P]` of the clipped boxes the kernel keeps: both sides at least `min_size` and,
/// for pixel boxes, the centre inside the image.
fn kept_after_filter(s: &mut Sub, im: &str, boxes: &str, a: &GenerateProposalsAttrs) -> String {
    let lo = s.slice("clipped_start", boxes, 1, 0, 2);
    let hi = s.slice("clipped_end", boxes, 1, 2, 4);
    let size = s.binary("Sub", "clipped_extent", &hi, &lo);
    let size = plus_offset(s, "clipped_size", &size, a.pixel_offset);
    let min_size = s.f32("min_size", a.min_size.max(1.0));
    let mut keep = s.binary("GreaterOrEqual", "large_enough", &size, &min_size);
    if a.pixel_offset {
        let two = s.f32("two_sides", 2.0);
        let centre = s.binary("Div", "clipped_half", &size, &two);
        let centre = s.binary("Add", "clipped_centre", &lo, &centre);
        let wh = s.i64s("width_height_at", &[1, 0]);
        let wh = s.op("Gather", "width_height", &[im, &wh], vec![int("axis", 1)]);
        let inside = s.binary("LessOrEqual", "centre_inside", &centre, &wh);
        keep = s.binary("And", "kept_sides", &keep, &inside);
    }
    let x = s.slice("kept_x", &keep, 1, 0, 1);
    let y = s.slice("kept_y", &keep, 1, 1, 2);
    let keep = s.binary("And", "kept_column", &x, &y);
    let keep = s.reshape("kept_flags", &keep, &[-1]);
    let at = s.op("NonZero", "kept_at", &[&keep], vec![]);
    s.reshape("kept", &at, &[-1])
}

/// The indices of the boxes NMS keeps, in the kernel's visiting order; there are at most `top`
/// candidates.
fn nms(s: &mut Sub, boxes: &str, scores: &str, a: &GenerateProposalsAttrs, top: usize) -> String {
    let reversed = |s: &mut Sub, what: &str, x: &str| {
        let start = s.i64s(&format!("{what}.start"), &[-1]);
        let end = s.i64s(&format!("{what}.end"), &[i64::MIN]);
        let axis = s.i64s(&format!("{what}.axis"), &[0]);
        let step = s.i64s(&format!("{what}.step"), &[-1]);
        s.op("Slice", what, &[x, &start, &end, &axis, &step], vec![])
    };
    let rev_boxes = reversed(s, "reversed_boxes", boxes);
    let rev_boxes = if a.pixel_offset {
        let plus = s.f32s("pixel_end", &[4], &[0.0, 0.0, 1.0, 1.0]);
        s.binary("Add", "pixel_boxes", &rev_boxes, &plus)
    } else {
        rev_boxes
    };
    let rev_boxes = s.unsqueeze("nms_boxes", &rev_boxes, &[0]);
    let rev_scores = reversed(s, "reversed_scores", scores);
    let rev_scores = s.reshape("nms_scores", &rev_scores, &[1, 1, -1]);
    let cap = usize::try_from(a.post_nms_top_n)
        .ok()
        .filter(|&n| n > 0)
        .map_or(top, |n| n.min(top));
    let cap = s.i64s("post_nms_top_n", &[cap as i64]);
    let iou = s.f32s("iou_threshold", &[1], &[a.nms_thresh]);
    let selected = s.op(
        "NonMaxSuppression",
        "nms",
        &[&rev_boxes, &rev_scores, &cap, &iou],
        vec![],
    );
    let column = s.i64("candidate_column", 2);
    let rev = s.op(
        "Gather",
        "kept_reversed",
        &[&selected, &column],
        vec![int("axis", 1)],
    );
    let n = s.op("Shape", "candidates", &[scores], vec![]);
    let one = s.i64s("one", &[1]);
    let last = s.binary("Sub", "last_candidate", &n, &one);
    s.binary("Sub", "nms_kept", &last, &rev)
}

/// Writes the outputs: the boxes and scores, or one zero box with score 0 when none is left.
fn at_least_one(s: &mut Sub, cx: &Lower, boxes: &str, scores: &str) {
    let n = s.op("Shape", "kept_count", &[scores], vec![]);
    let one = s.i64s("at_least", &[1]);
    let n = s.binary("Max", "count", &n, &one);
    let zero_box = s.f32s("empty_box", &[1, 4], &[0.0; 4]);
    let boxes = s.concat("boxes_or_empty", &[boxes, &zero_box], 0);
    let zero_score = s.f32s("empty_score", &[1], &[0.0]);
    let scores = s.concat("scores_or_empty", &[scores, &zero_score], 0);
    let (start, axis) = (s.i64s("out_start", &[0]), s.i64s("out_axis", &[0]));
    s.op_into(
        "Slice",
        "rois",
        &[&boxes, &start, &n, &axis],
        &[&cx.outs[0]],
        vec![],
    );
    let probs = s.op("Slice", "probs_flat", &[&scores, &start, &n, &axis], vec![]);
    let column = s.i64s("probs_axis", &[1]);
    s.op_into(
        "Unsqueeze",
        "probs",
        &[&probs, &column],
        &[&cx.outs[1]],
        vec![],
    );
    s.cast_into("rois_num", &n, DType::I32, &cx.outs[2]);
}

/// `x[at]` along the first axis.
fn rows(s: &mut Sub, what: &str, x: &str, at: &str) -> String {
    s.op("Gather", what, &[x, at], vec![int("axis", 0)])
}

fn plus_offset(s: &mut Sub, what: &str, x: &str, offset: bool) -> String {
    if !offset {
        return x.to_string();
    }
    let one = s.f32(&format!("{what}_offset"), 1.0);
    s.binary("Add", what, x, &one)
}

fn minus_offset(s: &mut Sub, what: &str, x: &str, offset: bool) -> String {
    if !offset {
        return x.to_string();
    }
    let one = s.f32(&format!("{what}_offset"), 1.0);
    s.binary("Sub", what, x, &one)
}

pub(super) fn distribute(s: &mut Sub, cx: &Lower, a: &DistributeFpnAttrs) -> Result<(), String> {
    if cx.in_type(0)?.dtype != DType::F32 {
        return Err("its RoIs are not float32".into());
    }
    let levels = a.num_levels();
    if cx.outs.len() != 2 * levels + 1 {
        return Err(format!(
            "{} outputs for {levels} levels, not {}",
            cx.outs.len(),
            2 * levels + 1
        ));
    }
    let rois = &cx.ins[0];
    let shape = s.op("Shape", "roi_shape", &[rois], vec![]);
    let first = s.i64("roi_count_at", 0);
    let total = rows(s, "roi_count", &shape, &first);
    let (zero, one) = (s.i64("zero", 0), s.i64("one", 1));
    let positions = s.op("Range", "positions", &[&zero, &total, &one], vec![]);
    let scale = scale(s, rois, a.pixel_offset);
    let from: Vec<String> = level_starts(a)
        .into_iter()
        .enumerate()
        .map(|(l, t)| {
            let t = s.f32(&format!("level{}_start", l + 1), t);
            s.binary(
                "GreaterOrEqual",
                &format!("from_level{}", l + 1),
                &scale,
                &t,
            )
        })
        .collect();
    let images = cx.ins.get(1).filter(|n| !n.is_empty()).map(|counts| {
        // A scalar count is one image's.
        let counts = s.reshape("image_counts", counts, &[-1]);
        let of = s.value("roi_image");
        rois_batch_index::image_of(s, &counts, &of);
        let shape = s.op("Shape", "image_shape", &[&counts], vec![]);
        let n = s.op("Squeeze", "image_count", &[&shape], vec![]);
        let ids = s.op("Range", "image_ids", &[&zero, &n, &one], vec![]);
        let ids = s.unsqueeze("image_ids_row", &ids, &[0]);
        Images { of, ids }
    });
    let mut order = Vec::with_capacity(levels);
    for l in 0..levels {
        let at = match level_mask(s, &from, l) {
            Some(mask) => {
                let mask = s.reshape(&format!("level{l}_flags"), &mask, &[-1]);
                let at = s.op("NonZero", &format!("level{l}_at"), &[&mask], vec![]);
                s.reshape(&format!("level{l}_index"), &at, &[-1])
            }
            None => positions.clone(),
        };
        s.op_into(
            "Gather",
            &format!("level{l}_rois"),
            &[rois, &at],
            &[&cx.outs[l]],
            vec![int("axis", 0)],
        );
        per_image_counts(s, images.as_ref(), &at, l, &cx.outs[levels + l]);
        order.push(at);
    }
    let refs: Vec<&str> = order.iter().map(String::as_str).collect();
    let order = s.concat("level_order", &refs, 0);
    let restore = s.op(
        "ScatterElements",
        "restore_flat",
        &[&positions, &order, &positions],
        vec![int("axis", 0)],
    );
    let restore = s.cast("restore_i32", &restore, DType::I32);
    let column = s.i64s("restore_axis", &[1]);
    s.op_into(
        "Unsqueeze",
        "restore",
        &[&restore, &column],
        &[&cx.outs[2 * levels]],
        vec![],
    );
    Ok(())
}

/// `sqrt(area)` of each RoI as `[R, 1]`, the area as ops_lib's `boxes::area` computes it.
fn scale(s: &mut Sub, rois: &str, pixel_offset: bool) -> String {
    let lo = s.slice("roi_start", rois, 1, 0, 2);
    let hi = s.slice("roi_end", rois, 1, 2, 4);
    let inverted = s.binary("Less", "inverted_sides", &hi, &lo);
    let inverted_x = s.slice("inverted_x", &inverted, 1, 0, 1);
    let inverted_y = s.slice("inverted_y", &inverted, 1, 1, 2);
    let inverted = s.binary("Or", "inverted", &inverted_x, &inverted_y);
    let size = s.binary("Sub", "roi_extent", &hi, &lo);
    let size = plus_offset(s, "roi_size", &size, pixel_offset);
    let w = s.slice("roi_w", &size, 1, 0, 1);
    let h = s.slice("roi_h", &size, 1, 1, 2);
    let area = s.binary("Mul", "roi_area", &w, &h);
    let zero = s.f32("no_area", 0.0);
    let area = s.op("Where", "area", &[&inverted, &zero, &area], vec![]);
    s.op("Sqrt", "scale", &[&area], vec![])
}

/// The smallest scale of each level above the first: ops_lib's level is a non-decreasing step
/// function of the scale, so bisection over the ordered bit patterns of non-negative floats
/// finds each step exactly.
fn level_starts(a: &DistributeFpnAttrs) -> Vec<f32> {
    (1..a.num_levels())
        .map(|level| {
            let (mut lo, mut hi) = (0u32, f32::INFINITY.to_bits());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if fpn_level(a, f32::from_bits(mid)) >= level {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            f32::from_bits(lo)
        })
        .collect()
}

/// Which RoIs are at level `l` (`[R, 1]` flags): from its start and not from the next level's;
/// `None` when there is one level, which holds them all.
fn level_mask(s: &mut Sub, from: &[String], l: usize) -> Option<String> {
    let below_next = from
        .get(l)
        .map(|next| s.op("Not", &format!("below_level{}", l + 1), &[next], vec![]));
    match (l.checked_sub(1).map(|i| &from[i]), below_next) {
        (Some(low), Some(up)) => Some(s.binary("And", &format!("at_level{l}"), low, &up)),
        (Some(low), None) => Some(low.clone()),
        (None, up) => up,
    }
}

/// Each RoI's image `[R]` and the image ids as a row `[1, N]`.
struct Images {
    of: String,
    ids: String,
}

/// Level `l`'s RoI count per image, written to `out` as int32 `[N]`; without per-image counts
/// there is one image.
fn per_image_counts(s: &mut Sub, images: Option<&Images>, at: &str, l: usize, out: &str) {
    let n = match images {
        None => s.op("Shape", &format!("level{l}_count"), &[at], vec![]),
        Some(images) => {
            let of = rows(s, &format!("level{l}_images"), &images.of, at);
            let of = s.unsqueeze(&format!("level{l}_images_column"), &of, &[1]);
            let hit = s.binary("Equal", &format!("level{l}_in_image"), &of, &images.ids);
            let hit = s.cast(&format!("level{l}_in_image_f32"), &hit, DType::F32);
            let axes = s.i64s(&format!("level{l}_sum_axes"), &[0]);
            s.op(
                "ReduceSum",
                &format!("level{l}_per_image"),
                &[&hit, &axes],
                vec![int("keepdims", 0)],
            )
        }
    };
    s.cast_into(&format!("level{l}_counts"), &n, DType::I32, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The level the exported graph gives a scale: how many level starts it reaches.
    fn counted(starts: &[f32], scale: f32) -> usize {
        starts.iter().filter(|&&t| scale >= t).count()
    }

    #[test]
    fn level_starts_give_the_kernels_levels() {
        let a = DistributeFpnAttrs {
            min_level: 2,
            max_level: 5,
            refer_level: 4,
            refer_scale: 224,
            pixel_offset: false,
        };
        let starts = level_starts(&a);
        assert_eq!(starts.len(), 3);
        let near = starts.iter().flat_map(|t| {
            let b = t.to_bits();
            (b - 4..=b + 4).map(f32::from_bits)
        });
        let sweep = (0..200_000).map(|i| i as f32 * 0.01);
        for scale in near.chain(sweep).chain([0.0, f32::MAX, f32::INFINITY]) {
            assert_eq!(
                counted(&starts, scale),
                fpn_level(&a, scale),
                "scale {scale}"
            );
        }
    }
}
