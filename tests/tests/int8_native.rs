//! Int8 layers in integers against the same graphs run as written (quantize, dequantize,
//! convolve in f32): hand-made QDQ convolutions of every shape the int8 kernel takes, and every
//! int8 layer of the real PicoDet COCO detector compiled with an int8 plan. The integer sums are
//! exact, so the outputs differ from the simulation's only by the rounding of its float sums.
//! The real models also run with int8 layers reading the bytes their producers quantized, which
//! must change no bit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use temblor_ir::{
    Activation, AutoPad, ConvAttrs, DType, Graph, Layout, NodeId, Op, Shape, TensorType, ValueRef,
};
use temblor_runtime::{prepare, run_op, Device, Int8Execution, Plan, PrepareOptions, Tensor};
use temblor_tests::builder::{int8_weight, Builder};
use temblor_tests::observe::{Convs, ConvsInBytes};
use temblor_tests::{output, read_f32, real_model, shared, temblor};
use temblor_tools::eval;
use temblor_tools::preprocess_config::{images_in, PreprocessConfig};

fn f32_type(dims: &[usize]) -> TensorType {
    TensorType {
        dtype: DType::F32,
        shape: Shape::from_known(dims),
        layout: Layout::NCHW,
    }
}

/// One QDQ convolution: the int8 layer of a precision plan, or (`zero` set) onnxruntime's uint8
/// activations with a zero point.
struct Case {
    input: [usize; 4],
    cout: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    group: usize,
    zero: Option<u8>,
    per_tensor_weight: bool,
    activation: Option<Activation>,
    bias: bool,
}

const BASE: Case = Case {
    input: [1, 16, 9, 11],
    cout: 8,
    kernel: 3,
    stride: 1,
    pad: 1,
    dilation: 1,
    group: 1,
    zero: None,
    per_tensor_weight: false,
    activation: None,
    bias: false,
};

fn graph(case: &Case, seed: u64) -> Graph {
    let mut b = Builder::new("int8", seed);
    let [_, cin, h, w] = case.input;
    let x = b.input("x", f32_type(&case.input));
    let scale = b.constant("x_scale", &[], vec![0.037], Layout::Any);
    let (zero, q_type) = match case.zero {
        Some(z) => (b.weight("x_zero", uint8(z), Layout::Any), DType::U8),
        None => (
            b.weight("x_zero", int8_weight(vec![], &[0]), Layout::Any),
            DType::I8,
        ),
    };
    let mut qt = f32_type(&case.input);
    qt.dtype = q_type;
    let q_op = Op::QuantizeLinear {
        axis: 1,
        saturate: true,
    };
    let q = b.node("q", q_op, qt, &[x, scale, zero]);
    let dq_op = Op::DequantizeLinear { axis: 1 };
    let dq = b.node("dq", dq_op, f32_type(&case.input), &[q, scale, zero]);
    let cg = cin / case.group;
    let dims = vec![case.cout, cg, case.kernel, case.kernel];
    let values: Vec<i8> = b
        .rng
        .bytes(dims.iter().product())
        .into_iter()
        .map(|v| (v as i8).max(-127))
        .collect();
    let wq = b.weight("w_q", int8_weight(dims.clone(), &values), Layout::OIHW);
    let scales: Vec<f32> = if case.per_tensor_weight {
        vec![0.004]
    } else {
        (0..case.cout).map(|c| 0.001 + 0.0007 * c as f32).collect()
    };
    let ws = b.constant("w_scale", &[scales.len()], scales, Layout::C);
    let wdq_op = Op::DequantizeLinear { axis: 0 };
    let wdq = b.node("w_dq", wdq_op, f32_type(&dims), &[wq, ws]);
    let extent =
        |n: usize| (n + 2 * case.pad - case.dilation * (case.kernel - 1) - 1) / case.stride + 1;
    let out = [1, case.cout, extent(h), extent(w)];
    let mut inputs: Vec<ValueRef> = vec![dq, wdq];
    if case.bias {
        let values = b.rng.values(case.cout);
        inputs.push(b.constant("bias", &[case.cout], values, Layout::C));
    }
    let attrs = ConvAttrs {
        auto_pad: AutoPad::NotSet,
        activation: case.activation,
        kernel: [case.kernel; 2],
        strides: [case.stride; 2],
        dilations: [case.dilation; 2],
        pads: [case.pad; 4],
        group: case.group,
        affine: None,
    };
    let y = b.node("conv", Op::Conv(attrs), f32_type(&out), &inputs);
    b.g.outputs.push(temblor_ir::GraphOutput {
        name: "y".into(),
        value: y,
    });
    b.g
}

fn uint8(z: u8) -> temblor_ir::Weight {
    temblor_ir::Weight {
        dtype: DType::U8,
        dims: vec![],
        data: vec![z].into(),
    }
}

/// The graph's outputs with int8 layers run `int8`, and the ops the plan runs.
fn run(g: &Graph, inputs: &[(String, Tensor)], int8: Int8Execution) -> (Vec<Tensor>, Vec<String>) {
    let options = PrepareOptions {
        threads: 2,
        int8,
        ..PrepareOptions::default()
    };
    let plan = prepare(g, &Device::Cpu, &options).expect("plan builds");
    let ops = plan
        .steps()
        .iter()
        .map(|s| s.op.name().to_string())
        .collect();
    let outs = plan.run_once(inputs).expect("plan runs");
    (outs.into_iter().map(|(_, t)| t).collect(), ops)
}

/// The largest difference between two output lists, relative to the largest magnitude.
fn worst_relative(a: &[Tensor], b: &[Tensor]) -> f32 {
    let mut worst = 0.0f32;
    for (a, b) in a.iter().zip(b) {
        assert_eq!(a.shape, b.shape);
        let (a, b) = (a.as_f32().unwrap(), b.as_f32().unwrap());
        let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.is_nan(), y.is_nan(), "NaN in one output only");
            if x.is_finite() {
                worst = worst.max((x - y).abs() / scale);
            }
        }
    }
    worst
}

#[test]
fn int8_convolutions_match_the_simulation() {
    let cases = [
        ("3x3 pad 1", BASE),
        (
            "1x1 over an odd plane",
            Case {
                input: [1, 32, 9, 11],
                cout: 24,
                kernel: 1,
                pad: 0,
                ..BASE
            },
        ),
        (
            "3x3 stride 2",
            Case {
                input: [1, 12, 17, 15],
                cout: 20,
                stride: 2,
                ..BASE
            },
        ),
        (
            "3x3 dilation 2",
            Case {
                dilation: 2,
                pad: 2,
                ..BASE
            },
        ),
        (
            "grouped",
            Case {
                input: [1, 8, 9, 11],
                cout: 6,
                group: 2,
                ..BASE
            },
        ),
        (
            "three outputs, 1x1",
            Case {
                cout: 3,
                kernel: 1,
                pad: 0,
                ..BASE
            },
        ),
        (
            "two images, depth not a multiple of 4",
            Case {
                input: [2, 5, 7, 40],
                cout: 9,
                ..BASE
            },
        ),
        (
            "uint8 with a zero point, per-tensor weight",
            Case {
                zero: Some(100),
                per_tensor_weight: true,
                ..BASE
            },
        ),
        (
            "bias and SiLU",
            Case {
                bias: true,
                activation: Some(Activation::Silu),
                ..BASE
            },
        ),
        (
            "3x3 stride 2, deep enough for the padded phases, uint8",
            Case {
                input: [1, 32, 19, 17],
                cout: 16,
                stride: 2,
                zero: Some(37),
                ..BASE
            },
        ),
        (
            "5x5 over many columns",
            Case {
                input: [1, 16, 40, 52],
                cout: 40,
                kernel: 5,
                pad: 2,
                ..BASE
            },
        ),
    ];
    for (seed, (what, case)) in cases.iter().enumerate() {
        let g = graph(case, seed as u64 + 1);
        let inputs = case_inputs(case, seed as u64);
        let (native, ops) = run(&g, &inputs, Int8Execution::Native);
        let (simulated, sim_ops) = run(&g, &inputs, Int8Execution::Simulate);
        assert_eq!(
            ops,
            ["Conv"],
            "{what}: the native plan runs only the convolution"
        );
        assert_eq!(
            sim_ops,
            ["DequantizeLinear", "Conv"],
            "{what}: the simulation runs the quantize-dequantize pair and the convolution"
        );
        let worst = worst_relative(&simulated, &native);
        assert!(
            worst < 1e-5,
            "{what}: native differs from the simulation by {worst}"
        );
    }
}

/// The input of `case`: values across the int8 range and past it, with saturation at both
/// ends, infinity, NaN, and a value QuantizeLinear maps to a tie.
fn case_inputs(case: &Case, seed: u64) -> Vec<(String, Tensor)> {
    let count = case.input.iter().product();
    let mut values: Vec<f32> = temblor_tests::Rng(seed + 100)
        .values(count)
        .into_iter()
        .map(|v| v * 6.0)
        .collect();
    values[0] = 1e9;
    values[1] = -1e9;
    values[2] = f32::INFINITY;
    values[3] = f32::NAN;
    values[4] = 0.037 * 2.5;
    vec![("x".to_string(), Tensor::f32(case.input.to_vec(), values))]
}

/// The convolutions an int8 plan runs as stencils read `x` and quantize it as they pad each
/// plane, without the simulation's quantize-dequantize pass. Depthwise ones sum in integers,
/// exact, so they differ from the simulation's float sums only by those sums' rounding; a few
/// outputs over a window keep the float stencils, the simulation's values exactly.
#[test]
fn int8_stencil_convolutions_quantize_as_they_pad() {
    let cases = [
        (
            "depthwise 3x3",
            Case {
                input: [1, 16, 9, 11],
                cout: 16,
                group: 16,
                ..BASE
            },
        ),
        (
            "depthwise 5x5 stride 2, uint8, bias and SiLU",
            Case {
                input: [2, 8, 19, 23],
                cout: 8,
                group: 8,
                kernel: 5,
                pad: 2,
                stride: 2,
                zero: Some(90),
                bias: true,
                activation: Some(Activation::Silu),
                ..BASE
            },
        ),
        ("three outputs, 3x3", Case { cout: 3, ..BASE }),
    ];
    for (seed, (what, case)) in cases.iter().enumerate() {
        let g = graph(case, seed as u64 + 50);
        let inputs = case_inputs(case, seed as u64 + 50);
        let (native, ops) = run(&g, &inputs, Int8Execution::Native);
        let (simulated, sim_ops) = run(&g, &inputs, Int8Execution::Simulate);
        assert_eq!(
            ops,
            ["Conv"],
            "{what}: the native plan runs only the convolution"
        );
        assert_eq!(
            sim_ops,
            ["DequantizeLinear", "Conv"],
            "{what}: the simulation"
        );
        if what.starts_with("depthwise") {
            let worst = worst_relative(&native, &simulated);
            assert!(
                worst < 1e-5,
                "{what}: native differs from the simulation by {worst}"
            );
        } else {
            assert_eq!(
                native, simulated,
                "{what}: native differs from the simulation"
            );
        }
    }
}

/// `model` compiled with an int8 plan for every layer that can take one (extra compile flags in
/// `flags`, the preprocessing for calibration in `preprocess`), into `dir`.
fn int8_package(dir: &Path, model: &Path, flags: &[&str], preprocess: &Path) -> PathBuf {
    let pkg = dir.join("int8.temblor");
    let mut with_plan = vec!["--precision", "int8"];
    with_plan.extend(flags);
    calibrated(&pkg, model, &with_plan, preprocess);
    pkg
}

/// Compiles `model` into `pkg` with `flags`, calibrated on the shared photos.
fn calibrated(pkg: &Path, model: &Path, flags: &[&str], preprocess: &Path) {
    let (images, preprocess) = (shared().join("images"), preprocess.to_str().unwrap());
    let mut all = flags.to_vec();
    all.extend([
        "--calib",
        images.to_str().unwrap(),
        "--preprocess",
        preprocess,
    ]);
    compile(pkg, model, &all);
}

/// Compiles `model` into `pkg` with `flags`, untimed.
fn compile(pkg: &Path, model: &Path, flags: &[&str]) {
    let mut cmd = temblor();
    cmd.arg("compile").arg(model).arg("-o").arg(pkg).args(flags);
    let (code, _, err) = output(cmd.arg("--no-measure"));
    assert_eq!(code, 0, "compile failed: {err}");
}

/// A PicoDet COCO package with an int8 plan for every layer that can take one.
fn picodet_int8(dir: &Path) -> PathBuf {
    let model = shared().join("models/real/picodet_coco_onnx/model.onnx");
    let preprocess = real_model("picodet_coco_paddle", "infer_cfg.yml");
    int8_package(dir, &model, &[], &preprocess)
}

/// Runs `op` on `inputs` with the kernels the simulation uses.
fn op(op: &Op, inputs: &[Option<&Tensor>]) -> Tensor {
    run_op(op, inputs, 1).expect("op runs").remove(0)
}

/// The int8 package `pkg` and its plan at 2 threads, int8 layers in integers.
fn native_plan(pkg: &Path) -> (Graph, Plan) {
    let g = temblor_ir::package::load(pkg).expect("package loads");
    let options = PrepareOptions {
        threads: 2,
        ..PrepareOptions::default()
    };
    let plan = prepare(&g, &Device::Cpu, &options).expect("plan builds");
    (g, plan)
}

/// Runs the int8 package `pkg` natively and checks every int8 convolution against the
/// simulation of the same layer on the input the native run gave it: QuantizeLinear,
/// DequantizeLinear of input and weight, and the float convolution. Returns how many ran in
/// integers.
fn assert_int8_layers_match(pkg: &Path, inputs: &[(String, Tensor)]) -> usize {
    let (g, plan) = native_plan(pkg);
    let mut convs = Convs(Vec::new());
    plan.run_observed(&mut plan.new_state(), inputs, &mut convs)
        .expect("plan runs");
    let by_name: HashMap<&str, NodeId> = g
        .node_ids()
        .map(|id| (g.node(id).name.as_str(), id))
        .collect();
    let constant = |v: Option<ValueRef>| {
        v.map(|v| Tensor::from_weight(g.constant(v).expect("a constant")).unwrap())
    };
    let mut native = 0;
    for (name, ins, out) in &convs.0 {
        // A native step reads `x` itself and has no weight input.
        if ins.get(1).is_some_and(Option::is_some) {
            continue;
        }
        native += 1;
        let id = by_name[name.as_str()];
        let (dq, wdq) = (g.input(id, 0).unwrap(), g.input(id, 1).unwrap());
        let q = g.input(dq.node, 0).unwrap();
        let q_params = [1, 2].map(|p| constant(g.input(q.node, p)));
        let dq_params = [1, 2].map(|p| constant(g.input(dq.node, p)));
        let w_params = [0, 1, 2].map(|p| constant(g.input(wdq.node, p)));
        let x = ins[0].as_ref().unwrap();
        let quantized = op(
            &g.node(q.node).op,
            &[Some(x), q_params[0].as_ref(), q_params[1].as_ref()],
        );
        let x_dq = op(
            &g.node(dq.node).op,
            &[
                Some(&quantized),
                dq_params[0].as_ref(),
                dq_params[1].as_ref(),
            ],
        );
        let w = op(
            &g.node(wdq.node).op,
            &[
                w_params[0].as_ref(),
                w_params[1].as_ref(),
                w_params[2].as_ref(),
            ],
        );
        let rest: Vec<Option<&Tensor>> = ins[2..].iter().map(Option::as_ref).collect();
        let mut conv_inputs = vec![Some(&x_dq), Some(&w)];
        conv_inputs.extend(rest);
        let simulated = op(&g.node(id).op, &conv_inputs);
        let worst = worst_relative(&[simulated], std::slice::from_ref(out));
        assert!(
            worst < 1e-5,
            "{name}: native differs from the simulation by {worst}"
        );
    }
    native
}

/// Runs the int8 package `pkg` as a user does, where a convolution that only int8 layers read
/// hands them its output quantized, and checks that the outputs are bit for bit those of a run
/// that keeps every value in f32 (an observer that reads them asks for that). Returns how many
/// convolutions left their output in bytes.
fn assert_bytes_between_layers_change_nothing(pkg: &Path, inputs: &[(String, Tensor)]) -> usize {
    let (_, plan) = native_plan(pkg);
    let mut in_bytes = ConvsInBytes::default();
    let fast = plan
        .run_observed(&mut plan.new_state(), inputs, &mut in_bytes)
        .expect("plan runs");
    let mut convs = Convs(Vec::new());
    let in_f32 = plan
        .run_observed(&mut plan.new_state(), inputs, &mut convs)
        .expect("plan runs");
    assert!(convs.0.iter().all(|(_, _, out)| out.dtype() == DType::F32));
    for ((name, a), (_, b)) in fast.iter().zip(&in_f32) {
        assert_eq!(a, b, "output {name} changed when int8 layers read bytes");
    }
    in_bytes.0
}

/// Every int8 convolution of the real PicoDet in integers against its simulation.
#[test]
fn picodet_int8_layers_match_the_simulation_on_their_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = picodet_int8(dir.path());
    let case = shared().join("models/real/picodet_coco_onnx/chelsea");
    let npy = |name: &str| {
        let (shape, values) = read_f32(&case.join(name));
        Tensor::f32(shape, values)
    };
    let inputs = vec![
        ("image".to_string(), npy("input_image.npy")),
        ("scale_factor".to_string(), npy("input_scale_factor.npy")),
    ];
    let native = assert_int8_layers_match(&pkg, &inputs);
    assert!(native >= 40, "only {native} convolutions ran in integers");
    let in_bytes = assert_bytes_between_layers_change_nothing(&pkg, &inputs);
    assert!(in_bytes >= 40, "only {in_bytes} convolutions left bytes");
}

/// The same for a zoo detector from another exporter: YOLOv8n (SiLU convolutions, stride-2
/// stem and downsampling), on a photo, every one of its 64 convolutions int8 but the head's
/// last ones, which have too few outputs for a GEMM.
#[test]
fn yolov8n_int8_layers_match_the_simulation_on_their_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("yolo.yml");
    std::fs::write(
        &yaml,
        "resize: {size: [320, 320]}\nmean: [0.0, 0.0, 0.0]\nstd: [1.0, 1.0, 1.0]\n",
    )
    .unwrap();
    let model = real_model("yolov8n_nudenet_onnx", "320n.onnx");
    let pkg = int8_package(
        dir.path(),
        &model,
        &["--input", "images:1x3x320x320"],
        &yaml,
    );
    let g = temblor_ir::package::load(&pkg).expect("package loads");
    let config = PreprocessConfig::load(&yaml).unwrap();
    let photo = shared().join("images/astronaut.png");
    let inputs = config.inputs(&photo, &g).expect("preprocessed").inputs;
    let native = assert_int8_layers_match(&pkg, &inputs);
    assert!(native >= 50, "only {native} convolutions ran in integers");
    let in_bytes = assert_bytes_between_layers_change_nothing(&pkg, &inputs);
    assert!(in_bytes >= 20, "only {in_bytes} convolutions left bytes");
}

/// PicoDet's auto plan for the CPU (int8 over fp32 within AP 0.95 of fp32) in integers and as
/// written agree with the fp32 model equally over the shared photos: detection agreement AP
/// (fp32's detections scoring 0.3 or more as ground truth) within 0.005. Not the int8
/// everywhere plan: at AP about 0.5 against fp32 it is not one a user ships, and there one
/// quantization step flipped by a float sum's rounding moves the score by a few hundredths.
#[test]
fn picodet_auto_native_keeps_the_simulated_agreement() {
    let dir = tempfile::tempdir().unwrap();
    let model = shared().join("models/real/picodet_coco_onnx/model.onnx");
    let preprocess = real_model("picodet_coco_paddle", "infer_cfg.yml");
    let pkg = dir.path().join("auto.temblor");
    let flags = ["--precision", "auto", "--auto-base", "fp32"];
    calibrated(&pkg, &model, &flags, &preprocess);
    let int8 = temblor_ir::package::load(&pkg).expect("package loads");
    let fp32_pkg = dir.path().join("fp32.temblor");
    compile(&fp32_pkg, &model, &[]);
    let fp32 = temblor_ir::package::load(&fp32_pkg).expect("package loads");
    let config = PreprocessConfig::load(&preprocess).expect("infer_cfg.yml");
    let photos = images_in(&shared().join("images")).unwrap();
    let detect = |g: &Graph, int8: Int8Execution| -> Vec<Vec<eval::Detection>> {
        photos
            .iter()
            .map(|photo| {
                let inputs = config.inputs(photo, g).expect("preprocessed").inputs;
                let (outs, _) = run(g, &inputs, int8);
                let names = g.outputs.iter().map(|o| o.name.clone());
                let named: Vec<(String, Tensor)> = names.zip(outs).collect();
                eval::detections_from_outputs(&named).expect("detections")
            })
            .collect()
    };
    let reference = detect(&fp32, Int8Execution::Native);
    let ap = |int8_execution| eval::agreement(&reference, &detect(&int8, int8_execution), 0.3).ap;
    let (native, simulated) = (ap(Int8Execution::Native), ap(Int8Execution::Simulate));
    println!("agreement AP with fp32: native {native:.4}, simulated {simulated:.4}");
    assert!(
        reference.iter().any(|d| d.iter().any(|d| d.score >= 0.3)),
        "no confident fp32 detection to agree with"
    );
    assert!(
        (native - simulated).abs() <= 0.005,
        "agreement AP: native {native:.4}, simulated {simulated:.4}"
    );
}
