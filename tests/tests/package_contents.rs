//! A package records how its model wants its images (preprocess.yml) and its class names
//! (labels.txt), so that commands given the package need neither restated; packages written
//! before either was recorded still load and still ask for what they lack.

use serde_json::Value;
use std::path::{Path, PathBuf};
use temblor_ir::package;
use temblor_tests::{output, real_model, shared, temblor};
use temblor_tools::preprocess_config::{package_labels, PreprocessConfig};

fn picodet_paddle() -> PathBuf {
    real_model("picodet_coco_paddle", "model.pdmodel")
}

fn picodet_onnx() -> PathBuf {
    shared().join("models/real/picodet_coco_onnx/model.onnx")
}

/// Compiles `model` (with `extra` flags) into `out`, without timing or verifying, which are not
/// what these tests check.
fn compile(model: &Path, out: &Path, extra: &[&str]) {
    let (code, _, err) = output(
        temblor()
            .arg("compile")
            .arg(model)
            .arg("-o")
            .arg(out)
            .args(["--no-measure", "--no-verify"])
            .args(extra),
    );
    assert_eq!(code, 0, "compile failed: {err}");
}

/// `eval` of a package against itself over the shared photos, as JSON.
fn eval(pkg: &Path, preprocess: Option<&Path>) -> Value {
    let mut cmd = temblor();
    cmd.arg("eval")
        .arg(pkg)
        .arg("--images")
        .arg(shared().join("images"))
        .arg("--reference")
        .arg(pkg)
        .args(["--min-score", "0.3", "--json"]);
    if let Some(p) = preprocess {
        cmd.arg("--preprocess").arg(p);
    }
    let (code, out, err) = output(&mut cmd);
    assert_eq!(code, 0, "eval failed: {err}");
    serde_json::from_str(&out).expect("--json prints JSON")
}

#[test]
fn a_paddle_package_evaluates_with_the_infer_cfg_it_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("picodet.temblor");
    compile(&picodet_paddle(), &pkg, &[]);
    let infer_cfg = real_model("picodet_coco_paddle", "infer_cfg.yml");
    let source = PreprocessConfig::load(&infer_cfg).unwrap();

    let recorded = PreprocessConfig::load(&pkg.join(package::PREPROCESS)).unwrap();
    assert_eq!(
        recorded,
        PreprocessConfig {
            labels: Vec::new(),
            ..source.clone()
        },
        "preprocess.yml says what infer_cfg.yml does"
    );
    assert_eq!(source.labels.len(), 80, "infer_cfg.yml's COCO label_list");
    assert_eq!(package_labels(&pkg).unwrap(), source.labels);

    let mut recorded_run = eval(&pkg, None);
    let mut explicit_run = eval(&pkg, Some(&infer_cfg));
    assert_eq!(
        recorded_run["preprocess"].as_str(),
        Some(pkg.join(package::PREPROCESS).to_str().unwrap())
    );
    let names: Vec<&str> = recorded_run["per_class"]
        .as_array()
        .expect("per_class")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"person"),
        "classes named from labels.txt: {names:?}"
    );
    // Only where the config was read from differs; every input, box count and AP agrees.
    for run in [&mut recorded_run, &mut explicit_run] {
        run.as_object_mut().unwrap().remove("preprocess");
    }
    assert_eq!(recorded_run, explicit_run);
}

#[test]
fn an_onnx_package_records_the_given_preprocessing_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("picodet.yml");
    std::fs::write(
        &config_file,
        "resize: {size: [416, 416], interpolation: cubic}\n\
         mean: [0.485, 0.456, 0.406]\n\
         std: [0.229, 0.224, 0.225]\n\
         channels: bgr\n\
         labels: [overridden]\n",
    )
    .unwrap();
    let labels_file = dir.path().join("labels.txt");
    std::fs::write(&labels_file, "person\nbicycle\ncar\n").unwrap();
    let pkg = dir.path().join("picodet.temblor");
    compile(
        &picodet_onnx(),
        &pkg,
        &[
            "--preprocess",
            config_file.to_str().unwrap(),
            "--labels",
            labels_file.to_str().unwrap(),
        ],
    );

    let given = PreprocessConfig::load(&config_file).unwrap();
    let recorded = PreprocessConfig::load(&pkg.join(package::PREPROCESS)).unwrap();
    assert_eq!(
        recorded,
        PreprocessConfig {
            labels: Vec::new(),
            ..given
        }
    );
    assert_eq!(
        package_labels(&pkg).unwrap(),
        ["person", "bicycle", "car"],
        "--labels wins over the config's labels"
    );

    // A package from before the record: it loads, and eval asks for the config as it did.
    std::fs::remove_file(pkg.join(package::PREPROCESS)).unwrap();
    std::fs::remove_file(pkg.join(package::LABELS)).unwrap();
    package::load(&pkg).expect("a package without the record loads");
    assert!(package_labels(&pkg).unwrap().is_empty());
    let (code, _, err) = output(
        temblor()
            .arg("eval")
            .arg(&pkg)
            .arg("--images")
            .arg(shared().join("images"))
            .arg("--reference")
            .arg(&pkg),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no preprocessing config: give --preprocess FILE"),
        "{err}"
    );
}

#[test]
fn a_bad_labels_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let labels_file = dir.path().join("labels.txt");
    std::fs::write(&labels_file, "person\n\ncar\n").unwrap();
    let (code, _, err) = output(
        temblor()
            .arg("compile")
            .arg(picodet_onnx())
            .arg("-o")
            .arg(dir.path().join("p.temblor"))
            .arg("--labels")
            .arg(&labels_file),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 2 is empty"), "{err}");
    assert!(!dir.path().join("p.temblor").exists());
}
