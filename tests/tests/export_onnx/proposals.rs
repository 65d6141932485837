//! generate_proposals_v2 and distribute_fpn_proposals as standard ONNX: the two-stage
//! detectors' RPN and FPN routing export with no plugin, and onnxruntime runs them to Paddle's
//! stored answers and to `temblor run`'s.

use super::library::{exports_run_in_onnxruntime, kit};
use super::onnx_export::{check_exports, export, run_both};
use temblor_tests::paddle_cases::assert_detector_outputs;
use temblor_tests::{output, temblor};

#[test]
fn faster_rcnn_proposals_run_in_onnxruntime() {
    let (model, case) = kit("faster_rcnn_r18_fpn");
    exports_run_in_onnxruntime(&model, &case, &[]);
}

/// Mask R-CNN also routes its final detections to FPN levels for the mask head (a second
/// distribute_fpn_proposals) and gathers with int32 indices. Its multiclass_nms3 keeps the top
/// 10, and the 10th and 11th candidates (class 18) score 1.2e-7 apart, which float noise
/// upstream of every proposal op (convolutions, roi_align) orders either way; masks are
/// binarized at 0.5, where noise flips pixels. So onnxruntime is held to the kit's rule (one tie
/// swapped at the cut, masks by pixels) against Paddle's answers and against temblor's alike,
/// not to equality with temblor as [`exports_run_in_onnxruntime`] asks.
#[test]
fn mask_rcnn_proposals_run_in_onnxruntime() {
    let (model, case) = kit("mask_rcnn_r18_fpn");
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("model.temblor");
    let (code, _, err) = output(temblor().arg("compile").arg(&model).arg("-o").arg(&pkg));
    assert_eq!(code, 0, "compile failed: {err}");
    let (_, err) = export(&pkg);
    assert!(!err.contains("warning"), "export warned: {err}");
    let (trt, ort) = check_exports(&pkg);
    for s in [&trt, &ort] {
        assert_eq!(s["plugins"].as_array().map(Vec::len), Some(0), "{s}");
    }
    let (code, out, err) = output(temblor().arg("check-trt").arg(&pkg));
    assert_eq!(code, 0, "check-trt: {out}{err}");
    let inputs: Vec<(&str, _)> = ["im_shape", "image", "scale_factor"]
        .into_iter()
        .map(|name| (name, case.join(format!("input_{name}.npy"))))
        .collect();
    let (ours, theirs) = run_both(&pkg, &inputs, &dir.path().join("runs"));
    assert_detector_outputs(&theirs, &case);
    assert_detector_outputs(&ours, &case);
    let temblor_case = dir.path().join("temblor_case");
    std::fs::create_dir(&temblor_case).unwrap();
    for entry in std::fs::read_dir(&ours).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(&path, temblor_case.join(format!("ref_{file}"))).unwrap();
    }
    assert_detector_outputs(&theirs, &temblor_case);
}
