//! A model a user quantized with onnxruntime's static quantizer (QDQ format: uint8 activations
//! with zero points, int8 weights per output channel), compiled as it comes: it must pass
//! `compile`'s verification, run its convolutions in integers, and find what onnxruntime finds
//! running the same file. The activations that quantizer leaves between two quantizations run
//! as tables of their 256 results (`runtime/src/cpu/byte_table.rs`): hand-made chains check them
//! bit for bit against the ops run as written, with floats and with bytes between layers.

use std::path::{Path, PathBuf};
use temblor_ir::{BinaryOp, DType, Graph, Layout, Op, Shape, TensorType, UnaryOp};
use temblor_runtime::{prepare, Device, Int8Execution, Plan, PrepareOptions, Tensor};
use temblor_tests::builder::{act, Builder};
use temblor_tests::observe::Convs;
use temblor_tests::{
    ort_reference, output, python, read_f32, read_numbers, real_model, rel_l2, root, run_both,
    shared, temblor,
};
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

/// `model` quantized by onnxruntime, calibrated on `samples` (`NAME=FILE.npy` or
/// `NAME=uniform:DIMS`, `tests/scripts/ort_quantize.py`), into `out`.
fn ort_quantized(model: &Path, out: &Path, samples: &[String]) {
    let mut cmd = std::process::Command::new(python());
    cmd.arg(root().join("tests/scripts/ort_quantize.py"))
        .arg(model)
        .arg(out)
        .args(samples);
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "onnxruntime's quantizer failed: {err}");
}

/// `model` compiled (and so verified) into `pkg` with `flags`.
fn compile(model: &Path, pkg: &Path, flags: &[&str]) {
    let mut cmd = temblor();
    cmd.arg("compile").arg(model).arg("-o").arg(pkg).args(flags);
    let (code, _, err) = output(cmd.arg("--no-measure"));
    assert_eq!(code, 0, "compile failed: {err}");
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
    let samples: Vec<String> = CASES
        .iter()
        .flat_map(|case| case_inputs(case))
        .map(|(name, path)| format!("{name}={}", path.display()))
        .collect();
    let model = shared().join("models/real/picodet_coco_onnx/model.onnx");
    ort_quantized(&model, &qdq, &samples);
    let pkg = dir.path().join("qdq.temblor");
    compile(&qdq, &pkg, &["--input", "image:1x3x416x416"]);

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
        println!(
            "{case}: {native} of {} convolutions in integers",
            convs.0.len()
        );
        assert_eq!(
            native,
            convs.0.len(),
            "{case}: not every convolution ran in integers"
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

/// A transformer from another exporter (the zoo's DINOv2-style ViT, a convolution for its
/// patches and a decoder of transposed convolutions), quantized the same way, passes `compile`'s
/// verification: its QuantizeLinear after a decoder Relu turned the last-bit differences of
/// the optimized graph's fused layers into whole quantization steps,
/// a relative L2 of 1.2e-5 at the output against the float tolerance of 1e-5.
#[test]
fn an_onnxruntime_quantized_transformer_compiles_verified() {
    let dir = tempfile::tempdir().unwrap();
    let qdq = dir.path().join("vit_qdq.onnx");
    let model = real_model("vit_s_focus_onnx", "vit_s_focus.onnx");
    let samples = vec!["input_image=uniform:1x3x224x224".to_string(); 3];
    ort_quantized(&model, &qdq, &samples);
    compile(
        &qdq,
        &dir.path().join("vit.temblor"),
        &["--input", "input_image:1x3x224x224"],
    );
}

/// YOLOv8n from another exporter, quantized the same way (its SiLU left as a Sigmoid and a Mul
/// of one dequantized value, one table here), against onnxruntime on the same file and a seeded
/// input: the raw output within relative L2 0.02 (4.7e-3 when written: the two round some
/// requantized sums apart by a step, which the head carries on).
#[test]
fn an_onnxruntime_quantized_yolo_agrees_with_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let qdq = dir.path().join("yolov8n_qdq.onnx");
    let model = real_model("yolov8n_nudenet_onnx", "320n.onnx");
    let samples = vec!["images=uniform:1x3x320x320".to_string(); 3];
    ort_quantized(&model, &qdq, &samples);
    let pkg = dir.path().join("yolo.temblor");
    compile(&qdq, &pkg, &["--input", "images:1x3x320x320"]);
    let input = dir.path().join("images.npy");
    let save = format!(
        "import numpy as np; np.save({:?}, np.random.default_rng(1).random((1, 3, 320, 320), dtype=np.float32))",
        input.display().to_string()
    );
    let (code, _, err) = output(std::process::Command::new(python()).args(["-c", &save]));
    assert_eq!(code, 0, "{err}");
    for c in run_both(&pkg, &qdq, &[("images", input)], dir.path()) {
        let rel = rel_l2(&c.ours, &c.theirs);
        println!("{}: relative L2 {rel:.2e}", c.path.display());
        assert!(rel <= 0.02, "{}: relative L2 {rel:.2e}", c.path.display());
    }
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

/// Every activation the tables take, each between two quantizations, after `x` (16 channels at
/// 8x8), with an int8 convolution (input quantized per tensor, as the precision plan writes it)
/// between each two when `convs`, so that they read and write bytes.
fn chain(convs: bool) -> Graph {
    let mut b = Builder::new("tables", 5);
    let ty = TensorType {
        dtype: DType::F32,
        shape: Shape::from_known(&[1, 16, 8, 8]),
        layout: Layout::NCHW,
    };
    let mut v = b.input("x", ty);
    let activations = [
        Op::Unary(UnaryOp::HardSwish),
        Op::Unary(UnaryOp::Sigmoid),
        Op::LeakyRelu { alpha: 0.1 },
        Op::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        Op::Clip {
            min: -1.0,
            max: 6.0,
        },
        Op::Unary(UnaryOp::Tanh),
        // SiLU as onnxruntime's quantizer leaves it: a Sigmoid and a Mul of one value.
        Op::Binary(BinaryOp::Mul),
    ];
    for (i, op) in activations.into_iter().enumerate() {
        if convs {
            let scales: Vec<f32> = (0..16).map(|c| 0.002 + 0.0003 * c as f32).collect();
            v = b.int8_conv(&format!("conv{i}"), v, 16, 0.05, &scales);
        }
        let zero = [128, 0, 40, 255, 7, 100, 3][i];
        let dq = b.qdq(&format!("a{i}"), v, 16, 0.03 + 0.01 * i as f32, zero);
        let operands = match op {
            Op::Binary(_) => {
                let sigmoid = Op::Unary(UnaryOp::Sigmoid);
                vec![dq, b.node(&format!("sigmoid{i}"), sigmoid, act(16), &[dq])]
            }
            _ => vec![dq],
        };
        v = b.node(&format!("act{i}"), op, act(16), &operands);
    }
    b.g.outputs.push(temblor_ir::GraphOutput {
        name: "y".into(),
        value: v,
    });
    b.g
}

fn inputs() -> Vec<(String, Tensor)> {
    let mut values: Vec<f32> = temblor_tests::Rng(77)
        .values(16 * 64)
        .into_iter()
        .map(|v| 8.0 * v - 2.0)
        .collect();
    values[..4].copy_from_slice(&[f32::NAN, f32::INFINITY, -1e9, 0.03 * 2.5]);
    vec![("x".into(), Tensor::f32(vec![1, 16, 8, 8], values))]
}

fn plan(g: &Graph, int8: Int8Execution) -> Plan {
    let options = PrepareOptions {
        threads: 2,
        int8,
        ..PrepareOptions::default()
    };
    prepare(g, &Device::Cpu, &options).expect("plan builds")
}

fn steps(plan: &Plan, op: &str) -> usize {
    plan.steps().iter().filter(|s| s.op.name() == op).count()
}

/// Each table gives the activation's results on its quantized input bit for bit: the chain
/// without convolutions run natively (every activation a table, reading floats and writing
/// bytes for the next) and as written.
#[test]
fn activation_tables_are_the_activations_of_their_quantized_inputs() {
    let g = chain(false);
    let (native, written) = (
        plan(&g, Int8Execution::Native),
        plan(&g, Int8Execution::Simulate),
    );
    assert_eq!(
        steps(&native, "DequantizeLinear"),
        0,
        "a pair ran as written"
    );
    assert_eq!(steps(&written, "DequantizeLinear"), 7);
    // The SiLU's Sigmoid is part of its Mul's table.
    assert_eq!(
        (steps(&native, "Sigmoid"), steps(&written, "Sigmoid")),
        (1, 2)
    );
    let (a, b) = (native.run_once(&inputs()), written.run_once(&inputs()));
    assert_eq!(a.expect("native runs"), b.expect("as written runs"));
}

/// Between int8 convolutions, the tables read the bytes the convolutions store and store bytes
/// for the next: the same outputs as a run that keeps every value in f32 (an observer that
/// reads them asks for that).
#[test]
fn activation_tables_between_int8_convolutions_read_and_write_bytes() {
    let g = chain(true);
    let native = plan(&g, Int8Execution::Native);
    assert_eq!(
        steps(&native, "DequantizeLinear"),
        0,
        "a pair ran as written"
    );
    let fast = native.run_once(&inputs()).expect("runs");
    let mut convs = Convs::default();
    let in_f32 = native
        .run_observed(&mut native.new_state(), &inputs(), &mut convs)
        .expect("runs observed");
    assert_eq!(convs.0.len(), 7);
    assert!(convs.0.iter().all(|(_, ins, _)| ins[1].is_none()));
    assert_eq!(fast, in_f32);
}
