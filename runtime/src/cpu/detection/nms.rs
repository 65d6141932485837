//! Non-maximum suppression. The selection core works on plain slices so that Paddle's
//! multiclass_nms can reuse it with its own box format and overlap rule; the arithmetic and the
//! comparisons are onnxruntime's, so the same boxes survive.

use super::{scalar_f32, scalar_i64};
use crate::cpu::f32s;
use crate::RuntimeError;
use crate::Tensor;

/// An axis-aligned box by its corners, whatever order the input gave them in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Corners {
    pub x_min: f32,
    pub y_min: f32,
    pub x_max: f32,
    pub y_max: f32,
}

impl Corners {
    /// ONNX's box data: `[y1, x1, y2, x2]` (any diagonal pair of corners) or, with
    /// `center_point`, `[x_center, y_center, width, height]`.
    pub fn onnx(b: [f32; 4], center_point: bool) -> Corners {
        if center_point {
            let (half_w, half_h) = (b[2] / 2.0, b[3] / 2.0);
            Corners {
                x_min: b[0] - half_w,
                x_max: b[0] + half_w,
                y_min: b[1] - half_h,
                y_max: b[1] + half_h,
            }
        } else {
            let (x_min, x_max) = min_max(b[1], b[3]);
            let (y_min, y_max) = min_max(b[0], b[2]);
            Corners {
                x_min,
                y_min,
                x_max,
                y_max,
            }
        }
    }

    fn area(&self) -> f32 {
        (self.x_max - self.x_min) * (self.y_max - self.y_min)
    }
}

fn min_max(a: f32, b: f32) -> (f32, f32) {
    if a >= b {
        (b, a)
    } else {
        (a, b)
    }
}

/// Whether the intersection over union of `a` and `b` is strictly above `threshold`. Boxes
/// that merely touch, and degenerate boxes, never overlap.
pub(crate) fn iou_exceeds(a: &Corners, b: &Corners, threshold: f32) -> bool {
    let ix_min = a.x_min.max(b.x_min);
    let ix_max = a.x_max.min(b.x_max);
    if ix_max <= ix_min {
        return false;
    }
    let iy_min = a.y_min.max(b.y_min);
    let iy_max = a.y_max.min(b.y_max);
    if iy_max <= iy_min {
        return false;
    }
    let inter = (ix_max - ix_min) * (iy_max - iy_min);
    if inter <= 0.0 {
        return false;
    }
    let (area_a, area_b) = (a.area(), b.area());
    let union = area_a + area_b - inter;
    if area_a <= 0.0 || area_b <= 0.0 || union <= 0.0 {
        return false;
    }
    inter / union > threshold
}

/// Indices of `scores` strictly above `threshold` (all of them without one), best first; equal
/// scores keep index order.
pub(crate) fn ranked(scores: &[f32], threshold: Option<f32>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len())
        .filter(|&i| threshold.is_none_or(|t| scores[i] > t))
        .collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

/// Greedy selection over `candidates` (best first): a candidate is kept unless `suppresses`
/// says a kept one overlaps it too much, until `limit` are kept.
pub(crate) fn greedy(
    candidates: &[usize],
    limit: usize,
    mut suppresses: impl FnMut(usize, usize) -> bool,
) -> Vec<usize> {
    let mut kept: Vec<usize> = Vec::new();
    for &c in candidates {
        if kept.len() >= limit {
            break;
        }
        if !kept.iter().any(|&k| suppresses(k, c)) {
            kept.push(c);
        }
    }
    kept
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
    let mut selected = Vec::new();
    if limit > 0 {
        for batch in 0..n {
            let corners: Vec<Corners> = bv[batch * b * 4..(batch + 1) * b * 4]
                .chunks_exact(4)
                .map(|c| Corners::onnx([c[0], c[1], c[2], c[3]], center_point))
                .collect();
            for class in 0..classes {
                let class_scores = &sv[(batch * classes + class) * b..][..b];
                let kept = greedy(&ranked(class_scores, score), limit, |k, c| {
                    iou_exceeds(&corners[k], &corners[c], iou)
                });
                for k in kept {
                    selected.extend([batch as i64, class as i64, k as i64]);
                }
            }
        }
    }
    Ok(Tensor::i64(vec![selected.len() / 3, 3], selected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corners(b: [f32; 4]) -> Corners {
        Corners::onnx(b, false)
    }

    #[test]
    fn flipped_corners_are_the_same_box() {
        assert_eq!(corners([0.0, 0.0, 1.0, 2.0]), corners([1.0, 2.0, 0.0, 0.0]));
    }

    #[test]
    fn touching_and_degenerate_boxes_never_overlap() {
        let a = corners([0.0, 0.0, 1.0, 1.0]);
        assert!(!iou_exceeds(&a, &corners([1.0, 0.0, 2.0, 1.0]), 0.0));
        assert!(!iou_exceeds(&a, &corners([0.5, 0.5, 0.5, 0.9]), 0.0));
        assert!(iou_exceeds(&a, &a, 0.99));
        assert!(!iou_exceeds(&a, &a, 1.0));
    }

    #[test]
    fn equal_scores_keep_index_order_and_threshold_is_strict() {
        let scores = [0.5, 0.9, 0.5, 0.2, 0.9];
        assert_eq!(ranked(&scores, None), [1, 4, 0, 2, 3]);
        assert_eq!(ranked(&scores, Some(0.5)), [1, 4]);
    }

    #[test]
    fn greedy_stops_at_the_limit() {
        let kept = greedy(&[3, 1, 2, 0], 2, |k, c| k + c == 4);
        assert_eq!(kept, [3, 2]);
    }
}
