//! multiclass_nms3 through NonMaxSuppression, with Paddle's semantics and output order.
//!
//! Each (image, class) pair is one NMS "batch" of one class, so each class keeps its own
//! candidates: per-class `nms_top_k` is a TopK ahead of it, and per-class boxes (the RoI form)
//! are gathered per class. The boxes NMS keeps are scattered as flags into a dense `[N, C*L]`
//! table of candidate slots, `L` slots per class; `keep_top_k` is a TopK over that table, and a
//! NonZero over it lists the detections in row-major order: by image, by ascending label, and
//! within a label by slot. Slots are a class's candidates in descending score (`L` = its TopK's
//! K: the batched form's order) or its boxes by index (`L` = M: the RoI form's order). TopK
//! breaks ties by the lower index, as Paddle's stable sorts do. Pixel boxes (not
//! `normalized`) get 1 added to x2, y2 for NMS, which is Paddle's `+1` IoU.

use super::super::attrs::int;
use super::super::emit::Emitter;
use super::super::lower::Lower;
use super::{detection_outputs, Sub};
use temblor_ir::{DType, MulticlassNmsAttrs};

/// TensorRT's TopK takes K below this.
pub(super) const TOPK_LIMIT: usize = 3840;

/// Where a candidate's kept flag goes in the dense table.
enum Slots {
    /// Slot = the candidate's rank in its class's TopK, whose indices map slots to boxes.
    Rank { k: usize, indices: String },
    /// Slot = the box index; `topk` holds the TopK indices when candidates were cut to a top K
    /// (`k` elements, a run-time value), else candidates are all the boxes.
    Index {
        m: String,
        topk: Option<(String, String)>,
    },
}

pub(super) fn lower(s: &mut Sub, cx: &Lower, a: &MulticlassNmsAttrs) -> Result<(), String> {
    if a.nms_eta < 1.0 {
        return Err(format!(
            "adaptive NMS (nms_eta {}) has no ONNX form",
            a.nms_eta
        ));
    }
    if a.keep_top_k == 0 {
        return Err("keep_top_k 0 keeps nothing".into());
    }
    let scores_t = cx.in_type(1)?;
    let boxes_t = cx.in_type(0)?;
    if scores_t.dtype != DType::F32 || boxes_t.dtype != DType::F32 {
        return Err("its boxes and scores must be float32".into());
    }
    let sd: Vec<Option<usize>> = scores_t.shape.dims().iter().map(|d| d.known()).collect();
    let roi_form = sd.len() == 2;
    let classes = sd[1].ok_or("the class count is not known at compile time")?;
    let neg_inf = s.f32("neg_inf", f32::NEG_INFINITY);
    let background = usize::try_from(a.background_label)
        .ok()
        .filter(|&b| b < classes);
    let mask_background = |s: &mut Sub, scores: &str, dims: &[usize]| -> String {
        let Some(bg) = background else {
            return scores.to_string();
        };
        let flags: Vec<bool> = (0..classes).map(|c| c == bg).collect();
        let mask = s.bools("background", dims, &flags);
        s.op("Where", "foreground", &[&mask, &neg_inf, scores], vec![])
    };

    // Candidates for NMS: scores [G, 1, K], boxes [G, K, 4]; and the dense scores [N, C*L].
    // `width`: the table's slots per image, where known at compile time.
    let (cand_scores, cand_boxes, dense, slots, max_out, width);
    if roi_form {
        // A scalar RoisNum counts one image's RoIs.
        let images = cx.in_type(2).ok().and_then(|t| match t.shape.dims() {
            [] => Some(1),
            dims => dims.first().and_then(|d| d.known()),
        });
        if images != Some(1) {
            return Err("the per-RoI form is written for one image (RoisNum [1])".into());
        }
        let st = s.transpose("class_scores", &cx.ins[1], &[1, 0]);
        let st = mask_background(s, &st, &[classes, 1]);
        let bt = s.transpose("class_boxes", &cx.ins[0], &[1, 0, 2]);
        let shape = s.op("Shape", "scores_shape", &[&cx.ins[1]], vec![]);
        let m = s.slice("rois", &shape, 0, 0, 1);
        dense = s.reshape("dense_scores", &st, &[1, -1]);
        if let Ok(top) = usize::try_from(a.nms_top_k) {
            let cap = s.i64s("nms_top_k", &[top as i64]);
            let k = s.binary("Min", "k", &m, &cap);
            let out = s.ops("TopK", "top", &[&st, &k], 2, vec![int("axis", 1)]);
            let idx = s.unsqueeze("top_index", &out[1], &[2]);
            cand_boxes = s.op(
                "GatherND",
                "top_boxes",
                &[&bt, &idx],
                vec![int("batch_dims", 1)],
            );
            cand_scores = s.unsqueeze("top_scores", &out[0], &[1]);
            slots = Slots::Index {
                m,
                topk: Some((k, out[1].clone())),
            };
            max_out = top;
            width = None;
        } else {
            cand_boxes = bt;
            cand_scores = s.unsqueeze("nms_scores", &st, &[1]);
            slots = Slots::Index { m, topk: None };
            max_out = 1 << 20;
            width = None;
        }
    } else {
        let m = sd[2].ok_or("the box count is not known at compile time")?;
        let k = usize::try_from(a.nms_top_k).map_or(m, |t| t.min(m));
        let st = mask_background(s, &cx.ins[1], &[1, classes, 1]);
        if k < m || m < TOPK_LIMIT {
            let kk = s.i64s("nms_top_k", &[k as i64]);
            let out = s.ops("TopK", "top", &[&st, &kk], 2, vec![int("axis", 2)]);
            let idx = s.reshape("top_index", &out[1], &[0, -1, 1]);
            let gathered = s.op(
                "GatherND",
                "top_boxes",
                &[&cx.ins[0], &idx],
                vec![int("batch_dims", 1)],
            );
            cand_boxes = s.reshape("nms_boxes", &gathered, &[-1, k as i64, 4]);
            cand_scores = s.reshape("nms_scores", &out[0], &[-1, 1, k as i64]);
            dense = s.reshape("dense_scores", &out[0], &[0, -1]);
            let indices = s.reshape("dense_index", &out[1], &[0, -1]);
            slots = Slots::Rank { k, indices };
            width = Some(classes * k);
        } else {
            // Every box is a candidate and too many for TensorRT's TopK: slots by box index.
            let b = s.unsqueeze("boxes_per_class", &cx.ins[0], &[1]);
            let reps = s.i64s("classes", &[1, classes as i64, 1, 1]);
            let b = s.op("Expand", "class_boxes", &[&b, &reps], vec![]);
            cand_boxes = s.reshape("nms_boxes", &b, &[-1, m as i64, 4]);
            cand_scores = s.reshape("nms_scores", &st, &[-1, 1, m as i64]);
            dense = s.reshape("dense_scores", &st, &[0, -1]);
            let m = s.i64s("boxes", &[m as i64]);
            slots = Slots::Index { m, topk: None };
            width = Some(classes * k);
        }
        max_out = k;
    }
    let cand_boxes = if a.normalized {
        cand_boxes
    } else {
        let plus = s.f32s("pixel_end", &[4], &[0.0, 0.0, 1.0, 1.0]);
        s.binary("Add", "pixel_boxes", &cand_boxes, &plus)
    };
    let max_out = s.i64s("max_out", &[max_out as i64]);
    let iou = s.f32s("iou_threshold", &[1], &[a.nms_threshold]);
    let thr = s.f32s("score_threshold", &[1], &[a.score_threshold]);
    let selected = s.op(
        "NonMaxSuppression",
        "nms",
        &[&cand_boxes, &cand_scores, &max_out, &iou, &thr],
        vec![],
    );
    let column = |s: &mut Sub, what: &str, x: &str, c: i64| {
        let c = s.i64(&format!("{what}_column"), c);
        s.op("Gather", what, &[x, &c], vec![int("axis", 1)])
    };
    let group = column(s, "kept_group", &selected, 0);
    let cand = column(s, "kept_candidate", &selected, 2);
    let slot_of = |s: &mut Sub, per: &str, slot: &str| {
        let base = s.binary("Mul", "slot_base", &group, per);
        s.binary("Add", "slot", &base, slot)
    };
    let (position, per_class) = match &slots {
        Slots::Rank { k, .. } => {
            let k = s.i64s("slots", &[*k as i64]);
            (slot_of(s, &k, &cand), k)
        }
        Slots::Index { m, topk: None } => (slot_of(s, m, &cand), m.clone()),
        Slots::Index {
            m,
            topk: Some((k, idx)),
        } => {
            let at = s.binary("Mul", "top_base", &group, k);
            let at = s.binary("Add", "top_at", &at, &cand);
            let flat = s.reshape("top_index_flat", idx, &[-1]);
            let boxes = s.op("Gather", "kept_box", &[&flat, &at], vec![int("axis", 0)]);
            (slot_of(s, m, &boxes), m.clone())
        }
    };
    let flat_dense = s.reshape("dense_flat", &dense, &[-1]);
    let kept = flags(s, &flat_dense, &position);
    let dims = s.op("Shape", "table_dims", &[&dense], vec![]);
    let kept = s.op("Reshape", "kept_table", &[&kept, &dims], vec![]);
    let kept = if let Ok(cap) = usize::try_from(a.keep_top_k) {
        let kept_b = s.cast("kept_bool", &kept, DType::Bool);
        let ranked = s.op("Where", "ranked", &[&kept_b, &dense, &neg_inf], vec![]);
        let cap = match width {
            Some(w) => s.i64s("keep_top_k", &[cap.min(w) as i64]),
            None => {
                let cap = s.i64s("keep_top_k", &[cap as i64]);
                let slots_n = s.op("Shape", "table_shape", &[&dense], vec![]);
                let slots_n = s.slice("table_width", &slots_n, 0, 1, 2);
                s.binary("Min", "keep", &cap, &slots_n)
            }
        };
        let top = s.ops(
            "TopK",
            "keep_top",
            &[&ranked, &cap],
            2,
            vec![int("axis", 1)],
        );
        let top = table_flags(s, &kept, &top[1]);
        s.binary("Mul", "final", &kept, &top)
    } else {
        kept
    };
    let final_b = s.cast("final_bool", &kept, DType::Bool);
    let nz = s.op("NonZero", "detections", &[&final_b], vec![]);
    let at = s.transpose("detection_at", &nz, &[1, 0]);
    let image = column(s, "detection_image", &at, 0);
    let slot = column(s, "detection_slot", &at, 1);
    let score = s.op("GatherND", "score", &[&dense, &at], vec![]);
    let label = s.binary("Div", "label", &slot, &per_class);
    let box_index = match &slots {
        Slots::Rank { indices, .. } => s.op("GatherND", "box_index", &[indices, &at], vec![]),
        Slots::Index { m, .. } => s.binary("Mod", "box_index", &slot, m),
    };
    let col = |s: &mut Sub, what: &str, x: &str| s.unsqueeze(what, x, &[1]);
    let (box_at, index) = if roi_form {
        let (b, l) = (
            col(s, "box_at_roi", &box_index),
            col(s, "box_at_label", &label),
        );
        let at = s.concat("box_at", &[&b, &l], 1);
        let c = s.i64("class_count", classes as i64);
        let i = s.binary("Mul", "index_base", &box_index, &c);
        (at, s.binary("Add", "index_i64", &i, &label))
    } else {
        let (i, b) = (
            col(s, "box_at_image", &image),
            col(s, "box_at_box", &box_index),
        );
        let at = s.concat("box_at", &[&i, &b], 1);
        let shape = s.op("Shape", "boxes_shape", &[&cx.ins[0]], vec![]);
        let m = s.slice("box_count", &shape, 0, 1, 2);
        let base = s.binary("Mul", "index_base", &image, &m);
        (at, s.binary("Add", "index_i64", &base, &box_index))
    };
    let boxes = s.op(
        "GatherND",
        "detection_boxes",
        &[&cx.ins[0], &box_at],
        vec![],
    );
    detection_outputs(s, cx, [&label, &score, &boxes], &index, &kept);
    Ok(())
}

/// A float tensor shaped like `like` (1-D), zero but at `positions` (a 1-D list), where it is 1.
fn flags(s: &mut Sub, like: &str, positions: &str) -> String {
    let shape = s.op("Shape", "kept_shape", &[like], vec![]);
    let zeros = constant_of_shape(s, "kept_zeros", &shape, 0.0);
    let n = s.op("Shape", "kept_count", &[positions], vec![]);
    let ones = constant_of_shape(s, "kept_ones", &n, 1.0);
    let at = s.unsqueeze("kept_at", positions, &[1]);
    s.op("ScatterND", "kept", &[&zeros, &at, &ones], vec![])
}

/// Flags of a `[N, W]` table like `table`, 1 at each row's `columns` (`[N, K]`).
fn table_flags(s: &mut Sub, table: &str, columns: &str) -> String {
    let shape = s.op("Shape", "top_table_shape", &[table], vec![]);
    let zeros = constant_of_shape(s, "top_zeros", &shape, 0.0);
    let n = s.op("Shape", "top_count", &[columns], vec![]);
    let ones = constant_of_shape(s, "top_ones", &n, 1.0);
    s.op(
        "ScatterElements",
        "top_flags",
        &[&zeros, columns, &ones],
        vec![int("axis", 1)],
    )
}

fn constant_of_shape(s: &mut Sub, what: &str, shape: &str, value: f64) -> String {
    s.op(
        "ConstantOfShape",
        what,
        &[shape],
        vec![Emitter::tensor_attr("value", DType::F32, value)],
    )
}
