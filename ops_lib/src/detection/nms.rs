//! ONNX NonMaxSuppression on plain slices: the arithmetic and the comparisons are
//! onnxruntime's, so the same boxes survive. Its overlap rule differs from Paddle's
//! ([`super::boxes::iou`]) in ways that change which boxes survive, so the two stay separate
//! functions: ONNX sorts each box's corners, and boxes that touch or are degenerate never
//! overlap; Paddle takes corners as given (an inverted box has no area) and counts pixel boxes
//! (`normalized = false`) with both end pixels, so boxes that touch overlap by one pixel.

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
    // Sorted as (score, index) pairs, which the comparisons read directly: sorting indices
    // that look their scores up took a third of PicoDet's NonMaxSuppression (80 classes of
    // 3598 boxes). The index breaks ties, so the unstable sort gives one order.
    let mut order: Vec<(f32, usize)> = scores
        .iter()
        .enumerate()
        .filter(|&(_, &s)| threshold.is_none_or(|t| s > t))
        .map(|(i, &s)| (s, i))
        .collect();
    order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    order.into_iter().map(|(_, i)| i).collect()
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

/// One batch's boxes of an ONNX NonMaxSuppression, ready to select from per class: the classes
/// share them, so a caller may select the classes in parallel.
pub struct OnnxBoxes(Vec<Corners>);

impl OnnxBoxes {
    /// `boxes`, `[b, 4]`, as ONNX gives them ([`Corners::onnx`]).
    pub fn new(boxes: &[f32], center_point: bool) -> OnnxBoxes {
        OnnxBoxes(
            boxes
                .chunks_exact(4)
                .map(|c| Corners::onnx([c[0], c[1], c[2], c[3]], center_point))
                .collect(),
        )
    }

    /// The boxes one class keeps, best first: at most `limit`, scored by `scores` (one per
    /// box) above `score` when given, none overlapping a better one by more than `iou`.
    pub fn select(&self, scores: &[f32], limit: usize, iou: f32, score: Option<f32>) -> Vec<usize> {
        let corners = &self.0;
        greedy(&ranked(scores, score), limit, |k, c| {
            iou_exceeds(&corners[k], &corners[c], iou)
        })
    }
}

/// ONNX NonMaxSuppression over `n` batches of `b` boxes (`boxes` `[n, b, 4]`) and `classes`
/// score rows per batch (`scores` `[n, classes, b]`): at most `limit` boxes per batch and class,
/// as `[batch, class, box]` triples.
pub fn non_max_suppression(
    boxes: &[f32],
    scores: &[f32],
    [n, classes, b]: [usize; 3],
    center_point: bool,
    limit: usize,
    iou: f32,
    score: Option<f32>,
) -> Vec<i64> {
    non_max_suppression_with(
        boxes,
        scores,
        [n, classes, b],
        center_point,
        limit,
        |boxes, rows| {
            rows.chunks(b.max(1))
                .map(|s| boxes.select(s, limit, iou, score))
                .collect()
        },
    )
}

/// [`non_max_suppression`] with each batch's classes selected by `select(boxes, rows)`: the
/// batch's boxes and its `classes` score rows of `b`, one after another, to the boxes each
/// class keeps ([`OnnxBoxes::select`]), in class order. A caller with threads selects the
/// classes in parallel.
pub fn non_max_suppression_with(
    boxes: &[f32],
    scores: &[f32],
    [n, classes, b]: [usize; 3],
    center_point: bool,
    limit: usize,
    select: impl Fn(&OnnxBoxes, &[f32]) -> Vec<Vec<usize>>,
) -> Vec<i64> {
    let mut selected = Vec::new();
    if limit == 0 {
        return selected;
    }
    for batch in 0..n {
        let boxes = OnnxBoxes::new(&boxes[batch * b * 4..(batch + 1) * b * 4], center_point);
        let rows = &scores[batch * classes * b..][..classes * b];
        for (class, kept) in select(&boxes, rows).into_iter().enumerate() {
            for k in kept {
                selected.extend([batch as i64, class as i64, k as i64]);
            }
        }
    }
    selected
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
