//! matrix_nms as dense ONNX, with ops_lib's kernel's semantics, float operation order and
//! output order.
//!
//! Each (image, class) pair is one group `G` of `K` = min(nms_top_k, M) candidates, taken by a
//! TopK in descending score (ties by the lower box index, as the kernel's stable sort). A
//! `[G, K, K]` IoU matrix, masked to the strict lower triangle (candidate j scores above i),
//! gives each candidate's largest IoU with a better one (ReduceMax) and its decay from all of
//! them (ReduceMin). Decayed scores form a `[N, C*K]` table, class-major then by rank: the
//! order in which the kernel lists detections before its stable sort by decayed score, so
//! keep_top_k's TopK (ties by the lower index) ranks them as the kernel does. A NonZero over
//! the TopK's kept entries lists the rows. An uncapped nms_top_k (-1) would make the matrix
//! `[G, M, M]`, so that case has no decomposition.
//!
//! Candidates at or below score_threshold rank after every real one, so the triangle keeps
//! them from decaying a real one, and they are dropped at the end. The kernel skips candidates
//! too low to reach keep_top_k, which changes none of its rows, so here all are scored. Linear
//! decay is bit for bit the kernel's; Gaussian decay is as exact as onnxruntime's `Exp`.

use super::super::attrs::int;
use super::super::lower::Lower;
use super::super::Target;
use super::multiclass_nms::TOPK_LIMIT;
use super::{detection_outputs, Sub};
use temblor_ir::{DType, MatrixNmsAttrs};

/// The static sizes of the decomposition.
struct Dims {
    classes: usize,
    boxes: usize,
    /// Candidates per class.
    k: usize,
    /// Detections kept per image, at most.
    keep: usize,
}

/// Each group's candidates, in descending score.
struct Candidates {
    /// `[G, K]`.
    scores: String,
    /// `[G, K, 4]`.
    boxes: String,
    /// Box index of each slot of the `[N, C*K]` table.
    index: String,
}

pub(super) fn lower(s: &mut Sub, cx: &Lower, a: &MatrixNmsAttrs) -> Result<(), String> {
    let d = dims(cx, a)?;
    let neg_inf = s.f32("neg_inf", f32::NEG_INFINITY);
    let cand = candidates(s, cx, a, &d, &neg_inf);
    let earlier = earlier(s, d.k);
    let iou = iou(s, &cand.boxes, &earlier, a.normalized);
    let decay = decay(s, cx, a, &iou, &earlier);
    let decayed = s.binary("Mul", "decayed", &decay, &cand.scores);
    let score_thr = s.f32("score_threshold", a.score_threshold);
    let post_thr = s.f32("post_threshold", a.post_threshold);
    let candidate = s.binary("Greater", "candidate", &cand.scores, &score_thr);
    let survives = s.binary("Greater", "survives", &decayed, &post_thr);
    let kept = s.binary("And", "kept", &candidate, &survives);
    let ranked = s.op("Where", "ranked", &[&kept, &decayed, &neg_inf], vec![]);
    let table = s.reshape("table", &ranked, &[-1, (d.classes * d.k) as i64]);
    outputs(s, cx, &d, &table, &cand.index, &neg_inf);
    Ok(())
}

fn dims(cx: &Lower, a: &MatrixNmsAttrs) -> Result<Dims, String> {
    let Ok(top) = usize::try_from(a.nms_top_k) else {
        return Err(format!(
            "an uncapped nms_top_k ({}) makes its IoU matrix as large as the box count squared",
            a.nms_top_k
        ));
    };
    if a.keep_top_k == 0 {
        return Err("keep_top_k 0 keeps nothing".into());
    }
    let (boxes_t, scores_t) = (cx.in_type(0)?, cx.in_type(1)?);
    if boxes_t.dtype != DType::F32 || scores_t.dtype != DType::F32 {
        return Err("its boxes and scores must be float32".into());
    }
    let sd: Vec<Option<usize>> = scores_t.shape.dims().iter().map(|d| d.known()).collect();
    let (Some(&Some(classes)), Some(&Some(boxes))) = (sd.get(1), sd.get(2)) else {
        return Err("the class and box counts are not known at compile time".into());
    };
    let k = top.min(boxes);
    let width = classes * k;
    let keep = usize::try_from(a.keep_top_k).map_or(width, |t| t.min(width));
    if k >= TOPK_LIMIT || keep >= TOPK_LIMIT {
        return Err(format!(
            "its TopKs ({k} candidates per class, {keep} per image) reach TensorRT's limit of \
             {TOPK_LIMIT}"
        ));
    }
    Ok(Dims {
        classes,
        boxes,
        k,
        keep,
    })
}

/// The top K scores of each class and their boxes; the background class scores -inf, below
/// any score_threshold.
fn candidates(s: &mut Sub, cx: &Lower, a: &MatrixNmsAttrs, d: &Dims, neg_inf: &str) -> Candidates {
    let scores = match usize::try_from(a.background_label) {
        Ok(bg) if bg < d.classes => {
            let flags: Vec<bool> = (0..d.classes).map(|c| c == bg).collect();
            let mask = s.bools("background", &[1, d.classes, 1], &flags);
            s.op("Where", "foreground", &[&mask, neg_inf, &cx.ins[1]], vec![])
        }
        _ => cx.ins[1].clone(),
    };
    let k = d.k as i64;
    let kk = s.i64s("nms_top_k", &[k]);
    let top = s.ops("TopK", "top", &[&scores, &kk], 2, vec![int("axis", 2)]);
    let at = s.reshape("top_at", &top[1], &[0, -1, 1]);
    let boxes = s.op(
        "GatherND",
        "top_boxes",
        &[&cx.ins[0], &at],
        vec![int("batch_dims", 1)],
    );
    Candidates {
        scores: s.reshape("top_scores", &top[0], &[-1, k]),
        boxes: s.reshape("group_boxes", &boxes, &[-1, k, 4]),
        index: s.reshape("slot_box", &top[1], &[0, -1]),
    }
}

/// `[K, K]`: whether candidate j (column) ranks above candidate i (row).
fn earlier(s: &mut Sub, k: usize) -> String {
    let ranks: Vec<i64> = (0..k as i64).collect();
    let ranks = s.i64s("ranks", &ranks);
    let i = s.unsqueeze("rank_i", &ranks, &[1]);
    let j = s.unsqueeze("rank_j", &ranks, &[0]);
    s.binary("Less", "earlier", &j, &i)
}

/// `[G, K, K]`: IoU of candidate i (row) with each earlier candidate j (column), 0 elsewhere;
/// the kernel's `iou(box i, box j)` step by step, with pixel boxes' `+1` on each extent.
fn iou(s: &mut Sub, boxes: &str, earlier: &str, normalized: bool) -> String {
    let coord = |s: &mut Sub, what: &str, c: i64| {
        let c = s.i64(&format!("{what}_coord"), c);
        s.op("Gather", what, &[boxes, &c], vec![int("axis", 2)])
    };
    let c = [
        coord(s, "x1", 0),
        coord(s, "y1", 1),
        coord(s, "x2", 2),
        coord(s, "y2", 3),
    ];
    let area = area(s, &c, normalized);
    let row: Vec<String> = c.iter().map(|x| s.unsqueeze("of_i", x, &[2])).collect();
    let col: Vec<String> = c.iter().map(|x| s.unsqueeze("of_j", x, &[1])).collect();
    let disjoint = disjoint(s, &row, &col);
    let side = |s: &mut Sub, what: &str, lo: usize, hi: usize| {
        let end = s.binary("Min", "inter_end", &row[hi], &col[hi]);
        let start = s.binary("Max", "inter_start", &row[lo], &col[lo]);
        pixel_extent(s, what, &end, &start, normalized)
    };
    let (w, h) = (side(s, "inter_w", 0, 2), side(s, "inter_h", 1, 3));
    let inter = s.binary("Mul", "inter", &w, &h);
    let area_i = s.unsqueeze("area_i", &area, &[2]);
    let area_j = s.unsqueeze("area_j", &area, &[1]);
    let both = s.binary("Add", "areas", &area_i, &area_j);
    let union = s.binary("Sub", "union", &both, &inter);
    let iou = s.binary("Div", "iou_all", &inter, &union);
    let overlap = s.op("Not", "overlap", &[&disjoint], vec![]);
    let counted = s.binary("And", "counted", &overlap, earlier);
    let zero = s.f32("zero", 0.0);
    s.op("Where", "iou", &[&counted, &iou, &zero], vec![])
}

/// `[G, K, K]`: the kernel's test for boxes that do not touch, whose IoU it takes as 0
/// without computing it.
fn disjoint(s: &mut Sub, row: &[String], col: &[String]) -> String {
    let apart = |s: &mut Sub, lo: usize, hi: usize| {
        let after = s.binary("Greater", "after", &col[lo], &row[hi]);
        let before = s.binary("Less", "before", &col[hi], &row[lo]);
        s.binary("Or", "apart", &after, &before)
    };
    let (x, y) = (apart(s, 0, 2), apart(s, 1, 3));
    s.binary("Or", "disjoint", &x, &y)
}

/// `[G, K]`: each box's area, 0 when inverted.
fn area(s: &mut Sub, c: &[String; 4], normalized: bool) -> String {
    let w = pixel_extent(s, "box_w", &c[2], &c[0], normalized);
    let h = pixel_extent(s, "box_h", &c[3], &c[1], normalized);
    let area = s.binary("Mul", "area_all", &w, &h);
    let inv_x = s.binary("Less", "inverted_x", &c[2], &c[0]);
    let inv_y = s.binary("Less", "inverted_y", &c[3], &c[1]);
    let inverted = s.binary("Or", "inverted", &inv_x, &inv_y);
    let zero = s.f32("no_area", 0.0);
    s.op("Where", "area", &[&inverted, &zero, &area], vec![])
}

/// `end - start`, plus 1 for pixel boxes, which count both end pixels.
fn pixel_extent(s: &mut Sub, what: &str, end: &str, start: &str, normalized: bool) -> String {
    let d = s.binary("Sub", what, end, start);
    if normalized {
        return d;
    }
    let one = s.f32("pixel", 1.0);
    s.binary("Add", "pixel_extent", &d, &one)
}

/// `[G, K]`: each candidate's smallest decay over the earlier ones, 1 for the first.
fn decay(s: &mut Sub, cx: &Lower, a: &MatrixNmsAttrs, iou: &str, earlier: &str) -> String {
    let axes = s.i64s("pair_axis", &[2]);
    let drop_axis = vec![int("keepdims", 0)];
    let max_iou = s.op("ReduceMax", "max_iou", &[iou, &axes], drop_axis.clone());
    let max_j = s.unsqueeze("max_iou_j", &max_iou, &[1]);
    let each = if a.use_gaussian {
        let sigma = s.f32("gaussian_sigma", a.gaussian_sigma);
        let mm = s.binary("Mul", "max_iou_sq", &max_j, &max_j);
        let ii = s.binary("Mul", "iou_sq", iou, iou);
        let d = s.binary("Sub", "gap_sq", &mm, &ii);
        let e = s.binary("Mul", "exponent", &d, &sigma);
        s.op("Exp", "gaussian_decay", &[&e], vec![])
    } else {
        linear(s, cx, iou, &max_j)
    };
    let one = s.f32("no_decay", 1.0);
    let each = s.op("Where", "pair_decay", &[earlier, &each, &one], vec![]);
    s.op("ReduceMin", "decay", &[&each, &axes], drop_axis)
}

/// `(1 - iou) / (1 - max_iou_j)`, in double as the kernel computes it, which decides
/// post_threshold's ties; TensorRT has no double, so its file divides in float.
fn linear(s: &mut Sub, cx: &Lower, iou: &str, max_j: &str) -> String {
    if cx.target == Target::TensorRt {
        let one = s.f32("one", 1.0);
        let num = s.binary("Sub", "kept_overlap", &one, iou);
        let den = s.binary("Sub", "kept_max", &one, max_j);
        return s.binary("Div", "linear_decay", &num, &den);
    }
    let one = s.f64("one", 1.0);
    let iou = s.cast("iou_f64", iou, DType::F64);
    let max_j = s.cast("max_iou_f64", max_j, DType::F64);
    let num = s.binary("Sub", "kept_overlap", &one, &iou);
    let den = s.binary("Sub", "kept_max", &one, &max_j);
    let q = s.binary("Div", "linear_decay_f64", &num, &den);
    s.cast("linear_decay", &q, DType::F32)
}

/// keep_top_k per image and the three outputs: rows in the TopK's order, the boxes' flat
/// indices, and counts per image.
fn outputs(s: &mut Sub, cx: &Lower, d: &Dims, table: &str, slot_box: &str, neg_inf: &str) {
    let keep = s.i64s("keep_top_k", &[d.keep as i64]);
    let top = s.ops("TopK", "keep", &[table, &keep], 2, vec![int("axis", 1)]);
    let found = s.binary("Greater", "found", &top[0], neg_inf);
    let nz = s.op("NonZero", "detections", &[&found], vec![]);
    let at = s.transpose("detection_at", &nz, &[1, 0]);
    let score = s.op("GatherND", "score", &[&top[0], &at], vec![]);
    let slot = s.op("GatherND", "slot", &[&top[1], &at], vec![]);
    let image = {
        let c = s.i64("image_column", 0);
        s.op("Gather", "image", &[&at, &c], vec![int("axis", 1)])
    };
    let col = |s: &mut Sub, what: &str, x: &str| s.unsqueeze(what, x, &[1]);
    let image_col = col(s, "image_col", &image);
    let slot_col = col(s, "slot_col", &slot);
    let slot_at = s.concat("slot_at", &[&image_col, &slot_col], 1);
    let box_index = s.op("GatherND", "box_index", &[slot_box, &slot_at], vec![]);
    let box_col = col(s, "box_col", &box_index);
    let box_at = s.concat("box_at", &[&image_col, &box_col], 1);
    let boxes = s.op("GatherND", "boxes", &[&cx.ins[0], &box_at], vec![]);
    let per_class = s.i64("candidates_per_class", d.k as i64);
    let label = s.binary("Div", "label", &slot, &per_class);
    let m = s.i64("box_count", d.boxes as i64);
    let base = s.binary("Mul", "index_base", &image, &m);
    let index = s.binary("Add", "index_i64", &base, &box_index);
    let found = s.cast("found_f32", &found, DType::F32);
    detection_outputs(s, cx, [&label, &score, &boxes], &index, &found);
}
