//! Precision plans end to end: fp16, int8 and auto on the real PicoDet COCO detector (ONNX twin)
//! with the shared photos as calibration images, fp16 on PP-OCRv4 det, `precision.yml`
//! re-applied with `--plan`, and plans that cannot be applied.

use std::path::{Path, PathBuf};
use temblor_tests::detections::{detections, iou, Detection};

use temblor_tests::{output, read_f32, real_model, rel_l2, shared, temblor};

fn picodet() -> PathBuf {
    shared().join("models/real/picodet_coco_onnx/model.onnx")
}

fn picodet_preprocess() -> PathBuf {
    real_model("picodet_coco_paddle", "infer_cfg.yml")
}

/// `temblor compile` with `args`; the parsed report.json.
fn compile(model: &Path, out: &Path, args: &[&str]) -> serde_json::Value {
    let mut cmd = temblor();
    cmd.arg("compile").arg(model).arg("-o").arg(out).args(args);
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "compile {args:?} failed: {err}");
    serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
}

fn calibrated(model: &Path, out: &Path, precision: &str) -> serde_json::Value {
    calibrated_with(model, out, precision, &[])
}

/// [`calibrated`] with more compile flags.
fn calibrated_with(model: &Path, out: &Path, precision: &str, extra: &[&str]) -> serde_json::Value {
    let images = shared().join("images");
    let preprocess = picodet_preprocess();
    let mut flags = vec![
        "--precision",
        precision,
        "--calib",
        images.to_str().unwrap(),
        "--preprocess",
        preprocess.to_str().unwrap(),
        "--no-measure",
    ];
    flags.extend(extra);
    compile(model, out, &flags)
}

/// Runs a package on stored inputs; the output directory.
fn run(pkg: &Path, inputs: &[(&str, PathBuf)], out: &Path) -> PathBuf {
    let mut cmd = temblor();
    cmd.arg("run").arg(pkg).arg("-o").arg(out);
    for (name, path) in inputs {
        cmd.arg("--input").arg(format!("{name}={}", path.display()));
    }
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "run failed: {err}");
    out.to_path_buf()
}

fn picodet_case(image: &str) -> Vec<(&'static str, PathBuf)> {
    let case = shared().join("models/real/picodet_coco_onnx").join(image);
    vec![
        ("image", case.join("input_image.npy")),
        ("scale_factor", case.join("input_scale_factor.npy")),
    ]
}

/// Every fp32 detection the model stands behind (score >= 0.3) has a partner of the same class
/// with IoU >= 0.95 among the other plan's detections.
fn assert_boxes_kept(fp32: &[Detection], other: &[Detection], what: &str) {
    let confident: Vec<&Detection> = fp32.iter().filter(|d| d[1] >= 0.3).collect();
    assert!(!confident.is_empty(), "{what}: no confident fp32 detection");
    for d in confident {
        let best = other
            .iter()
            .filter(|o| o[0] == d[0])
            .map(|o| iou(d, o))
            .fold(0.0, f64::max);
        assert!(
            best >= 0.95,
            "{what}: fp32 detection {d:?} has no partner (best IoU {best:.3})"
        );
    }
}

#[test]
fn picodet_fp16_keeps_the_fp32_detections() {
    let dir = tempfile::tempdir().unwrap();
    let fp32 = dir.path().join("fp32.temblor");
    let fp16 = dir.path().join("fp16.temblor");
    compile(&picodet(), &fp32, &["--no-measure"]);
    let report = calibrated(&picodet(), &fp16, "fp16");
    let p = &report["precision"];
    assert_eq!(p["mode"], "fp16");
    assert!(p["fp16_flop_share"].as_f64().unwrap() > 0.9, "{p}");
    let view = std::fs::read_to_string(fp16.join("compile.prototxt")).unwrap();
    assert!(view.contains("\"Cast\""), "no cast into the fp16 region");
    for image in ["astronaut", "chelsea", "coffee"] {
        let inputs = picodet_case(image);
        let a = run(&fp32, &inputs, &dir.path().join(format!("{image}_32")));
        let b = run(&fp16, &inputs, &dir.path().join(format!("{image}_16")));
        let boxes = "multiclass_nms3_0.tmp_0.npy";
        assert_boxes_kept(
            &detections(&a.join(boxes)),
            &detections(&b.join(boxes)),
            image,
        );
    }
}

#[test]
fn picodet_int8_and_auto_report_agreement_and_int8_share() {
    let dir = tempfile::tempdir().unwrap();
    let int8 = calibrated(&picodet(), &dir.path().join("int8.temblor"), "int8");
    let p = &int8["precision"];
    assert_eq!(p["mode"], "int8");
    assert!(p["int8_flop_share"].as_f64().unwrap() > 0.5, "{p}");
    assert!(p["agreement_ap"].as_f64().is_some(), "{p}");

    let auto_pkg = dir.path().join("auto.temblor");
    let auto = calibrated(&picodet(), &auto_pkg, "auto");
    let p = &auto["precision"];
    assert_eq!(p["mode"], "auto");
    let ap = p["agreement_ap"].as_f64().unwrap();
    let share = p["int8_flop_share"].as_f64().unwrap();
    assert!(
        ap >= 0.95 && share >= 0.5,
        "auto: agreement {ap}, int8 share {share}"
    );
    assert!(
        p["layers"].as_array().is_some_and(|l| !l.is_empty()),
        "auto reports each layer's sensitivity"
    );

    // Over an fp32 base, for the CPU runtime: int8 layers and fp32, no fp16, same budget.
    let cpu_pkg = dir.path().join("auto_cpu.temblor");
    let cpu = calibrated_with(&picodet(), &cpu_pkg, "auto", &["--auto-base", "fp32"]);
    let p = &cpu["precision"];
    let ap = p["agreement_ap"].as_f64().unwrap();
    let share = p["int8_flop_share"].as_f64().unwrap();
    assert_eq!(p["fp16_flop_share"].as_f64(), Some(0.0), "{p}");
    assert!(
        ap >= 0.95 && share >= 0.5,
        "auto over fp32: agreement {ap}, int8 share {share}"
    );

    // Over a bf16 base: bf16 wherever a layer can run in half, int8 on top, same budget.
    let bf16_pkg = dir.path().join("auto_bf16.temblor");
    let bf16 = calibrated_with(&picodet(), &bf16_pkg, "auto", &["--auto-base", "bf16"]);
    let p = &bf16["precision"];
    let ap = p["agreement_ap"].as_f64().unwrap();
    let (half, int8) = (
        p["bf16_flop_share"].as_f64().unwrap(),
        p["int8_flop_share"].as_f64().unwrap(),
    );
    assert_eq!(p["fp16_flop_share"].as_f64(), Some(0.0), "{p}");
    assert!(
        ap >= 0.95 && half > 0.0 && half + int8 > 0.9,
        "auto over bf16: agreement {ap}, bf16 share {half}, int8 share {int8}"
    );

    // The written plan, applied again, gives the same package outputs.
    let again = dir.path().join("again.temblor");
    let plan = auto_pkg.join("precision.yml");
    compile(
        &picodet(),
        &again,
        &["--plan", plan.to_str().unwrap(), "--no-measure"],
    );
    let inputs = picodet_case("chelsea");
    let a = run(&auto_pkg, &inputs, &dir.path().join("a"));
    let b = run(&again, &inputs, &dir.path().join("b"));
    let boxes = "multiclass_nms3_0.tmp_0.npy";
    assert_eq!(read_f32(&a.join(boxes)), read_f32(&b.join(boxes)));
}

#[test]
fn ppocr_det_fp16_stays_close_to_fp32() {
    let model = real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx");
    let dir = tempfile::tempdir().unwrap();
    let dims = "x:1x3x192x384";
    let fp32 = dir.path().join("fp32.temblor");
    let fp16 = dir.path().join("fp16.temblor");
    compile(&model, &fp32, &["--input", dims, "--no-measure"]);
    // Measured on two real pages: on random inputs the probability map is all near zero, in
    // fp16's subnormal range, where relative errors say nothing about the model.
    let calib = dir.path().join("pages");
    std::fs::create_dir_all(&calib).unwrap();
    for image in ["page.png", "text.png"] {
        std::fs::copy(shared().join("images").join(image), calib.join(image)).unwrap();
    }
    let preprocess = dir.path().join("ppocr.yml");
    std::fs::write(
        &preprocess,
        "resize: {size: [192, 384]}\nmean: [0.5, 0.5, 0.5]\nstd: [0.5, 0.5, 0.5]\nchannels: bgr\n",
    )
    .unwrap();
    let report = compile(
        &model,
        &fp16,
        &[
            "--input",
            dims,
            "--precision",
            "fp16",
            "--calib",
            calib.to_str().unwrap(),
            "--preprocess",
            preprocess.to_str().unwrap(),
            "--no-measure",
        ],
    );
    let e = report["precision"]["output_rel_l2"].as_f64().unwrap();
    assert!(e > 0.0 && e < 1e-2, "fp16 relative L2 {e}");
    assert!(report["precision"]["fp16_flop_share"].as_f64().unwrap() > 0.9);
    let plan = std::fs::read_to_string(fp16.join("precision.yml")).unwrap();
    assert!(plan.contains("mode: fp16"), "{plan}");
    assert!(plan.contains("precision: fp16"), "{plan}");
    // The package computes what the report measured: run both on a real page.
    let x = shared().join("models/real/ppocrv4_det_onnx/page/input_x.npy");
    let a = run(&fp32, &[("x", x.clone())], &dir.path().join("a"));
    let b = run(&fp16, &[("x", x)], &dir.path().join("b"));
    let name = std::fs::read_dir(&a)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let (_, va) = read_f32(&a.join(&name));
    let (_, vb) = read_f32(&b.join(&name));
    let e = rel_l2(&vb, &va);
    assert!(e > 0.0 && e < 1e-2, "fp16 package relative L2 {e}");
}

#[test]
fn plans_that_cannot_apply_are_usage_errors() {
    let model = real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx");
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "mode: manual\nlayers:\n- layer: no_such_layer\n  precision: fp16\n",
            "no layer 'no_such_layer'",
        ),
        ("mode: manual\nlayers: 3\n", "not a precision plan"),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let plan = dir.path().join(format!("plan{i}.yml"));
        std::fs::write(&plan, text).unwrap();
        let out = dir.path().join(format!("out{i}"));
        let mut cmd = temblor();
        cmd.arg("compile")
            .arg(&model)
            .args(["--input", "x:1x3x160x160", "--no-measure", "--plan"])
            .arg(&plan)
            .arg("-o")
            .arg(&out);
        let (code, _, err) = output(&mut cmd);
        assert_eq!(code, 2, "{text}: {err}");
        assert!(err.contains(expected), "{text}: {err}");
        assert!(!out.exists(), "a failed compile left {}", out.display());
    }
    let mut cmd = temblor();
    cmd.arg("compile")
        .arg(&model)
        .args(["--input", "x:1x3x160x160", "--precision", "int8"])
        .arg("-o")
        .arg(dir.path().join("int8"));
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--calib"), "{err}");
}
