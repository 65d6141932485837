//! Comparing detections after NMS. Runtimes order NMS output differently, so detections agree
//! as sets: the same count, and each reference detection paired with one of ours of the same
//! class, IoU at least 0.99 and score within 1e-4.
//!
//! One exception is inherent to any keep_top_k cut: candidates whose scores lie within 1e-4 of
//! the lowest kept score are ties that a last-bit difference in fp32 summation order may swap
//! across the cut. Such reference detections may stay unpaired when the same number of ours at
//! the cut stay unpaired too, and the test says how many were.
//!
//! The other is a tie upstream of NMS: two candidates of one class whose scores agree to
//! [`TIE_TOL`] (Mask R-CNN's generated model scores two different proposals 0.0676792 and
//! 0.0676788; an AVX2 and an AVX-512 GEMM sum in different orders and keep different ones). A
//! reference detection with no box match is paired with an unpaired one of ours of its class and
//! score within that tolerance, counted as a swapped tie like those at the cut.

use crate::read_numbers;
use std::path::Path;

/// One row of multiclass NMS output: class, score, x1, y1, x2, y2.
pub type Detection = [f64; 6];

const SCORE_TOL: f64 = 1e-4;

/// Scores this close are equal up to fp32 summation order (a few units in the last place).
const TIE_TOL: f64 = 1e-6;

pub fn detections(path: &Path) -> Vec<Detection> {
    let (shape, v) = read_numbers(path);
    assert_eq!(shape.len(), 2, "{}: detections are [N, 6]", path.display());
    assert_eq!(shape[1], 6, "{}: detections are [N, 6]", path.display());
    v.chunks_exact(6)
        .map(|c| [c[0], c[1], c[2], c[3], c[4], c[5]])
        .collect()
}

pub fn iou(a: &Detection, b: &Detection) -> f64 {
    let area = |d: &Detection| (d[4] - d[2]).max(0.0) * (d[5] - d[3]).max(0.0);
    let w = (a[4].min(b[4]) - a[2].max(b[2])).max(0.0);
    let h = (a[5].min(b[5]) - a[3].max(b[3])).max(0.0);
    let inter = w * h;
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        1.0
    }
}

/// Asserts the two sets agree; returns how many swapped ties at the keep_top_k cut were allowed.
pub fn assert_same_detections(ours: &[Detection], theirs: &[Detection], what: &str) -> usize {
    assert_eq!(ours.len(), theirs.len(), "{what}: detection counts differ");
    let cut = theirs.iter().map(|d| d[1]).fold(f64::INFINITY, f64::min);
    let at_cut = |d: &Detection| (d[1] - cut).abs() < SCORE_TOL;
    let mut used = vec![false; ours.len()];
    let mut unmatched = Vec::new();
    for t in theirs {
        let best = (0..ours.len())
            .filter(|&i| !used[i] && ours[i][0] == t[0] && (ours[i][1] - t[1]).abs() < SCORE_TOL)
            .max_by(|&i, &j| iou(&ours[i], t).total_cmp(&iou(&ours[j], t)));
        match best.filter(|&i| iou(&ours[i], t) >= 0.99) {
            Some(i) => used[i] = true,
            None => unmatched.push(t),
        }
    }
    // Ties are paired only after every box match is made, so none takes a detection of ours
    // that a later reference detection matches by position.
    let mut unpaired = 0;
    for t in unmatched {
        let tie = (0..ours.len())
            .find(|&i| !used[i] && ours[i][0] == t[0] && (ours[i][1] - t[1]).abs() < TIE_TOL);
        match tie {
            _ if at_cut(t) => unpaired += 1,
            Some(i) => {
                used[i] = true;
                unpaired += 1;
            }
            None => panic!("{what}: no match for reference detection {t:?}"),
        }
    }
    for (d, _) in ours.iter().zip(&used).filter(|(_, u)| !**u) {
        assert!(
            at_cut(d),
            "{what}: our detection {d:?} has no reference counterpart and is not a tie at the cut {cut}"
        );
    }
    unpaired
}

/// Asserts that two output folders of the PicoDet twin hold the same multiclass NMS results:
/// equal counts, and the same detections with no ties swapped at the keep_top_k cut.
pub fn assert_same_nms_outputs(ours: &Path, theirs: &Path, what: &str) {
    let count = "multiclass_nms3_0.tmp_2.npy";
    assert_eq!(
        read_numbers(&ours.join(count)).1,
        read_numbers(&theirs.join(count)).1,
        "{what}: detection counts differ"
    );
    let boxes = "multiclass_nms3_0.tmp_0.npy";
    let swapped = assert_same_detections(
        &detections(&ours.join(boxes)),
        &detections(&theirs.join(boxes)),
        what,
    );
    assert_eq!(
        swapped, 0,
        "{what}: ties at the keep_top_k cut were swapped"
    );
}
