//! matrix_nms (SOLOv2's Matrix NMS): instead of removing overlapping boxes, each candidate's
//! score decays by its overlap with every higher-scored candidate of its class, all at once.
//! Inputs `BBoxes [N, M, 4]`, `Scores [N, C, M]`; output rows `[label, decayed score, box]`
//! per image in descending decayed score.
//!
//! Paddle orders equal scores with `std::partial_sort`, which leaves ties in no defined order;
//! this kernel keeps tied candidates in index order.

use super::boxes::iou;
use super::multiclass_nms::Score;
use super::multiclass_nms::{
    detection_outputs, detection_types, push_row, sort_descending, to_i32, truncate_top_k,
};
use super::{float_data, float_dims, Args};
use crate::LibTensor;
use crate::LibView;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use temblor_ir::{MatrixNmsAttrs, TensorType};

pub(super) fn infer(args: &Args<'_, TensorType>) -> Result<Vec<TensorType>, String> {
    let (bboxes, bwhat) = args.get(0)?;
    let (scores, swhat) = args.get(1)?;
    float_dims(scores, &swhat, 3)?;
    let images = float_dims(bboxes, &bwhat, 3)?[0].clone();
    Ok(detection_types(images))
}

pub(super) fn run(
    attrs: &MatrixNmsAttrs,
    args: &Args<'_, LibView<'_>>,
) -> Result<Vec<LibTensor>, String> {
    let (bv, bwhat) = args.get(0)?;
    let (sv, swhat) = args.get(1)?;
    let scores = float_data(sv, &swhat, 3)?;
    let bboxes = float_data(bv, &bwhat, 3)?;
    let [n, c, m] = [sv.dims[0], sv.dims[1], sv.dims[2]];
    if bv.dims != [n, m, 4] {
        return Err(format!(
            "{bwhat} must be [{n}, {m}, 4] for {swhat} {:?}",
            sv.dims
        ));
    }
    let mut rows = Vec::new();
    let mut index = Vec::new();
    let mut counts = Vec::new();
    for i in 0..n {
        let bbox = |idx: usize| &bboxes[(i * m + idx) * 4..(i * m + idx + 1) * 4];
        // (decayed score, (class, box index)) over all classes of this image.
        let mut dets: Vec<(f32, (usize, usize))> = Vec::new();
        // The best keep_top_k decayed scores so far. Decay only lowers a score, and a
        // candidate's decay depends only on higher-scored ones, so candidates scoring below
        // the lowest of them (once there are keep_top_k) are skipped exactly.
        let mut best: BinaryHeap<Reverse<Score>> = BinaryHeap::new();
        let cap = usize::try_from(attrs.keep_top_k).ok().filter(|&k| k > 0);
        for cls in 0..c {
            if cls as i64 == attrs.background_label {
                continue;
            }
            let floor = cap
                .filter(|&k| best.len() >= k)
                .and_then(|_| best.peek().map(|r| r.0 .0));
            let cls_scores = &scores[(i * c + cls) * m..(i * c + cls + 1) * m];
            for (ds, idx) in decay_class(attrs, cls_scores, &bbox, floor) {
                dets.push((ds, (cls, idx)));
                if let Some(k) = cap {
                    best.push(Reverse(Score(ds)));
                    if best.len() > k {
                        best.pop();
                    }
                }
            }
        }
        sort_descending(&mut dets);
        truncate_top_k(&mut dets, attrs.keep_top_k);
        for &(ds, (cls, idx)) in &dets {
            push_row(&mut rows, cls, ds, bbox(idx));
            index.push(to_i32((i * m + idx) as i64)?);
        }
        counts.push(to_i32(dets.len() as i64)?);
    }
    Ok(detection_outputs(rows, index, counts))
}

/// Decayed scores of one class's candidates that pass both thresholds, in the order of
/// their original scores.
fn decay_class<'b>(
    attrs: &MatrixNmsAttrs,
    scores: &[f32],
    bbox: &dyn Fn(usize) -> &'b [f32],
    floor: Option<f32>,
) -> Vec<(f32, usize)> {
    let mut cand: Vec<(f32, usize)> = scores
        .iter()
        .enumerate()
        .filter(|&(_, &s)| s > attrs.score_threshold)
        .map(|(idx, &s)| (s, idx))
        .collect();
    sort_descending(&mut cand);
    truncate_top_k(&mut cand, attrs.nms_top_k);
    if let Some(f) = floor {
        cand.retain(|&(s, _)| s >= f);
    }
    let k = cand.len();
    if k == 0 {
        return Vec::new();
    }
    // IoU of candidates i and j < i (lower triangle, row by row), and each candidate's
    // largest IoU with a higher-scored one.
    let mut ious = vec![0f32; k * (k - 1) / 2];
    let mut max_iou = vec![0f32; k];
    for i in 1..k {
        let mut max = 0f32;
        for j in 0..i {
            let v = iou(bbox(cand[i].1), bbox(cand[j].1), attrs.normalized);
            max = max.max(v);
            ious[i * (i - 1) / 2 + j] = v;
        }
        max_iou[i] = max;
    }
    let mut out = Vec::new();
    if cand[0].0 > attrs.post_threshold {
        out.push(cand[0]);
    }
    for i in 1..k {
        let mut min_decay = 1f32;
        for j in 0..i {
            let decay = decay(attrs, ious[i * (i - 1) / 2 + j], max_iou[j]);
            min_decay = min_decay.min(decay);
        }
        let ds = min_decay * cand[i].0;
        if ds > attrs.post_threshold {
            out.push((ds, cand[i].1));
        }
    }
    out
}

/// How much overlap `iou` with a candidate that itself overlaps a better one by `max_iou`
/// decays a score: Gaussian, or linear (computed in double as Paddle does).
fn decay(attrs: &MatrixNmsAttrs, iou: f32, max_iou: f32) -> f32 {
    if attrs.use_gaussian {
        ((max_iou * max_iou - iou * iou) * attrs.gaussian_sigma).exp()
    } else {
        ((1.0 - f64::from(iou)) / (1.0 - f64::from(max_iou))) as f32
    }
}
