//! bf16 layers computed with bf16 dot products against the same layers run as written (widen to
//! f32, convolve in f32, round to bf16): every bf16 convolution of the zoo's YOLOv8n and of the
//! real PicoDet COCO detector on the inputs a native run gave it, and PicoDet's detections over
//! the shared photos. The products of bf16 values are exact in f32, so a native layer differs
//! from the simulation only where its f32 sums, added in another order, round to another bf16.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use temblor_ir::{Graph, NodeId};
use temblor_runtime::{prepare, run_op, Device, Int8Execution, PrepareOptions, Tensor, TensorData};
use temblor_tests::observe::Convs;
use temblor_tests::{output, read_f32, real_model, rel_l2, shared, temblor};
use temblor_tools::eval;
use temblor_tools::preprocess_config::{images_in, PreprocessConfig};

const YOLO_PREPROCESS: &str =
    "resize: {size: [320, 320]}\nmean: [0.0, 0.0, 0.0]\nstd: [1.0, 1.0, 1.0]\n";

/// Compiles `model` into `pkg` with `flags`, untimed.
fn compile(pkg: &Path, model: &Path, flags: &[&str]) {
    let mut cmd = temblor();
    cmd.arg("compile").arg(model).arg("-o").arg(pkg).args(flags);
    let (code, _, err) = output(cmd.arg("--no-measure"));
    assert_eq!(code, 0, "compile failed: {err}");
}

fn bf16s(t: &Tensor) -> Vec<u16> {
    match &t.data {
        TensorData::BF16(v) => v.iter().map(|x| x.to_bits()).collect(),
        other => panic!("a bf16 layer wrote {:?}", other.dtype()),
    }
}

/// Runs the bf16 package `pkg` natively on `inputs` and checks every native bf16 convolution
/// against the simulation of the same layer on the input the native run gave it: at most 0.5%
/// of its outputs differ, and the relative L2 of the difference is at most 1e-3. Where the
/// sums cancel, a difference in the order of f32 additions (about 2^-24 of the terms) is
/// several bf16 steps of the small result, so the bound is on how many move, not how far; on
/// YOLOv8n and PicoDet at most 0.11% of a layer's outputs move, relative L2 at most 1.7e-4.
/// Returns how many ran natively.
fn assert_bf16_layers_match(pkg: &Path, inputs: &[(String, Tensor)]) -> usize {
    let g = temblor_ir::package::load(pkg).expect("package loads");
    let plan = prepare(&g, &Device::Cpu, &PrepareOptions::default()).expect("plan builds");
    let mut convs = Convs(Vec::new());
    plan.run_observed(&mut plan.new_state(), inputs, &mut convs)
        .expect("plan runs");
    let by_name: HashMap<&str, NodeId> = g
        .node_ids()
        .map(|id| (g.node(id).name.as_str(), id))
        .collect();
    let mut native = 0;
    for (name, ins, out) in &convs.0 {
        // A native step holds its packed weight and reads none.
        if ins.get(1).is_some_and(Option::is_some) {
            continue;
        }
        native += 1;
        let id = by_name[name.as_str()];
        let w = g
            .constant(g.input(id, 1).unwrap())
            .expect("a constant weight");
        let w = Tensor::from_weight(w).unwrap();
        let mut conv_inputs: Vec<Option<&Tensor>> = vec![ins[0].as_ref(), Some(&w)];
        conv_inputs.extend(ins[2..].iter().map(Option::as_ref));
        let simulated = run_op(&g.node(id).op, &conv_inputs, 1).expect("op runs");
        let (a, b) = (bf16s(&simulated[0]), bf16s(out));
        assert_eq!(a.len(), b.len(), "{name}: output sizes differ");
        let moved = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        let wide = |v: &[u16]| -> Vec<f32> {
            v.iter()
                .map(|&x| f32::from_bits((x as u32) << 16))
                .collect()
        };
        let e = rel_l2(&wide(&b), &wide(&a));
        assert!(
            moved * 200 <= a.len() && e <= 1e-3,
            "{name}: {moved} of {} outputs differ from the simulation's, relative L2 {e:e}",
            a.len()
        );
    }
    native
}

#[test]
fn yolov8n_bf16_layers_match_the_simulation_on_their_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("yolo.yml");
    std::fs::write(&yaml, YOLO_PREPROCESS).unwrap();
    let model = real_model("yolov8n_nudenet_onnx", "320n.onnx");
    let pkg = dir.path().join("bf16.temblor");
    compile(
        &pkg,
        &model,
        &["--input", "images:1x3x320x320", "--precision", "bf16"],
    );
    let g = temblor_ir::package::load(&pkg).expect("package loads");
    let config = PreprocessConfig::load(&yaml).unwrap();
    let photo = shared().join("images/astronaut.png");
    let inputs = config.inputs(&photo, &g).expect("preprocessed").inputs;
    let native = assert_bf16_layers_match(&pkg, &inputs);
    assert!(native >= 50, "only {native} convolutions ran in bf16");
}

fn picodet(dir: &Path, precision: &str) -> PathBuf {
    let model = shared().join("models/real/picodet_coco_onnx/model.onnx");
    let pkg = dir.join(format!("{precision}.temblor"));
    compile(&pkg, &model, &["--precision", precision]);
    pkg
}

#[test]
fn picodet_bf16_layers_match_the_simulation_on_their_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = picodet(dir.path(), "bf16");
    let case = shared().join("models/real/picodet_coco_onnx/chelsea");
    let npy = |name: &str| {
        let (shape, values) = read_f32(&case.join(name));
        Tensor::f32(shape, values)
    };
    let inputs = vec![
        ("image".to_string(), npy("input_image.npy")),
        ("scale_factor".to_string(), npy("input_scale_factor.npy")),
    ];
    let native = assert_bf16_layers_match(&pkg, &inputs);
    assert!(native >= 40, "only {native} convolutions ran in bf16");
}

/// PicoDet's bf16 plan run natively and as written agrees with the fp32 model equally over the
/// shared photos: detection agreement AP (fp32's detections scoring 0.3 or more as ground truth)
/// within 0.005, and at least 0.9.
#[test]
fn picodet_bf16_native_keeps_the_simulated_agreement() {
    let dir = tempfile::tempdir().unwrap();
    let bf16 = temblor_ir::package::load(&picodet(dir.path(), "bf16")).expect("package loads");
    let fp32 = temblor_ir::package::load(&picodet(dir.path(), "fp32")).expect("package loads");
    let preprocess = real_model("picodet_coco_paddle", "infer_cfg.yml");
    let config = PreprocessConfig::load(&preprocess).expect("infer_cfg.yml");
    let photos = images_in(&shared().join("images")).unwrap();
    let detect = |g: &Graph, int8: Int8Execution| -> Vec<Vec<eval::Detection>> {
        let options = PrepareOptions {
            int8,
            ..PrepareOptions::default()
        };
        let plan = prepare(g, &Device::Cpu, &options).expect("plan builds");
        photos
            .iter()
            .map(|photo| {
                let inputs = config.inputs(photo, g).expect("preprocessed").inputs;
                let outs = plan.run_once(&inputs).expect("plan runs");
                eval::detections_from_outputs(&outs).expect("detections")
            })
            .collect()
    };
    let reference = detect(&fp32, Int8Execution::Native);
    assert!(
        reference.iter().any(|d| d.iter().any(|d| d.score >= 0.3)),
        "no confident fp32 detection to agree with"
    );
    let ap = |execution| eval::agreement(&reference, &detect(&bf16, execution), 0.3).ap;
    let (native, simulated) = (ap(Int8Execution::Native), ap(Int8Execution::Simulate));
    println!("agreement AP with fp32: native {native:.4}, simulated {simulated:.4}");
    assert!(
        (native - simulated).abs() <= 0.005 && native >= 0.9,
        "agreement AP: native {native:.4}, simulated {simulated:.4}"
    );
}
