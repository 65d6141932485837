//! COCO's bounding-box metric, as pycocotools' `COCOeval` defines it (`evaluateImg`,
//! `accumulate`, `summarize`): per image and class, detections sorted by score (stable) and cut
//! to 100, each matched greedily to the unmatched ground truth box of highest IoU at or above
//! the threshold (non-crowd boxes first; crowd boxes match any number of detections and are
//! ignored); per class, precision made monotone and read at 101 recall points; AP the mean over
//! the ten IoU thresholds 0.50:0.05:0.95 and the recall points, area range "all".

use super::{ClassAp, Detection, GtBox, Metrics};
use std::collections::BTreeSet;

/// Detections per image that count (COCO's `maxDets` for AP).
const MAX_DETS: usize = 100;
/// Area range "all": `[0, 1e5 ** 2]`.
const AREA_ALL: (f64, f64) = (0.0, 1e10);
const THRESHOLDS: usize = 10;
const RECALL_POINTS: usize = 101;

/// `numpy.linspace(start, stop, num)` to the last bit, so thresholds compare as pycocotools'
/// do (its AP75 picks the threshold equal to 0.75).
fn linspace<const N: usize>(start: f64, stop: f64) -> [f64; N] {
    let step = (stop - start) / (N - 1) as f64;
    let mut v: [f64; N] = std::array::from_fn(|i| i as f64 * step + start);
    v[N - 1] = stop;
    v
}

/// A detection as COCO's results hold it: box as x, y, w, h in f64.
struct Det {
    score: f64,
    bbox: [f64; 4],
}

impl Det {
    fn new(d: &Detection) -> Det {
        Det {
            score: d.score as f64,
            bbox: d.xywh(),
        }
    }
}

/// One (image, class) pair after matching, at every threshold.
struct ImageEval {
    scores: Vec<f64>,
    /// `[threshold][detection]`: matched to a ground truth box.
    matched: Vec<Vec<bool>>,
    /// `[threshold][detection]`: matched to an ignored box (crowd, or outside the area range).
    ignored: Vec<Vec<bool>>,
    /// Ground truth boxes that count.
    counted_gt: usize,
}

/// pycocotools' `maskUtils.iou` for boxes: a crowd box's IoU is the intersection over the
/// detection's area.
fn iou(d: &[f64; 4], g: &[f64; 4], crowd: bool) -> f64 {
    let w = (d[0] + d[2]).min(g[0] + g[2]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[1] + d[3]).min(g[1] + g[3]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let inter = w * h;
    let da = d[2] * d[3];
    let union = if crowd { da } else { da + g[2] * g[3] - inter };
    inter / union
}

fn outside(area: f64) -> bool {
    area < AREA_ALL.0 || area > AREA_ALL.1
}

/// `COCOeval.evaluateImg` for one image and class.
fn evaluate_image(gt: &[&GtBox], dets: &[Det], thresholds: &[f64]) -> Option<ImageEval> {
    if gt.is_empty() && dets.is_empty() {
        return None;
    }
    let mut gt: Vec<(&GtBox, bool)> = gt
        .iter()
        .map(|g| (*g, g.crowd || outside(g.area)))
        .collect();
    gt.sort_by_key(|&(_, ignore)| ignore);
    let mut order: Vec<usize> = (0..dets.len()).collect();
    order.sort_by(|&a, &b| dets[b].score.total_cmp(&dets[a].score));
    order.truncate(MAX_DETS);
    let dets: Vec<&Det> = order.iter().map(|&i| &dets[i]).collect();
    let ious: Vec<Vec<f64>> = dets
        .iter()
        .map(|d| {
            gt.iter()
                .map(|(g, _)| iou(&d.bbox, &g.bbox, g.crowd))
                .collect()
        })
        .collect();
    let mut matched = vec![vec![false; dets.len()]; thresholds.len()];
    let mut ignored = vec![vec![false; dets.len()]; thresholds.len()];
    for (t, &threshold) in thresholds.iter().enumerate() {
        let mut gt_taken = vec![false; gt.len()];
        for (d, det_ious) in ious.iter().enumerate() {
            let mut best = threshold.min(1.0 - 1e-10);
            let mut m: Option<usize> = None;
            for (g, &(gt_box, gt_ignore)) in gt.iter().enumerate() {
                if gt_taken[g] && !gt_box.crowd {
                    continue;
                }
                // Ignored boxes sort last: once a counted box matched, none of them may.
                if m.is_some_and(|m| !gt[m].1) && gt_ignore {
                    break;
                }
                if det_ious[g] < best {
                    continue;
                }
                best = det_ious[g];
                m = Some(g);
            }
            if let Some(m) = m {
                ignored[t][d] = gt[m].1;
                matched[t][d] = true;
                gt_taken[m] = true;
            }
        }
        for (d, det) in dets.iter().enumerate() {
            if !matched[t][d] && outside(det.bbox[2] * det.bbox[3]) {
                ignored[t][d] = true;
            }
        }
    }
    Some(ImageEval {
        scores: dets.iter().map(|d| d.score).collect(),
        matched,
        ignored,
        counted_gt: gt.iter().filter(|(_, ignore)| !ignore).count(),
    })
}

/// `COCOeval.accumulate` for one class: precision at each threshold and recall point, or
/// `None` when the class has no ground truth box that counts.
fn accumulate(evals: &[ImageEval], recall_points: &[f64]) -> Option<Vec<Vec<f64>>> {
    let counted: usize = evals.iter().map(|e| e.counted_gt).sum();
    if counted == 0 {
        return None;
    }
    let scores: Vec<f64> = evals
        .iter()
        .flat_map(|e| e.scores.iter().copied())
        .collect();
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let thresholds = evals.first().map_or(0, |e| e.matched.len());
    let precision = (0..thresholds)
        .map(|t| {
            let matched: Vec<bool> = evals
                .iter()
                .flat_map(|e| e.matched[t].iter().copied())
                .collect();
            let ignored: Vec<bool> = evals
                .iter()
                .flat_map(|e| e.ignored[t].iter().copied())
                .collect();
            let (mut tp, mut fp) = (0f64, 0f64);
            let mut recall = Vec::with_capacity(order.len());
            let mut precision = Vec::with_capacity(order.len());
            for &i in order.iter().filter(|&&i| !ignored[i]) {
                if matched[i] {
                    tp += 1.0;
                } else {
                    fp += 1.0;
                }
                recall.push(tp / counted as f64);
                precision.push(tp / (fp + tp + f64::EPSILON));
            }
            // numpy keeps the ignored detections as zero-increment steps; they repeat the
            // previous recall and precision, which changes neither the envelope nor the lookup.
            for i in (1..precision.len()).rev() {
                if precision[i] > precision[i - 1] {
                    precision[i - 1] = precision[i];
                }
            }
            recall_points
                .iter()
                .map(|&r| {
                    let at = recall.partition_point(|&x| x < r);
                    precision.get(at).copied().unwrap_or(0.0)
                })
                .collect()
        })
        .collect();
    Some(precision)
}

fn mean<'a>(values: impl Iterator<Item = &'a f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// COCO AP, AP50, AP75 and per-class APs of `dets` against `gt`, both per image (same order).
/// A value no class defines (no ground truth at all) is -1, pycocotools' convention.
pub fn evaluate(gt: &[Vec<GtBox>], dets: &[Vec<Detection>]) -> Metrics {
    let thresholds: [f64; THRESHOLDS] = linspace(0.5, 0.95);
    let recall_points: [f64; RECALL_POINTS] = linspace(0.0, 1.0);
    let at = |x: f64| thresholds.iter().position(|&t| t == x);
    let (t50, t75) = (at(0.5), at(0.75));
    let images = gt.len().max(dets.len());
    let classes: BTreeSet<i64> = gt
        .iter()
        .flatten()
        .map(|g| g.class)
        .chain(dets.iter().flatten().map(|d| d.class))
        .collect();
    let mut per_class = Vec::new();
    let mut tables = Vec::new();
    for &class in &classes {
        let mut evals = Vec::new();
        let (mut gt_count, mut det_count) = (0, 0);
        for i in 0..images {
            let g: Vec<&GtBox> = gt
                .get(i)
                .into_iter()
                .flatten()
                .filter(|g| g.class == class)
                .collect();
            let d: Vec<Det> = dets
                .get(i)
                .into_iter()
                .flatten()
                .filter(|d| d.class == class)
                .map(Det::new)
                .collect();
            gt_count += g.len();
            det_count += d.len();
            evals.extend(evaluate_image(&g, &d, &thresholds));
        }
        let Some(table) = accumulate(&evals, &recall_points) else {
            continue;
        };
        let row = |t: Option<usize>| t.and_then(|t| mean(table[t].iter())).unwrap_or(-1.0);
        per_class.push(ClassAp {
            class,
            name: None,
            ap: mean(table.iter().flatten()).unwrap_or(-1.0),
            ap50: row(t50),
            ap75: row(t75),
            ground_truth: gt_count,
            detections: det_count,
        });
        tables.push(table);
    }
    let over = |t: Option<usize>| {
        t.and_then(|t| mean(tables.iter().flat_map(|table| table[t].iter())))
            .unwrap_or(-1.0)
    };
    Metrics {
        ap: mean(tables.iter().flatten().flatten()).unwrap_or(-1.0),
        ap50: over(t50),
        ap75: over(t75),
        per_class,
    }
}
