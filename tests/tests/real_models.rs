//! The two real trained models, end to end: preprocess a real photo, compile, run the package on
//! the CPU runtime, and compare every output with onnxruntime on the same input.

use std::path::{Path, PathBuf};
use temblor_tests::{
    detections::assert_same_nms_outputs, ort_reference, output, real_model, rel_l2, run_both,
    shared, temblor,
};

/// `temblor preprocess` of a shared image into `dir/<name>.npy`.
fn preprocess(image: &str, size: &str, extra: &[&str], dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(format!("{name}.npy"));
    let mut cmd = temblor();
    cmd.arg("preprocess")
        .arg(shared().join("images").join(image))
        .arg("-o")
        .arg(&out)
        .args(["--size", size])
        .args(extra);
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "preprocess failed: {err}");
    out
}

fn compile(model: &Path, out: &Path, dims: &[&str]) -> serde_json::Value {
    let mut cmd = temblor();
    cmd.arg("compile").arg(model).arg("-o").arg(out);
    for d in dims {
        cmd.args(["--input", d]);
    }
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "compile failed: {err}");
    for view in [
        "parse.prototxt",
        "optimize.prototxt",
        "compile.prototxt",
        "report.json",
    ] {
        assert!(out.join(view).is_file(), "{view} not written");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let layers = |v: &str| report["views"][v]["layers"].as_u64().unwrap();
    assert!(
        layers("optimize") < layers("parse"),
        "optimize did not remove layers: {report}"
    );
    let passes: Vec<&str> = report["passes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pass"].as_str().unwrap())
        .collect();
    assert!(passes.contains(&"fold_batchnorm") && passes.contains(&"dead_nodes"));
    report
}

/// Runs `target` (package or model) with temblor and `model` with onnxruntime on the same
/// inputs; every output must agree to a relative L2 error below 1e-4.
fn assert_matches_onnxruntime(target: &Path, model: &Path, inputs: &[(&str, PathBuf)], dir: &Path) {
    for c in run_both(target, model, inputs, dir) {
        let err = rel_l2(&c.ours, &c.theirs);
        println!("{}: relative L2 {err:.3e}", c.path.display());
        assert!(
            err < 1e-4,
            "{}: relative L2 {err:e} >= 1e-4",
            c.path.display()
        );
    }
}

#[test]
fn ppocrv4_det_compiles_and_matches_onnxruntime() {
    let model = real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx");
    let dir = tempfile::tempdir().unwrap();
    let norm = ["--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5", "--bgr"];
    let x = preprocess("page.png", "192x384", &norm, dir.path(), "x");
    let pkg = dir.path().join("det.temblor");
    compile(&model, &pkg, &["x:1x3x192x384"]);
    assert_matches_onnxruntime(&pkg, &model, &[("x", x)], dir.path());
}

#[test]
fn ppocrv4_det_runs_with_dynamic_dims_from_the_model_file() {
    // No --input: the model's N, H, W stay symbolic and the runtime takes the stored input's.
    let model = real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx");
    let dir = tempfile::tempdir().unwrap();
    let x = shared().join("models/real/ppocrv4_det_onnx/text_right_2x/input_x.npy");
    assert_matches_onnxruntime(&model, &model, &[("x", x)], dir.path());
}

#[test]
fn picodet_layout_compiles_and_matches_onnxruntime() {
    let model = real_model("picodet_layout_onnx", "layout_cdla.onnx");
    let dir = tempfile::tempdir().unwrap();
    let image = preprocess("page.png", "800x608", &[], dir.path(), "image");
    let pkg = dir.path().join("layout.temblor");
    compile(&model, &pkg, &["image:1x3x800x608"]);
    assert_matches_onnxruntime(&pkg, &model, &[("image", image)], dir.path());
}

#[test]
fn ppocrv4_rec_matches_onnxruntime() {
    let model = real_model("ppocrv4_rec_onnx", "ch_PP-OCRv4_rec_infer.onnx");
    let dir = tempfile::tempdir().unwrap();
    let x = shared().join("models/real/ppocrv4_rec_onnx/page_line0/input_x.npy");
    assert_matches_onnxruntime(&model, &model, &[("x", x)], dir.path());
}

#[test]
fn ppocr_cls_matches_onnxruntime() {
    let model = real_model("ppocr_cls_v2_onnx", "ch_ppocr_mobile_v2.0_cls_infer.onnx");
    let dir = tempfile::tempdir().unwrap();
    let x = shared().join("models/real/ppocr_cls_v2_onnx/page_line0/input_x.npy");
    assert_matches_onnxruntime(&model, &model, &[("x", x)], dir.path());
}

#[test]
fn picodet_coco_twin_detections_match_onnxruntime() {
    let model = shared().join("models/real/picodet_coco_onnx/model.onnx");
    for image in ["astronaut", "chelsea", "coffee"] {
        let case = shared().join("models/real/picodet_coco_onnx").join(image);
        let dir = tempfile::tempdir().unwrap();
        let inputs = [
            ("image", case.join("input_image.npy")),
            ("scale_factor", case.join("input_scale_factor.npy")),
        ];
        let (ours, theirs) = (dir.path().join("temblor_out"), dir.path().join("ort_out"));
        std::fs::create_dir_all(&theirs).unwrap();
        let mut cmd = temblor();
        cmd.arg("run").arg(&model).arg("-o").arg(&ours);
        for (name, path) in &inputs {
            cmd.arg("--input").arg(format!("{name}={}", path.display()));
        }
        let (code, _, err) = output(&mut cmd);
        assert_eq!(code, 0, "run failed: {err}");
        ort_reference(&model, &inputs, &theirs);
        assert_same_nms_outputs(&ours, &theirs, image);
    }
}
