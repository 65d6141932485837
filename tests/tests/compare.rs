//! `temblor compare`: the stages of a real model agree layer by layer; a layer broken on purpose
//! (its weights scaled, or forced to int8 with a saturating scale) is named as the first and the
//! worst; graphs of different models are refused.

use serde_json::Value;
use std::path::{Path, PathBuf};
use temblor_tests::{output, real_model, temblor};

const DIMS: &str = "x:1x3x160x160";

/// A mid-network convolution of PP-OCRv4 det as the optimize view names it: its hardswish is
/// fused into it, and fifty layers follow it.
const BROKEN_CONV: &str = "p2o.Conv.20";

fn det() -> PathBuf {
    real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx")
}

/// Runs `temblor compare ARGS --json`: the exit code and the report.
fn compare(args: &[&str]) -> (i32, Value, String) {
    let (code, stdout, err) = output(temblor().arg("compare").args(args).arg("--json"));
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("compare printed no JSON ({e}): {stdout}\n{err}"));
    (code, report, err)
}

fn compile(model: &Path, out: &Path, extra: &[&str]) {
    let (code, _, err) = output(
        temblor()
            .arg("compile")
            .arg(model)
            .args(["--input", DIMS, "--no-verify", "-o"])
            .arg(out)
            .args(extra),
    );
    assert_eq!(code, 0, "compile failed: {err}");
}

fn rel_l2(pair: &Value) -> f64 {
    pair["rel_l2"].as_f64().unwrap_or(f64::NAN)
}

/// Parse against optimize: nearly every optimized layer finds its unfused counterpart, and none
/// differs by more than rounding, in either mode.
#[test]
fn parse_and_optimize_agree_layer_by_layer() {
    let model = det();
    let model = model.to_str().unwrap();
    for mode in ["cumulative", "isolated"] {
        let (code, r, err) = compare(&[model, "--input", DIMS, "--mode", mode]);
        assert_eq!(code, 0, "{mode}: {err}");
        let matched = r["matched"].as_u64().unwrap();
        let layers_b = r["layers_b"].as_u64().unwrap();
        assert!(
            matched * 10 >= layers_b * 9 && matched >= 100,
            "{mode}: {matched} of {layers_b} optimized layers matched"
        );
        assert!(r["first"].is_null(), "{mode}: {}", r["first"]);
        let pairs = r["pairs"].as_array().unwrap();
        assert_eq!(pairs.len() as u64, matched);
        for p in pairs {
            assert_eq!(p["shape"], p["reference_shape"], "{p}");
            assert!(rel_l2(p) <= 1e-4, "{mode}: {p}");
            assert!(p["cosine"].as_f64().unwrap() > 0.9999, "{mode}: {p}");
        }
        // A fused conv (conv, batch norm and hardswish in one node) meets the unfused graph's
        // hardswish output.
        let fused = pairs
            .iter()
            .find(|p| p["layer"] == BROKEN_CONV)
            .expect("the fused conv is matched");
        assert_ne!(fused["reference_layer"], BROKEN_CONV, "{fused}");
    }
}

/// The weights of one f32 layer inside a package.
fn weight_range(package: &Path, layer: &str) -> (usize, usize) {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(package.join("package.json")).unwrap()).unwrap();
    let nodes = manifest["nodes"].as_array().unwrap();
    let conv = nodes.iter().find(|n| n["name"] == layer).expect(layer);
    let producer = conv["inputs"][1][0].as_u64().unwrap() as usize;
    let weight = nodes[producer]["op"]["constant"]["weight"]
        .as_u64()
        .unwrap() as usize;
    let doc = &manifest["weights"][weight];
    assert_eq!(doc["dtype"], "f32", "{doc}");
    (
        doc["offset"].as_u64().unwrap() as usize,
        doc["len"].as_u64().unwrap() as usize,
    )
}

/// Two packages of one model, one with a conv's weights scaled by 1.5: both modes name that conv
/// first (every layer before it is bit-identical), isolated mode also names it worst, and the
/// command exits 1.
#[test]
fn a_conv_with_scaled_weights_is_first_and_worst() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = (dir.path().join("good"), dir.path().join("bad"));
    compile(&det(), &good, &[]);
    compile(&det(), &bad, &[]);
    let (offset, len) = weight_range(&bad, BROKEN_CONV);
    let mut blob = std::fs::read(bad.join("weights.bin")).unwrap();
    for w in blob[offset..offset + len].chunks_exact_mut(4) {
        let x = f32::from_le_bytes(w.try_into().unwrap()) * 1.5;
        w.copy_from_slice(&x.to_le_bytes());
    }
    std::fs::write(bad.join("weights.bin"), blob).unwrap();

    let (good, bad) = (good.to_str().unwrap(), bad.to_str().unwrap());
    for mode in ["cumulative", "isolated"] {
        // The edit is deliberate, so the package's hashes are not checked.
        let (code, r, err) = compare(&[
            good,
            bad,
            "--mode",
            mode,
            "--top",
            "3",
            "--no-verify-hashes",
        ]);
        assert_eq!(code, 1, "{mode}: {err}");
        assert!(err.contains(BROKEN_CONV), "{mode}: {err}");
        assert_eq!(r["first"]["layer"], BROKEN_CONV, "{mode}: {}", r["first"]);
        let pairs = r["pairs"].as_array().unwrap();
        let at = pairs
            .iter()
            .position(|p| p["layer"] == BROKEN_CONV)
            .unwrap();
        assert!(pairs[..at].iter().all(|p| rel_l2(p) == 0.0), "{mode}");
        assert_eq!(r["worst"].as_array().unwrap().len(), 3);
        if mode == "isolated" {
            assert_eq!(r["worst"][0]["layer"], BROKEN_CONV, "{}", r["worst"]);
            assert!(rel_l2(&r["worst"][1]) < 1e-4, "{}", r["worst"]);
        }
    }
}

/// The check: one conv forced to int8 with an input scale that saturates it is the first
/// and the worst layer of the isolated comparison against the fp32 package.
#[test]
fn a_conv_forced_to_int8_with_a_wrong_scale_is_first_and_worst() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("broken.yml");
    std::fs::write(
        &plan,
        format!(
            "mode: manual\nlayers:\n- layer: {BROKEN_CONV}\n  precision: int8\n  \
             input_scale: 0.0001\n  why: \"a scale 100 times too small: saturates\"\n"
        ),
    )
    .unwrap();
    let (fp32, broken) = (dir.path().join("fp32"), dir.path().join("broken"));
    compile(&det(), &fp32, &[]);
    compile(&det(), &broken, &["--plan", plan.to_str().unwrap()]);

    let (code, r, err) = compare(&[
        fp32.to_str().unwrap(),
        broken.to_str().unwrap(),
        "--mode",
        "isolated",
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(r["first"]["layer"], BROKEN_CONV, "{}", r["first"]);
    assert_eq!(r["first"]["precision"], "int8", "{}", r["first"]);
    assert_eq!(r["worst"][0]["layer"], BROKEN_CONV, "{}", r["worst"]);
    // The quantize/dequantize nodes the plan inserted are not layers of their own.
    let pairs = r["pairs"].as_array().unwrap();
    assert!(pairs.iter().all(|p| !p["layer"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{BROKEN_CONV}."))));
}

/// Graphs of two different models: refused with exit 2 and a message naming both, whether their
/// inputs differ or only their layers do (the ONNX and the Paddle export of one network share no
/// source node).
#[test]
fn graphs_of_different_models_are_refused() {
    let picodet = temblor_tests::shared().join("models/real/picodet_coco_onnx/model.onnx");
    let paddle = real_model("ppocrv4_det_paddle", "inference.pdmodel");
    let onnx = det();
    let cases = [
        (vec![onnx.clone(), picodet], "inputs"),
        (vec![onnx, paddle], "share no layer"),
    ];
    for (models, what) in cases {
        let (code, stdout, err) = output(
            temblor()
                .arg("compare")
                .args(&models)
                .args(["--input", DIMS]),
        );
        assert_eq!(code, 2, "{stdout}{err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(what), "{err}");
        assert!(err.contains(models[1].to_str().unwrap()), "{err}");
    }
}
