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

/// Whether the intersection over union of `a` and `b` is strictly above `threshold`, written
/// as onnxruntime writes it, with its early returns: the tests' reference for [`exceeds`].
/// Boxes that merely touch, and degenerate boxes, never overlap.
#[cfg(test)]
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

/// Whether the intersection over union of kept box `k` (its corners and area) and candidate
/// `c` is strictly above `threshold`, as onnxruntime decides it, without a branch, so that a
/// loop over kept boxes vectorizes. Boxes that merely touch, and degenerate boxes, never
/// overlap. Each test that onnxruntime's early returns make is a conjunct here, as `>` where it returns on `<=`: where those differ, a
/// value is NaN, and a NaN anywhere makes the final ratio NaN, which is never above the
/// threshold; so the two give the same answer for every input.
#[inline(always)]
fn exceeds(k: [f32; 4], area_k: f32, c: &Corners, area_c: f32, threshold: f32) -> bool {
    let [x_min, y_min, x_max, y_max] = k;
    let ix_min = x_min.max(c.x_min);
    let ix_max = x_max.min(c.x_max);
    let iy_min = y_min.max(c.y_min);
    let iy_max = y_max.min(c.y_max);
    let inter = (ix_max - ix_min) * (iy_max - iy_min);
    let union = area_k + area_c - inter;
    (ix_max > ix_min)
        & (iy_max > iy_min)
        & (inter > 0.0)
        & (area_k > 0.0)
        & (area_c > 0.0)
        & (union > 0.0)
        & (inter / union > threshold)
}

/// Indices of `scores` strictly above `threshold` (all of them without one), best first; equal
/// scores keep index order.
pub(crate) fn ranked(scores: &[f32], threshold: Option<f32>) -> Vec<usize> {
    // Sorted as (score, index) pairs, which the comparisons read directly: sorting indices
    // that look their scores up took a third of PicoDet's NonMaxSuppression (80 classes of
    // 3598 boxes). The index breaks ties, so the unstable sort gives one order.
    let mut order = match threshold {
        Some(t) => above(scores, t),
        None => scores.iter().copied().zip(0..).collect(),
    };
    order.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    order.into_iter().map(|(_, i)| i).collect()
}

/// `(score, index)` of the scores strictly above `t`, in index order. A detector's scores are
/// mostly below its threshold, and a filter that branched on each one took a third of
/// PicoDet's NonMaxSuppression (287,840 scores, 1,400 to 5,900 above 0.025 on its reference photos):
/// here each 16 are compared into a bit mask, which the compiler vectorizes, and only the set
/// bits are visited.
fn above(scores: &[f32], t: f32) -> Vec<(f32, usize)> {
    let mut out = Vec::new();
    let mut chunks = scores.chunks_exact(16);
    for (c, chunk) in chunks.by_ref().enumerate() {
        let mut mask = 0u32;
        for (i, &s) in chunk.iter().enumerate() {
            mask |= u32::from(s > t) << i;
        }
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            out.push((chunk[i], c * 16 + i));
        }
    }
    let base = scores.len() - chunks.remainder().len();
    out.extend(
        (base..)
            .zip(chunks.remainder())
            .filter(|&(_, &s)| s > t)
            .map(|(i, &s)| (s, i)),
    );
    out
}

/// The boxes a class has kept so far, by coordinate (and area), so that checking a candidate
/// against them runs over vectors.
#[derive(Default)]
struct Kept {
    x_min: Vec<f32>,
    y_min: Vec<f32>,
    x_max: Vec<f32>,
    y_max: Vec<f32>,
    area: Vec<f32>,
}

impl Kept {
    fn push(&mut self, b: &Corners) {
        self.x_min.push(b.x_min);
        self.y_min.push(b.y_min);
        self.x_max.push(b.x_max);
        self.y_max.push(b.y_max);
        self.area.push(b.area());
    }

    /// Whether a kept box overlaps `c` by more than `iou`. Checked 16 kept boxes at a time,
    /// stopping at the first 16 with one: a suppressed candidate is most often suppressed by
    /// one of the best boxes, which come first.
    fn suppress(&self, c: &Corners, iou: f32) -> bool {
        const STEP: usize = 16;
        let area_c = c.area();
        (0..self.area.len()).step_by(STEP).any(|i0| {
            let end = (i0 + STEP).min(self.area.len());
            let columns = self.x_min[i0..end]
                .iter()
                .zip(&self.y_min[i0..end])
                .zip(&self.x_max[i0..end])
                .zip(&self.y_max[i0..end])
                .zip(&self.area[i0..end]);
            let mut hit = false;
            for ((((&x_min, &y_min), &x_max), &y_max), &area_k) in columns {
                hit |= exceeds([x_min, y_min, x_max, y_max], area_k, c, area_c, iou);
            }
            hit
        })
    }
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
        let mut kept = Kept::default();
        let mut selected = Vec::new();
        for c in ranked(scores, score) {
            if selected.len() >= limit {
                break;
            }
            let candidate = &self.0[c];
            if !kept.suppress(candidate, iou) {
                kept.push(candidate);
                selected.push(c);
            }
        }
        selected
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
        // The test the selection runs, which must agree with the reference.
        let overlaps = |a: &Corners, b: &Corners, t: f32| {
            let k = [a.x_min, a.y_min, a.x_max, a.y_max];
            let got = exceeds(k, a.area(), b, b.area(), t);
            assert_eq!(got, iou_exceeds(a, b, t));
            got
        };
        let a = corners([0.0, 0.0, 1.0, 1.0]);
        assert!(!overlaps(&a, &corners([1.0, 0.0, 2.0, 1.0]), 0.0));
        assert!(!overlaps(&a, &corners([0.5, 0.5, 0.5, 0.9]), 0.0));
        assert!(overlaps(&a, &a, 0.99));
        assert!(!overlaps(&a, &a, 1.0));
    }

    #[test]
    fn equal_scores_keep_index_order_and_threshold_is_strict() {
        let scores = [0.5, 0.9, 0.5, 0.2, 0.9];
        assert_eq!(ranked(&scores, None), [1, 4, 0, 2, 3]);
        assert_eq!(ranked(&scores, Some(0.5)), [1, 4]);
    }

    /// Boxes from a seeded generator: overlapping clusters, with flipped, degenerate,
    /// touching and non-finite ones among them.
    fn boxes(n: usize, seed: u64) -> Vec<Corners> {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        (0..n)
            .map(|i| {
                let (cx, cy) = ((i % 7) as f32 + next(), (i % 5) as f32 + next());
                let mut b = [cy, cx, cy + 2.0 * next(), cx + 2.0 * next()];
                match i % 23 {
                    0 => b.swap(0, 2),
                    1 => b[2] = b[0],
                    2 => b[3] = f32::NAN,
                    3 => b[1] = f32::NEG_INFINITY,
                    4 => b[3] = b[1].floor() + 1.0,
                    _ => {}
                }
                corners(b)
            })
            .collect()
    }

    #[test]
    fn branch_free_overlap_is_onnxruntimes() {
        let all = boxes(300, 7);
        for threshold in [0.0, 0.3, 0.5, 1.0] {
            for a in &all {
                for b in &all {
                    let k = [a.x_min, a.y_min, a.x_max, a.y_max];
                    assert_eq!(
                        exceeds(k, a.area(), b, b.area(), threshold),
                        iou_exceeds(a, b, threshold),
                        "{a:?} {b:?} at {threshold}"
                    );
                }
            }
        }
    }

    /// ONNX's greedy selection as onnxruntime writes it: each candidate, best first, against
    /// every box kept before it.
    fn reference(
        all: &[Corners],
        scores: &[f32],
        limit: usize,
        iou: f32,
        score: Option<f32>,
    ) -> Vec<usize> {
        let mut order: Vec<usize> = (0..scores.len())
            .filter(|&i| score.is_none_or(|t| scores[i] > t))
            .collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let mut kept: Vec<usize> = Vec::new();
        for c in order {
            if kept.len() < limit && !kept.iter().any(|&k| iou_exceeds(&all[k], &all[c], iou)) {
                kept.push(c);
            }
        }
        kept
    }

    #[test]
    fn selection_is_the_greedy_reference() {
        let all = boxes(1000, 11);
        let flat: Vec<f32> = all
            .iter()
            .flat_map(|b| [b.y_min, b.x_min, b.y_max, b.x_max])
            .collect();
        let onnx = OnnxBoxes::new(&flat, false);
        let mut state = 3u32;
        let scores: Vec<f32> = (0..all.len())
            .map(|i| {
                state = state.wrapping_mul(1664525).wrapping_add(1013904223);
                match i % 97 {
                    0 => f32::NAN,
                    1 => 0.5,
                    _ => (state >> 8) as f32 / (1u32 << 24) as f32,
                }
            })
            .collect();
        let cases = [
            (1000, 0.5, Some(0.2)),
            (1000, 0.0, Some(0.9)),
            (10, 0.6, Some(0.1)),
            (0, 0.5, Some(0.0)),
            // 969 kept of 1000, NaN scores first.
            (1000, 0.7, None),
        ];
        for (limit, iou, score) in cases {
            let got = onnx.select(&scores, limit, iou, score);
            assert_eq!(got, reference(&all, &scores, limit, iou, score));
            assert!(got.len() <= limit);
        }
    }
}
