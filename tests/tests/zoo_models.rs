//! The second zoo (../shared/models/README.md): trained ONNX models from other exporters, each
//! compiled for fixed input sizes and, where the model declares dynamic dims, run from the model
//! file at two sizes, every output compared with onnxruntime on a real photo.

use std::path::{Path, PathBuf};
use std::process::Command;
use temblor_tests::{output, python, real_model, rel_l2, run_both_with, shared, temblor};

/// A photo as `dir/<name>.npy`, `[1, 3, H, W]`: RGB/255 normalized by `mean`/`std` (per channel,
/// of pixel/255), BGR with `bgr`; `nhwc` transposes it to `[1, H, W, 3]`.
fn photo(dir: &Path, name: &str, hw: &str, norm: &[&str], nhwc: bool) -> PathBuf {
    let out = dir.join(format!("{name}.npy"));
    let mut cmd = temblor();
    cmd.arg("preprocess")
        .arg(shared().join("images/astronaut.png"))
        .arg("-o")
        .arg(&out)
        .args(["--size", hw])
        .args(norm);
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "preprocess failed: {err}");
    if nhwc {
        let script = "import sys, numpy as np; p = sys.argv[1]; \
                      np.save(p, np.ascontiguousarray(np.load(p).transpose(0, 2, 3, 1)))";
        let (code, _, err) = output(Command::new(python()).args(["-c", script]).arg(&out));
        assert_eq!(code, 0, "transpose failed: {err}");
    }
    out
}

/// `temblor compile` with `args` (after the model and `-o`), expected to succeed. Verified but
/// not timed: timing every pass of these models would triple the test's time.
fn compile(model: &Path, out: &Path, args: &[&str]) {
    let mut cmd = temblor();
    cmd.arg("compile")
        .arg(model)
        .arg("-o")
        .arg(out)
        .arg("--no-measure")
        .args(args);
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "compile failed: {err}");
}

/// Runs `target` with temblor and `model` with onnxruntime on the same inputs. Each output must
/// be within relative L2 1e-4, or, for an output that is all near zero (where the relative
/// error measures noise), elementwise within rtol 1e-3 and atol 1e-6.
fn assert_matches(target: &Path, model: &Path, inputs: &[(&str, PathBuf)], dir: &Path) {
    assert_matches_with(target, model, inputs, dir, &[]);
}

/// [`assert_matches`], with `args` added to `temblor run`.
fn assert_matches_with(
    target: &Path,
    model: &Path,
    inputs: &[(&str, PathBuf)],
    dir: &Path,
    args: &[&str],
) {
    for c in run_both_with(target, model, inputs, dir, args) {
        let err = rel_l2(&c.ours, &c.theirs);
        println!("{}: relative L2 {err:.3e}", c.path.display());
        let near_zero = c.theirs.iter().all(|v| v.abs() < 1e-3);
        let close = c
            .ours
            .iter()
            .zip(&c.theirs)
            .all(|(x, y)| (x - y).abs() <= 1e-6 + 1e-3 * y.abs());
        assert!(
            err < 1e-4 || (near_zero && close),
            "{}: relative L2 {err:e} >= 1e-4",
            c.path.display()
        );
    }
}

/// `temblor preprocess`'s defaults are ImageNet's mean and std.
const IMAGENET: [&str; 0] = [];
const UNIT: [&str; 4] = ["--mean", "0,0,0", "--std", "1,1,1"];

#[test]
fn u2netp_resizes_to_shape_computed_sizes() {
    let model = real_model("u2netp_onnx", "u2netp.onnx");
    let dir = tempfile::tempdir().unwrap();
    let x = photo(dir.path(), "x", "320x320", &IMAGENET, false);
    let pkg = dir.path().join("u2netp.temblor");
    compile(&model, &pkg, &["--input", "input.1:1x3x320x320"]);
    assert_matches(&pkg, &model, &[("input.1", x)], dir.path());
}

#[test]
fn vit_s_focus_resizes_bicubic() {
    // 97 MB of weights: one size, compiled (the batch is the only dynamic dim).
    let model = real_model("vit_s_focus_onnx", "vit_s_focus.onnx");
    let dir = tempfile::tempdir().unwrap();
    let x = photo(dir.path(), "x", "224x224", &IMAGENET, false);
    let pkg = dir.path().join("vit.temblor");
    compile(&model, &pkg, &["--input", "input_image:1x3x224x224"]);
    assert_matches(&pkg, &model, &[("input_image", x)], dir.path());
}

#[test]
fn centerface_takes_an_overridden_placeholder_input() {
    let model = real_model("centerface_onnx", "centerface.onnx");
    let dir = tempfile::tempdir().unwrap();
    // BGR, 0..255.
    let norm = [
        "--mean",
        "0,0,0",
        "--std",
        "0.00392156863,0.00392156863,0.00392156863",
        "--bgr",
    ];
    let x = photo(dir.path(), "x", "480x640", &norm, false);
    let pkg = dir.path().join("centerface.temblor");
    let mut cmd = temblor();
    cmd.arg("compile").arg(&model).arg("-o").arg(&pkg).args([
        "--no-measure",
        "--input",
        "input.1:1x3x480x640",
    ]);
    let (code, _, err) = output(&mut cmd);
    assert_eq!(
        code, 2,
        "a declared size replaced without --override-shapes: {err}"
    );
    assert!(err.contains("--override-shapes"), "{err}");
    compile(
        &model,
        &pkg,
        &["--input", "input.1:1x3x480x640", "--override-shapes"],
    );
    let reference = model_with_input(&model, dir.path(), "1x3x480x640");
    assert_matches(&pkg, &reference, &[("input.1", x)], dir.path());

    // `run` of the model file compiles it for the data's size when told to override, and
    // says so when not told.
    let small = photo(dir.path(), "small", "256x320", &norm, false);
    let mut cmd = temblor();
    cmd.arg("run")
        .arg(&model)
        .arg("-o")
        .arg(dir.path().join("refused"));
    cmd.arg("--input")
        .arg(format!("input.1={}", small.display()));
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--override-shapes"), "{err}");
    let reference = model_with_input(&model, dir.path(), "1x3x256x320");
    let inputs = [("input.1", small)];
    assert_matches_with(
        &model,
        &reference,
        &inputs,
        dir.path(),
        &["--override-shapes"],
    );
}

/// The model with its first input's declared dims replaced, for onnxruntime (which checks
/// declared static dims) to take the overridden size too.
fn model_with_input(model: &Path, dir: &Path, dims: &str) -> PathBuf {
    let out = dir.join("declared.onnx");
    let script = "import sys, onnx; m = onnx.load(sys.argv[1]); d = m.graph.input[0].type.tensor_type.shape.dim; \
                  [x.ClearField('dim_param') or setattr(x, 'dim_value', int(v)) for x, v in zip(d, sys.argv[3].split('x'))]; \
                  [o.type.tensor_type.ClearField('shape') for o in m.graph.output]; del m.graph.value_info[:]; onnx.save(m, sys.argv[2])";
    let (code, _, err) = output(
        Command::new(python())
            .args(["-c", script])
            .arg(model)
            .arg(&out)
            .arg(dims),
    );
    assert_eq!(code, 0, "rewriting the declared input failed: {err}");
    out
}

#[test]
fn open_nsfw_runs_nhwc() {
    let model = real_model("open_nsfw_nhwc_onnx", "open_nsfw.onnx");
    let dir = tempfile::tempdir().unwrap();
    let norm = [
        "--mean",
        "0.40784314,0.45882353,0.48235294",
        "--std",
        "0.00392156863,0.00392156863,0.00392156863",
        "--bgr",
    ];
    let x = photo(dir.path(), "x", "224x224", &norm, true);
    let pkg = dir.path().join("nsfw.temblor");
    compile(&model, &pkg, &["--input", "input_0:1x224x224x3"]);
    assert_matches(&pkg, &model, &[("input_0", x.clone())], dir.path());
    // The batch stays dynamic when run from the model file.
    assert_matches(&model, &model, &[("input_0", x)], dir.path());
}

#[test]
fn yolov8n_nudenet_runs_at_two_sizes() {
    let model = real_model("yolov8n_nudenet_onnx", "320n.onnx");
    let dir = tempfile::tempdir().unwrap();
    let x = photo(dir.path(), "x", "320x320", &UNIT, false);
    let pkg = dir.path().join("nudenet.temblor");
    compile(&model, &pkg, &["--input", "images:1x3x320x320"]);
    assert_matches(&pkg, &model, &[("images", x.clone())], dir.path());
    // Dynamic N, H, W from the model file: two sizes through one compiled graph.
    assert_matches(&model, &model, &[("images", x)], dir.path());
    let y = photo(dir.path(), "y", "256x384", &UNIT, false);
    assert_matches(&model, &model, &[("images", y)], dir.path());
}

#[test]
fn yolo11seg_slider_matches() {
    let model = real_model("yolo11seg_slider_onnx", "slider.onnx");
    let dir = tempfile::tempdir().unwrap();
    let x = photo(dir.path(), "x", "640x640", &UNIT, false);
    let pkg = dir.path().join("slider.temblor");
    compile(&model, &pkg, &["--input", "images:1x3x640x640"]);
    assert_matches(&pkg, &model, &[("images", x)], dir.path());
}

#[test]
fn orinet_orient_matches() {
    let model = real_model("orinet_orient_onnx", "orientation_orinet_fp32.onnx");
    let dir = tempfile::tempdir().unwrap();
    let x = photo(dir.path(), "x", "320x320", &IMAGENET, false);
    let pkg = dir.path().join("orinet.temblor");
    compile(&model, &pkg, &["--input", "x:1x3x320x320"]);
    assert_matches(&pkg, &model, &[("x", x.clone())], dir.path());
    assert_matches(&model, &model, &[("x", x)], dir.path());
}
