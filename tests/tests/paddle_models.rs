//! Paddle inference models imported directly and run on the CPU runtime, against Paddle's own
//! outputs stored beside each model (../shared/models): the generated PaddleDetection
//! architectures (deformable conv, yolo_box, matrix NMS, RetinaNet's while loop, proposals and
//! roi_align, Mask R-CNN's mask paste) and the real trained models (PP-OCRv4, PicoDet).

use std::path::{Path, PathBuf};
use temblor_tests::paddle_cases::{assert_dense, assert_detector, refs, run_case};
use temblor_tests::{output, read_f32, real_model, rel_l2, shared, temblor};

fn generated(name: &str) -> (PathBuf, PathBuf) {
    let dir = shared().join("models/paddle").join(name);
    (dir.join("model.pdmodel"), dir)
}

#[test]
fn paddle_basic_matches_paddle() {
    let (model, case) = generated("paddle_basic");
    let out = run_case(&model, &case);
    for (theirs, ours) in refs(&case, out.path()) {
        assert_dense(&ours, &theirs);
    }
}

#[test]
fn yolov3_dcn_matches_paddle() {
    let (model, case) = generated("yolov3_r18vd_dcn");
    assert_detector(&model, &case);
}

#[test]
fn ppyolo_matrix_nms_matches_paddle() {
    let (model, case) = generated("ppyolo_r18vd_dcn");
    assert_detector(&model, &case);
}

#[test]
fn retinanet_while_loop_matches_paddle() {
    let (model, case) = generated("retinanet_r18_fpn");
    assert_detector(&model, &case);
}

#[test]
fn faster_rcnn_matches_paddle() {
    let (model, case) = generated("faster_rcnn_r18_fpn");
    assert_detector(&model, &case);
}

#[test]
fn mask_rcnn_matches_paddle() {
    let (model, case) = generated("mask_rcnn_r18_fpn");
    assert_detector(&model, &case);
}

fn real_cases(name: &str) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(shared().join("models/real").join(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

#[test]
fn picodet_coco_matches_paddle_on_real_photos() {
    let model = real_model("picodet_coco_paddle", "model.pdmodel");
    for case in real_cases("picodet_coco_paddle") {
        assert_detector(&model, &case);
    }
}

#[test]
fn ppocr_models_match_paddle() {
    for name in [
        "ppocrv4_det_paddle",
        "ppocrv4_rec_paddle",
        "ppocr_cls_v2_paddle",
    ] {
        let model = real_model(name, "inference.pdmodel");
        for case in real_cases(name) {
            let out = run_case(&model, &case);
            for (theirs, ours) in refs(&case, out.path()) {
                assert_dense(&ours, &theirs);
            }
        }
    }
}

/// The Paddle and ONNX exports of PP-OCRv4 det hold the same weights: imported by the two
/// frontends they compute the same function and, once optimized, have the same op counts.
#[test]
fn ppocrv4_det_paddle_and_onnx_twins_agree() {
    let paddle = real_model("ppocrv4_det_paddle", "inference.pdmodel");
    let onnx = real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx");
    let case = shared().join("models/real/ppocrv4_det_paddle/page");
    let a = run_case(&paddle, &case);
    let b = run_case(&onnx, &case);
    let (_, x) = read_f32(&a.path().join("sigmoid_0.tmp_0.npy"));
    let (_, y) = read_f32(&b.path().join("sigmoid_0.tmp_0.npy"));
    let err = rel_l2(&x, &y);
    assert!(err < 1e-5, "paddle vs onnx import: relative L2 {err:e}");

    let counts = |model: &Path| {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("pkg");
        let (code, _, err) = output(temblor().arg("compile").arg(model).arg("-o").arg(&pkg));
        assert_eq!(code, 0, "{err}");
        let (code, text, err) = output(temblor().arg("inspect").arg(&pkg));
        assert_eq!(code, 0, "{err}");
        text.split_once("layers:")
            .map(|(_, t)| t.to_string())
            .unwrap()
    };
    assert_eq!(counts(&paddle), counts(&onnx));
}

/// The full-size headline model comes as a graph only: it compiles to the three views with a
/// warning, its parse view has shapes at 608x608, and run refuses it.
#[test]
fn graph_only_yolov3_r50vd_dcn_compiles_and_run_refuses() {
    let (model, _) = generated("yolov3_r50vd_dcn");
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("pkg");
    let (code, _, err) = output(temblor().arg("compile").arg(&model).arg("-o").arg(&pkg));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning:") && err.contains("shape alone"),
        "{err}"
    );
    let parse = std::fs::read_to_string(pkg.join("parse.prototxt")).unwrap();
    assert!(
        parse.contains("dim: 608"),
        "parse view lacks 608x608 shapes"
    );
    assert!(parse.matches("layer {").count() > 250);
    let input = shared().join("models/paddle/yolov3_r18vd_dcn/input_im_shape.npy");
    let (code, _, err) = output(
        temblor()
            .arg("run")
            .arg(&pkg)
            .arg("--input")
            .arg(format!("im_shape={}", input.display())),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("without its parameters"), "{err}");
}
