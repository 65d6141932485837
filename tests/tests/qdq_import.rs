//! A model a user quantized with onnxruntime's static quantizer (QDQ format: uint8 activations
//! with zero points, int8 weights per output channel), compiled as it comes: it must pass
//! `compile`'s verification, run its convolutions in integers, and find what onnxruntime finds
//! running the same file.

use std::path::{Path, PathBuf};
use temblor_ir::Graph;
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor};
use temblor_tests::observe::Convs;
use temblor_tests::{ort_reference, output, python, read_f32, read_numbers, root, shared, temblor};
use temblor_tools::eval;

/// The photos PicoDet COCO's reference inputs were made from, preprocessed.
const CASES: [&str; 3] = ["astronaut", "chelsea", "coffee"];

fn case_inputs(case: &str) -> Vec<(&'static str, PathBuf)> {
    let dir = shared().join("models/real/picodet_coco_onnx").join(case);
    vec![
        ("image", dir.join("input_image.npy")),
        ("scale_factor", dir.join("input_scale_factor.npy")),
    ]
}

/// `model` quantized by onnxruntime, calibrated on the reference inputs, into `out`.
fn ort_quantized(model: &Path, out: &Path) {
    let mut cmd = std::process::Command::new(python());
    cmd.arg(root().join("tests/scripts/ort_quantize.py"))
        .arg(model)
        .arg(out);
    for case in CASES {
        for (name, path) in case_inputs(case) {
            cmd.arg(format!("{name}={}", path.display()));
        }
    }
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "onnxruntime's quantizer failed: {err}");
}

/// An output onnxruntime wrote: the detection table (rows of 6) in f32, its count in i64.
fn output_tensor(path: &Path) -> Tensor {
    let (shape, values) = read_numbers(path);
    if shape.last() == Some(&6) {
        Tensor::f32(shape, values.into_iter().map(|v| v as f32).collect())
    } else {
        Tensor::i64(shape, values.into_iter().map(|v| v as i64).collect())
    }
}

#[test]
fn an_onnxruntime_quantized_detector_runs_in_integers_and_agrees_with_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let qdq = dir.path().join("picodet_qdq.onnx");
    ort_quantized(
        &shared().join("models/real/picodet_coco_onnx/model.onnx"),
        &qdq,
    );
    let pkg = dir.path().join("qdq.temblor");
    let mut cmd = temblor();
    cmd.arg("compile").arg(&qdq).arg("-o").arg(&pkg);
    cmd.args(["--input", "image:1x3x416x416", "--no-measure"]);
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "compile failed: {err}");

    let g = temblor_ir::package::load(&pkg).expect("package loads");
    let options = PrepareOptions {
        threads: 2,
        ..PrepareOptions::default()
    };
    let plan = prepare(&g, &Device::Cpu, &options).expect("plan builds");
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for case in CASES {
        let inputs = case_inputs(case);
        let tensors: Vec<(String, Tensor)> = inputs
            .iter()
            .map(|(name, path)| {
                let (shape, values) = read_f32(path);
                (name.to_string(), Tensor::f32(shape, values))
            })
            .collect();
        let mut convs = Convs::default();
        let outs = plan
            .run_observed(&mut plan.new_state(), &tensors, &mut convs)
            .expect("plan runs");
        // A step in integers reads the float input itself and holds its weight packed.
        let native = convs
            .0
            .iter()
            .filter(|(_, ins, _)| ins[1].is_none())
            .count();
        assert!(
            native >= 40,
            "{case}: only {native} of {} convolutions ran in integers",
            convs.0.len()
        );
        ours.push(eval::detections_from_outputs(&outs).expect("detections"));

        let reference = dir.path().join(case);
        std::fs::create_dir_all(&reference).unwrap();
        ort_reference(&qdq, &inputs, &reference);
        theirs.push(ort_detections(&g, &reference));
    }
    let agreement = eval::agreement(&theirs, &ours, 0.3);
    println!(
        "agreement AP with onnxruntime on its QDQ model: {:.4}",
        agreement.ap
    );
    assert!(
        theirs.iter().any(|d| d.iter().any(|d| d.score >= 0.3)),
        "onnxruntime found nothing confident to agree with"
    );
    assert!(agreement.ap >= 0.95, "agreement AP {:.4}", agreement.ap);
}

/// onnxruntime's detections, from the outputs `ort_run.py` wrote for graph `g`.
fn ort_detections(g: &Graph, dir: &Path) -> Vec<eval::Detection> {
    let outputs: Vec<(String, Tensor)> = g
        .outputs
        .iter()
        .map(|o| {
            let file: String = o
                .name
                .chars()
                .map(|c| match c {
                    'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
                    _ => '_',
                })
                .collect();
            (
                o.name.clone(),
                output_tensor(&dir.join(format!("{file}.npy"))),
            )
        })
        .collect();
    eval::detections_from_outputs(&outputs).expect("onnxruntime's detections")
}
