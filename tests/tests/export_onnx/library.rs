//! ops_lib ops written as standard ONNX (issue 19): a Paddle detector's `compile.onnx` holds
//! no plugin node, so TensorRT needs no plugin library, and onnxruntime runs its twin
//! `compile.ort.onnx` to Paddle's stored answers and to `temblor run`'s, detection tables
//! compared as sets.

use super::onnx_export::{check_exports, export, run_both};
use std::path::{Path, PathBuf};
use temblor_tests::detections::{assert_same_detections, detections};
use temblor_tests::paddle_cases::assert_detector_outputs;
use temblor_tests::{output, read_numbers, real_model, shared, temblor};

/// Compiles and exports `model`; onnxruntime and temblor run `case`'s inputs; onnxruntime's
/// answers are checked against the case's references and temblor's.
fn exports_run_in_onnxruntime(model: &Path, case: &Path, args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("model.temblor");
    let mut cmd = temblor();
    cmd.arg("compile").arg(model).arg("-o").arg(&pkg).args(args);
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "compile failed: {err}");
    let (out, err) = export(&pkg);
    assert!(!err.contains("warning"), "export warned: {err}");
    assert!(
        out.contains("trtexec --onnx=") && !out.contains("--staticPlugins"),
        "the trtexec command should load no plugin library: {out}"
    );
    let (trt, ort) = check_exports(&pkg);
    for (what, s) in [("compile.onnx", &trt), ("compile.ort.onnx", &ort)] {
        assert_eq!(
            s["plugins"].as_array().map(Vec::len),
            Some(0),
            "{what}: {s}"
        );
    }
    let inputs: Vec<(String, PathBuf)> = std::fs::read_dir(case)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let file = path.file_name()?.to_str()?.to_string();
            let name = file
                .strip_prefix("input_")?
                .strip_suffix(".npy")?
                .to_string();
            Some((name, path))
        })
        .collect();
    let inputs: Vec<(&str, PathBuf)> = inputs
        .iter()
        .map(|(n, p)| (n.as_str(), p.clone()))
        .collect();
    let (ours, theirs) = run_both(&pkg, &inputs, &dir.path().join("runs"));
    assert_detector_outputs(&theirs, case);
    for entry in std::fs::read_dir(&theirs).unwrap() {
        let path = entry.unwrap().path();
        let mine = ours.join(path.file_name().unwrap());
        let (shape, _) = read_numbers(&path);
        if shape.len() == 2 && shape[1] == 6 {
            let swapped =
                assert_same_detections(&detections(&mine), &detections(&path), "temblor vs ORT");
            assert_eq!(swapped, 0, "{}: ties swapped", path.display());
        } else {
            assert_eq!(
                read_numbers(&mine),
                read_numbers(&path),
                "{}",
                path.display()
            );
        }
    }
}

pub(super) fn kit(name: &str) -> (PathBuf, PathBuf) {
    let dir = shared().join("models/paddle").join(name);
    (dir.join("model.pdmodel"), dir)
}

#[test]
fn yolov3_dcn_yolo_box_and_nms_run_in_onnxruntime() {
    let (model, case) = kit("yolov3_r18vd_dcn");
    exports_run_in_onnxruntime(&model, &case, &[]);
}

#[test]
fn retinanet_nms_runs_in_onnxruntime() {
    let (model, case) = kit("retinanet_r18_fpn");
    exports_run_in_onnxruntime(&model, &case, &[]);
}

#[test]
fn picodet_paddle_nms_runs_in_onnxruntime() {
    let model = real_model("picodet_coco_paddle", "model.pdmodel");
    for image in ["astronaut", "coffee"] {
        let case = shared().join("models/real/picodet_coco_paddle").join(image);
        exports_run_in_onnxruntime(&model, &case, &[]);
    }
}
