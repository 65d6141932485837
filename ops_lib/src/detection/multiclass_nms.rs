//! multiclass_nms3: per-class greedy NMS, then a per-image cap on detections.
//!
//! Two input forms, as in Paddle: batched `BBoxes [N, M, 4]` with `Scores [N, C, M]`, or
//! per-RoI class boxes `BBoxes [M, C, 4]` with `Scores [M, C]` split into images by `RoisNum`.
//! Output rows are `[label, score, x1, y1, x2, y2]`, grouped per image and by ascending label;
//! within a label in descending score (batched form) or ascending RoI index (RoI form).

use super::boxes::greedy_nms;
use super::{counts_data, counts_dims, float_data, float_dims, offsets_from_counts, ty, Args};
use crate::LibTensor;
use crate::LibView;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::collections::BinaryHeap;
use temblor_ir::{DType, Dim, MulticlassNmsAttrs, TensorType};

/// Kept candidate indices per class label, ascending by label.
type Selection = BTreeMap<usize, Vec<usize>>;

pub(super) fn infer(args: &Args<'_, TensorType>) -> Result<Vec<TensorType>, String> {
    let (scores, what) = args.get(1)?;
    let rank = scores.shape.rank();
    let (bboxes, bwhat) = args.get(0)?;
    let images = if rank == 3 {
        float_dims(scores, &what, 3)?;
        float_dims(bboxes, &bwhat, 3)?[0].clone()
    } else {
        float_dims(scores, &what, 2)?;
        float_dims(bboxes, &bwhat, 3)?;
        let (rois_num, nwhat) = args.opt(2).ok_or_else(|| {
            format!("{what} is 2-D (per-RoI form), which needs RoisNum connected")
        })?;
        counts_dims(rois_num, &nwhat)?
    };
    Ok(detection_types(images))
}

pub(super) fn run(
    attrs: &MulticlassNmsAttrs,
    args: &Args<'_, LibView<'_>>,
) -> Result<Vec<LibTensor>, String> {
    let (bv, bwhat) = args.get(0)?;
    let (sv, swhat) = args.get(1)?;
    let mut rows = Vec::new();
    let mut index = Vec::new();
    let mut counts = Vec::new();
    if sv.dims.len() == 3 {
        let scores = float_data(sv, &swhat, 3)?;
        let bboxes = float_data(bv, &bwhat, 3)?;
        let [n, c, m] = [sv.dims[0], sv.dims[1], sv.dims[2]];
        if bv.dims != [n, m, 4] {
            return Err(format!(
                "{bwhat} must be [{n}, {m}, 4] for {swhat} {:?}",
                sv.dims
            ));
        }
        for i in 0..n {
            let score = |cls: usize, idx: usize| scores[(i * c + cls) * m + idx];
            let bbox = |_: usize, idx: usize| &bboxes[(i * m + idx) * 4..(i * m + idx + 1) * 4];
            let sel = select(attrs, c, m, &score, &bbox, false);
            let before = index.len();
            for (&cls, kept) in &sel {
                for &idx in kept {
                    push_row(&mut rows, cls, score(cls, idx), bbox(cls, idx));
                    index.push(to_i32((i * m + idx) as i64)?);
                }
            }
            counts.push(to_i32((index.len() - before) as i64)?);
        }
    } else {
        let scores = float_data(sv, &swhat, 2)?;
        let bboxes = float_data(bv, &bwhat, 3)?;
        let [m, c] = [sv.dims[0], sv.dims[1]];
        if bv.dims != [m, c, 4] {
            return Err(format!(
                "{bwhat} must be [{m}, {c}, 4] for {swhat} {:?}",
                sv.dims
            ));
        }
        let (nv, nwhat) = args.opt(2).ok_or_else(|| {
            format!("{swhat} is 2-D (per-RoI form), which needs RoisNum connected")
        })?;
        let offsets = offsets_from_counts(&counts_data(nv, &nwhat)?, m, &nwhat)?;
        for w in offsets.windows(2) {
            let (start, len) = (w[0], w[1] - w[0]);
            let score = |cls: usize, idx: usize| scores[(start + idx) * c + cls];
            let bbox = |cls: usize, idx: usize| {
                let at = ((start + idx) * c + cls) * 4;
                &bboxes[at..at + 4]
            };
            let sel = select(attrs, c, len, &score, &bbox, true);
            let before = index.len();
            for (&cls, kept) in &sel {
                for &idx in kept {
                    push_row(&mut rows, cls, score(cls, idx), bbox(cls, idx));
                    index.push(to_i32(((start + idx) * c + cls) as i64)?);
                }
            }
            counts.push(to_i32((index.len() - before) as i64)?);
        }
    }
    Ok(detection_outputs(rows, index, counts))
}

/// NMS for one image over `classes` classes of `m` candidates each, then `keep_top_k`.
/// `by_index` re-sorts each class's kept indices ascending (the per-RoI form).
fn select<'b>(
    attrs: &MulticlassNmsAttrs,
    classes: usize,
    m: usize,
    score: &dyn Fn(usize, usize) -> f32,
    bbox: &dyn Fn(usize, usize) -> &'b [f32],
    by_index: bool,
) -> Selection {
    let mut sel = Selection::new();
    let mut total = 0usize;
    // The best keep_top_k scores kept so far, over all classes. A candidate scoring below
    // the lowest of them once there are keep_top_k can never reach the final cut, and
    // neither can anything after it in its class (visited in descending order), whose
    // suppression it could only have decided: skipping them is exact, and on a detector
    // whose every box scores high it skips nearly all of the quadratic work.
    let mut best: BinaryHeap<Reverse<Score>> = BinaryHeap::new();
    let cap = usize::try_from(attrs.keep_top_k).ok();
    for cls in 0..classes {
        if cls as i64 == attrs.background_label {
            continue;
        }
        let floor = match cap {
            Some(k) if best.len() >= k && k > 0 => best.peek().map(|r| r.0 .0),
            _ => None,
        };
        let mut cand: Vec<(f32, usize)> = (0..m)
            .map(|idx| (score(cls, idx), idx))
            .filter(|&(s, _)| s > attrs.score_threshold && floor.is_none_or(|f| s >= f))
            .collect();
        sort_descending(&mut cand);
        truncate_top_k(&mut cand, attrs.nms_top_k);
        let mut kept = greedy_nms(
            cand.iter().map(|&(_, idx)| idx),
            |idx| bbox(cls, idx),
            attrs.nms_threshold,
            attrs.nms_eta,
            attrs.normalized,
        );
        if let Some(k) = cap {
            for &idx in &kept {
                best.push(Reverse(Score(score(cls, idx))));
                if best.len() > k {
                    best.pop();
                }
            }
        }
        if by_index {
            kept.sort_unstable();
        }
        total += kept.len();
        sel.insert(cls, kept);
    }
    if attrs.keep_top_k > -1 && total > attrs.keep_top_k as usize {
        let mut all: Vec<(f32, (usize, usize))> = sel
            .iter()
            .flat_map(|(&cls, kept)| kept.iter().map(move |&idx| (score(cls, idx), (cls, idx))))
            .collect();
        sort_descending(&mut all);
        all.truncate(attrs.keep_top_k as usize);
        sel = Selection::new();
        for (_, (cls, idx)) in all {
            sel.entry(cls).or_default().push(idx);
        }
        if by_index {
            sel.values_mut().for_each(|kept| kept.sort_unstable());
        }
    }
    sel
}

/// A score ordered totally, for the heap of the best kept scores (NaN never passes the score
/// threshold, so it never reaches the heap).
#[derive(Clone, Copy)]
pub(crate) struct Score(pub(crate) f32);

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Stable sort by descending score: equal scores keep their order, as `std::stable_sort` does.
pub(crate) fn sort_descending<T>(v: &mut [(f32, T)]) {
    v.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
}

/// Keeps the first `k` entries when `k` is not -1.
pub(crate) fn truncate_top_k<T>(v: &mut Vec<T>, k: i64) {
    if let Ok(k) = usize::try_from(k) {
        v.truncate(k);
    }
}

pub(crate) fn push_row(rows: &mut Vec<f32>, label: usize, score: f32, bbox: &[f32]) {
    rows.push(label as f32);
    rows.push(score);
    rows.extend_from_slice(bbox);
}

pub(crate) fn to_i32(v: i64) -> Result<i32, String> {
    i32::try_from(v).map_err(|_| format!("index {v} does not fit the int32 output"))
}

/// Types of `Out [?, 6]`, `Index [?, 1]` and the per-image count `[images]`.
pub(crate) fn detection_types(images: Dim) -> Vec<TensorType> {
    vec![
        ty(DType::F32, vec![Dim::Unknown, Dim::Known(6)]),
        ty(DType::I32, vec![Dim::Unknown, Dim::Known(1)]),
        ty(DType::I32, vec![images]),
    ]
}

/// `Out`, `Index` and per-image counts. With no detection at all `Out` is `[0, 6]`: Paddle's
/// `[1, 1]` holding -1 appears only when its Index output is not requested.
pub(crate) fn detection_outputs(
    rows: Vec<f32>,
    index: Vec<i32>,
    counts: Vec<i32>,
) -> Vec<LibTensor> {
    let kept = index.len();
    let images = counts.len();
    vec![
        LibTensor::f32(vec![kept, 6], rows),
        LibTensor::i32(vec![kept, 1], index),
        LibTensor::i32(vec![images], counts),
    ]
}
