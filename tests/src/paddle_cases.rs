//! Running a Paddle model on a case of the model kits (`input_<feed>.npy` in, `ref_<fetch>.npy`
//! to compare with) and comparing as the kits' rules say: dense outputs closely, `[N,6]`
//! detection tables as sets, counts exactly, masks by differing pixels.

use crate::detections::{assert_same_detections, detections, iou};
use crate::{output, read_f32, read_numbers, rel_l2, temblor};
use std::path::{Path, PathBuf};

/// Runs `model` on every `input_<name>.npy` of `case`; returns the output directory.
pub fn run_case(model: &Path, case: &Path) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let mut cmd = temblor();
    cmd.arg("run").arg(model).arg("-o").arg(out.path());
    for entry in std::fs::read_dir(case).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(name) = file
            .strip_prefix("input_")
            .and_then(|f| f.strip_suffix(".npy"))
        {
            cmd.arg("--input").arg(format!("{name}={}", path.display()));
        }
    }
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "{}: run failed: {err}", model.display());
    out
}

/// The reference outputs of a case, `ref_<fetch>.npy`, with the file our run wrote for each.
pub fn refs(case: &Path, out: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut pairs: Vec<(PathBuf, PathBuf)> = std::fs::read_dir(case)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let file = path.file_name()?.to_string_lossy().into_owned();
            let name = file.strip_prefix("ref_")?.to_string();
            Some((path, out.join(name)))
        })
        .collect();
    pairs.sort();
    assert!(
        !pairs.is_empty(),
        "{}: no reference outputs",
        case.display()
    );
    pairs
}

pub fn assert_dense(ours: &Path, theirs: &Path) {
    let (shape, a) = read_f32(ours);
    let (ref_shape, b) = read_f32(theirs);
    assert_eq!(shape, ref_shape, "{}", theirs.display());
    let err = rel_l2(&a, &b);
    assert!(err < 1e-4, "{}: relative L2 {err:e}", theirs.display());
}

/// Compares every output of a detector: `[N,6]` detections as sets, per-image counts exactly,
/// and (Mask R-CNN) masks pixel by pixel for detections that sit at the same position.
pub fn assert_detector(model: &Path, case: &Path) {
    let out = run_case(model, case);
    assert_detector_outputs(out.path(), case);
}

/// [`assert_detector`]'s comparison of the outputs in `out` with `case`'s references.
pub fn assert_detector_outputs(out: &Path, case: &Path) {
    let pairs = refs(case, out);
    let (ours, theirs) = (detections(&pairs[0].1), detections(&pairs[0].0));
    let swapped = assert_same_detections(&ours, &theirs, &case.display().to_string());
    assert!(
        swapped <= 1,
        "{}: {swapped} ties swapped at the cut",
        case.display()
    );
    assert_eq!(
        read_numbers(&pairs[1].1),
        read_numbers(&pairs[1].0),
        "{}: detections per image",
        case.display()
    );
    if let Some((theirs_masks, ours_masks)) = pairs.get(2) {
        let (shape, a) = read_numbers(ours_masks);
        let (ref_shape, b) = read_numbers(theirs_masks);
        assert_eq!(shape, ref_shape);
        let per_mask = shape[1] * shape[2];
        let mut compared = 0;
        for (k, (d, t)) in ours.iter().zip(&theirs).enumerate() {
            if d[0] != t[0] || iou(d, t) < 0.99 {
                continue;
            }
            let (m, r) = (
                &a[k * per_mask..][..per_mask],
                &b[k * per_mask..][..per_mask],
            );
            let differ = m.iter().zip(r).filter(|(x, y)| x != y).count();
            let area = r.iter().filter(|&&v| v != 0.0).count().max(1);
            // Binarized at 0.5: only pixels whose probability sits at the threshold may flip.
            assert!(
                differ * 100 <= area,
                "mask {k}: {differ} of {area} pixels differ"
            );
            compared += 1;
        }
        assert!(
            compared * 10 >= ours.len() * 9,
            "only {compared} masks compared"
        );
    }
}

/// The PIR kit's rule for dense outputs: the largest absolute difference at most `atol` (so
/// integer outputs must be equal).
pub fn assert_within(ours: &Path, theirs: &Path, atol: f64) {
    let (shape, a) = read_numbers(ours);
    let (ref_shape, b) = read_numbers(theirs);
    assert_eq!(shape, ref_shape, "{}", theirs.display());
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= atol,
        "{}: largest difference {worst:e} > {atol:e}",
        theirs.display()
    );
}
