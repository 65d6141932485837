//! The compile graph as ONNX (`temblor export`): `compile.onnx`, TensorRT's build input, and
//! `compile.ort.onnx`, standard ops only. Each file must pass onnx's checker, keep the
//! package's input and output names, and onnxruntime running `compile.ort.onnx` must agree with
//! `temblor run` of the same package on the same inputs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use temblor_ir::{
    Activation, ConvAttrs, DType, GraphOutput, Layout, Op, Shape, TensorType, ValueRef, Weight,
};
use temblor_runtime::{f16, Tensor};
use temblor_tests::builder::Builder;
use temblor_tests::detections::{assert_same_detections, detections};
use temblor_tests::{
    ort_reference, output, python, read_f32, read_numbers, real_model, rel_l2, root, shared,
    temblor,
};

const PPOCR_NORM: [&str; 5] = ["--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5", "--bgr"];

fn compile(model: &Path, out: &Path, args: &[&str]) {
    let mut cmd = temblor();
    cmd.arg("compile")
        .arg(model)
        .arg("-o")
        .arg(out)
        .arg("--no-verify")
        .args(args);
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "compile failed: {err}");
}

/// `temblor export PKG`; returns its stdout and stderr.
fn export(pkg: &Path) -> (String, String) {
    let (code, out, err) = output(temblor().arg("export").arg(pkg));
    assert_eq!(code, 0, "export failed: {err}");
    (out, err)
}

/// onnx's checker on `model` (tests/scripts/onnx_check.py) and a summary of the file.
fn check(model: &Path) -> serde_json::Value {
    let mut cmd = std::process::Command::new(python());
    cmd.arg(root().join("tests/scripts/onnx_check.py"))
        .arg(model);
    let (code, out, err) = output(&mut cmd);
    assert_eq!(code, 0, "{}: onnx checker failed: {err}", model.display());
    serde_json::from_str(&out).expect("onnx_check.py prints JSON")
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a name").to_string())
        .collect()
}

/// The package's graph input and output names, in order.
fn package_io(pkg: &Path) -> (Vec<String>, Vec<String>) {
    let g = temblor::package::load(pkg).expect("package loads");
    let inputs = g
        .inputs
        .iter()
        .map(|&id| g.node(id).outputs[0].name.clone())
        .collect();
    (inputs, g.outputs.iter().map(|o| o.name.clone()).collect())
}

/// Checks both files of `pkg` and that they keep the package's input and output names.
fn check_exports(pkg: &Path) -> (serde_json::Value, serde_json::Value) {
    let (inputs, outputs) = package_io(pkg);
    let trt = check(&pkg.join("compile.onnx"));
    let ort = check(&pkg.join("compile.ort.onnx"));
    for (what, s) in [("compile.onnx", &trt), ("compile.ort.onnx", &ort)] {
        assert_eq!(names(&s["inputs"]), inputs, "{what}: graph inputs");
        assert_eq!(names(&s["outputs"]), outputs, "{what}: graph outputs");
        assert_eq!(s["opsets"][""], 20, "{what}: opset");
        // Small weights stay inline; the rest lies in the one side file.
        let external = names(&s["external"]);
        assert!(
            external.iter().all(|e| *e == format!("{what}.data")),
            "{what}: external data in {external:?}"
        );
    }
    (trt, ort)
}

/// `temblor run PKG` and onnxruntime on `compile.ort.onnx`, same inputs; returns the two output
/// directories, which must hold the same files.
fn run_both(pkg: &Path, inputs: &[(&str, PathBuf)], dir: &Path) -> (PathBuf, PathBuf) {
    let (ours, theirs) = (dir.join("temblor_out"), dir.join("ort_out"));
    std::fs::create_dir_all(&theirs).unwrap();
    let mut cmd = temblor();
    cmd.arg("run").arg(pkg).arg("-o").arg(&ours);
    for (name, path) in inputs {
        cmd.arg("--input").arg(format!("{name}={}", path.display()));
    }
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "run failed: {err}");
    ort_reference(&pkg.join("compile.ort.onnx"), inputs, &theirs);
    let files = |d: &Path| -> BTreeSet<_> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    };
    assert_eq!(files(&ours), files(&theirs), "output files differ");
    assert!(!files(&ours).is_empty(), "no outputs");
    (ours, theirs)
}

/// How far the two runtimes drift apart end to end (printed, not asserted: see
/// [`assert_isolated_agree`]).
fn print_drift(ours: &Path, theirs: &Path) {
    for entry in std::fs::read_dir(theirs).unwrap() {
        let reference = entry.unwrap().path();
        let (_, a) = read_f32(&ours.join(reference.file_name().unwrap()));
        let (_, b) = read_f32(&reference);
        println!(
            "{}: end-to-end relative L2 {:.3e}",
            reference.display(),
            rel_l2(&b, &a)
        );
    }
}

/// Every output of onnxruntime within relative L2 `tol` of temblor's.
fn assert_dense_agree(ours: &Path, theirs: &Path, tol: f64) {
    for entry in std::fs::read_dir(theirs).unwrap() {
        let reference = entry.unwrap().path();
        let mine = ours.join(reference.file_name().unwrap());
        let (shape_a, a) = read_f32(&mine);
        let (shape_b, b) = read_f32(&reference);
        assert_eq!(shape_a, shape_b, "{}: shapes differ", mine.display());
        let err = rel_l2(&b, &a);
        println!("{}: relative L2 {err:.3e}", reference.display());
        assert!(
            err < tol,
            "{}: relative L2 {err:e} >= {tol:e}",
            mine.display()
        );
    }
}

/// Every value temblor computes for `inputs` in `pkg`, as `<dir>/<name>.npy`: the package with
/// each float and int8 value made a graph output (float16 ones through a Cast to float32, which
/// is exact and is the form the onnxruntime file holds them in).
fn dump_values(pkg: &Path, inputs: &[(&str, PathBuf)], dir: &Path) -> PathBuf {
    let mut g = temblor::package::load(pkg).expect("package loads");
    let mut taken: BTreeSet<String> = g.outputs.iter().map(|o| o.name.clone()).collect();
    let ids: Vec<_> = g
        .node_ids()
        .filter(|&id| g.node(id).op.is_layer())
        .collect();
    for id in ids {
        for (port, info) in g.node(id).outputs.clone().into_iter().enumerate() {
            let dtype = info.ty.dtype;
            if !matches!(dtype, DType::F32 | DType::F16 | DType::I8)
                || !taken.insert(info.name.clone())
            {
                continue;
            }
            let mut value = ValueRef::new(id, port);
            // A graph output is written under the output's name already.
            if g.outputs.iter().any(|o| o.value == value) {
                continue;
            }
            if dtype == DType::F16 {
                let ty = TensorType {
                    dtype: DType::F32,
                    ..info.ty.clone()
                };
                let cast = temblor_ir::Node::new(
                    format!("{}.dump", info.name),
                    Op::Cast { to: DType::F32 },
                    vec![temblor_ir::TensorInfo {
                        name: format!("{}.dump", info.name),
                        ty,
                    }],
                );
                let cast = g.add_node(cast);
                g.connect(value, cast, 0);
                value = ValueRef::new(cast, 0);
            }
            g.outputs.push(GraphOutput {
                name: info.name,
                value,
            });
        }
    }
    let dumped = dir.join("dump.temblor");
    std::fs::create_dir_all(&dumped).unwrap();
    temblor::package::write(&g, &dumped).expect("package written");
    let values = dir.join("values");
    let mut cmd = temblor();
    cmd.arg("run").arg(&dumped).arg("-o").arg(&values);
    for (name, path) in inputs {
        cmd.arg("--input").arg(format!("{name}={}", path.display()));
    }
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "run of every value failed: {err}");
    values
}

/// onnxruntime on `compile.ort.onnx` node by node, each node fed temblor's values of its
/// inputs (tests/scripts/ort_isolated.py): every value temblor also computes must agree to
/// relative L2 `tol`. Rounding to float16 or int8 turns last-bit differences of float32
/// summation order into whole steps that later layers amplify, so through a deep fp16 or int8
/// network the two runtimes drift apart by about the plan's own noise; fed the same inputs,
/// each node's export must compute what temblor computes.
fn assert_isolated_agree(pkg: &Path, inputs: &[(&str, PathBuf)], dir: &Path, tol: f64) {
    let values = dump_values(pkg, inputs, dir);
    let mut cmd = std::process::Command::new(python());
    cmd.arg(root().join("tests/scripts/ort_isolated.py"))
        .arg(pkg.join("compile.ort.onnx"))
        .arg(&values);
    for (name, path) in inputs {
        cmd.arg(format!("{name}={}", path.display()));
    }
    let (code, out, err) = output(&mut cmd);
    assert_eq!(code, 0, "ort_isolated.py failed: {err}");
    let errors: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&out).expect("JSON");
    let dumped = std::fs::read_dir(&values).unwrap().count();
    assert_eq!(
        errors.len(),
        dumped,
        "not every value of temblor's was compared: {errors:?}"
    );
    let (worst, e) = errors
        .iter()
        .map(|(k, v)| (k, v.as_f64().unwrap_or(f64::INFINITY)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    println!(
        "{} values compared node by node, worst {worst}: {e:.3e}",
        errors.len()
    );
    assert!(
        e < tol,
        "{worst}: relative L2 {e:e} >= {tol:e} with the same inputs"
    );
}

/// PP-OCRv4 det compiled at 1x3x320x320 with `args`, exported, and its input from page.png.
fn ppocr_det(dir: &Path, args: &[&str]) -> (PathBuf, PathBuf) {
    let model = real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx");
    let x = dir.join("x.npy");
    let mut cmd = temblor();
    cmd.arg("preprocess")
        .arg(shared().join("images/page.png"))
        .args(["--size", "320x320"])
        .args(PPOCR_NORM)
        .arg("-o")
        .arg(&x);
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "preprocess failed: {err}");
    let pkg = dir.join("det.temblor");
    let mut all = vec!["--input", "x:1x3x320x320"];
    all.extend(args);
    compile(&model, &pkg, &all);
    let (out, _) = export(&pkg);
    assert!(
        out.contains("trtexec --onnx=") && out.contains("--stronglyTyped"),
        "no trtexec command in: {out}"
    );
    (pkg, x)
}

fn op_count(summary: &serde_json::Value, op: &str) -> u64 {
    summary["ops"][op].as_u64().unwrap_or(0)
}

fn initializer_types(summary: &serde_json::Value) -> BTreeSet<String> {
    summary["initializer_types"]
        .as_object()
        .expect("a map")
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn ppocrv4_det_fp32_export_matches_temblor_run() {
    let dir = tempfile::tempdir().unwrap();
    let (pkg, x) = ppocr_det(dir.path(), &[]);
    let (trt, ort) = check_exports(&pkg);
    assert!(
        !names(&trt["external"]).is_empty(),
        "no weight is external data"
    );
    // No ops_lib op: both files are the same standard graph.
    assert_eq!(trt["ops"], ort["ops"]);
    assert!(trt["plugins"].as_array().unwrap().is_empty());
    // Fused conv epilogues come out as standard ops.
    assert!(op_count(&ort, "Conv") > 0 && op_count(&ort, "HardSwish") > 0);
    let (ours, theirs) = run_both(&pkg, &[("x", x)], dir.path());
    assert_dense_agree(&ours, &theirs, 1e-4);
}

#[test]
fn ppocrv4_det_fp16_export_matches_temblor_run() {
    let dir = tempfile::tempdir().unwrap();
    let (pkg, x) = ppocr_det(dir.path(), &["--precision", "fp16"]);
    let (trt, ort) = check_exports(&pkg);
    assert!(op_count(&trt, "Cast") >= 2, "no casts around fp16: {trt}");
    // compile.onnx keeps float16; compile.ort.onnx holds it widened and rounded.
    assert!(initializer_types(&trt).contains("FLOAT16"));
    assert!(!initializer_types(&ort).contains("FLOAT16"));
    let inputs = [("x", x)];
    let (ours, theirs) = run_both(&pkg, &inputs, dir.path());
    print_drift(&ours, &theirs);
    assert_isolated_agree(&pkg, &inputs, dir.path(), 1e-3);
}

/// PP-OCRv4 det compiled at `precision`, calibrated on three photos with its preprocessing.
fn ppocr_det_calibrated(dir: &Path, precision: &str, extra: &[&str]) -> (PathBuf, PathBuf) {
    let calib = dir.join("calib");
    std::fs::create_dir(&calib).unwrap();
    for image in ["page.png", "text.png", "camera.png"] {
        std::fs::copy(shared().join("images").join(image), calib.join(image)).unwrap();
    }
    let config = dir.join("preprocess.yml");
    std::fs::write(
        &config,
        "resize:\n  size: [320, 320]\nmean: [0.5, 0.5, 0.5]\nstd: [0.5, 0.5, 0.5]\n\
         channels: bgr\ninputs:\n  image: x\n",
    )
    .unwrap();
    let (calib, config) = (calib.display().to_string(), config.display().to_string());
    let mut args = vec![
        "--precision",
        precision,
        "--calib",
        &calib,
        "--preprocess",
        &config,
    ];
    args.extend(extra);
    ppocr_det(dir, &args)
}

#[test]
fn ppocrv4_det_int8_export_matches_temblor_run() {
    let dir = tempfile::tempdir().unwrap();
    let (pkg, x) = ppocr_det_calibrated(dir.path(), "int8", &[]);
    let (_, ort) = check_exports(&pkg);
    assert!(op_count(&ort, "QuantizeLinear") > 0, "no Q/DQ: {ort}");
    assert!(op_count(&ort, "DequantizeLinear") > op_count(&ort, "QuantizeLinear"));
    assert!(initializer_types(&ort).contains("INT8"));
    let inputs = [("x", x)];
    let (ours, theirs) = run_both(&pkg, &inputs, dir.path());
    print_drift(&ours, &theirs);
    assert_isolated_agree(&pkg, &inputs, dir.path(), 1e-3);
}

/// End to end, onnxruntime and the CPU runtime drift apart on fp16 and int8 plans by about 1e-3
/// (float32 summation order decides some rounding steps, and the network carries each on), so
/// the end-to-end property checked is the one that matters to a user: the two runtimes agree with
/// each other better than the plan agrees with fp32 (by at least a factor of two; measured 0.37
/// of the plan's error on this page), on an auto plan with both fp16 and int8 layers.
#[test]
fn ppocrv4_det_auto_export_drifts_far_less_than_the_plan_errs() {
    let dir = tempfile::tempdir().unwrap();
    let fp32_dir = dir.path().join("fp32");
    std::fs::create_dir(&fp32_dir).unwrap();
    let (fp32, _) = ppocr_det(&fp32_dir, &[]);
    let (pkg, x) = ppocr_det_calibrated(dir.path(), "auto", &["--budget", "rel_l2=0.01"]);
    let (_, ort) = check_exports(&pkg);
    assert!(
        op_count(&ort, "QuantizeLinear") > 0,
        "auto chose no int8 layer: {ort}"
    );
    assert!(
        op_count(&ort, "Cast") > 0,
        "auto chose no fp16 layer: {ort}"
    );
    let inputs = [("x", x)];
    let (ours, theirs) = run_both(&pkg, &inputs, dir.path());
    let (reference, _) = run_both(&fp32, &inputs, &fp32_dir);
    for entry in std::fs::read_dir(&theirs).unwrap() {
        let name = entry.unwrap().file_name();
        let (_, plan) = read_f32(&ours.join(&name));
        let (_, onnxruntime) = read_f32(&theirs.join(&name));
        let (_, full) = read_f32(&reference.join(&name));
        let drift = rel_l2(&onnxruntime, &plan);
        let error = rel_l2(&plan, &full);
        println!("{name:?}: runtimes drift {drift:.3e}, the plan errs {error:.3e} against fp32");
        assert!(
            drift < 0.5 * error && drift < 1e-2,
            "{name:?}: drift {drift:e} against plan error {error:e}"
        );
    }
}

#[test]
fn picodet_twin_export_detections_match_temblor_run() {
    let model = shared().join("models/real/picodet_coco_onnx/model.onnx");
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("picodet.temblor");
    compile(&model, &pkg, &["--input", "image:1x3x416x416"]);
    export(&pkg);
    let (_, ort) = check_exports(&pkg);
    assert_eq!(op_count(&ort, "NonMaxSuppression"), 1);
    for image in ["astronaut", "chelsea", "coffee"] {
        let case = shared().join("models/real/picodet_coco_onnx").join(image);
        let inputs = [
            ("image", case.join("input_image.npy")),
            ("scale_factor", case.join("input_scale_factor.npy")),
        ];
        let run_dir = dir.path().join(image);
        let (ours, theirs) = run_both(&pkg, &inputs, &run_dir);
        let count = "multiclass_nms3_0.tmp_2.npy";
        assert_eq!(
            read_numbers(&ours.join(count)).1,
            read_numbers(&theirs.join(count)).1,
            "{image}: detection counts differ"
        );
        let boxes = "multiclass_nms3_0.tmp_0.npy";
        let swapped = assert_same_detections(
            &detections(&ours.join(boxes)),
            &detections(&theirs.join(boxes)),
            image,
        );
        assert_eq!(
            swapped, 0,
            "{image}: ties at the keep_top_k cut were swapped"
        );
    }
}

#[test]
fn paddle_multiclass_nms_is_a_plugin_node_and_keeps_the_ort_file_out() {
    let model = real_model("picodet_coco_paddle", "model.pdmodel");
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("picodet.temblor");
    compile(&model, &pkg, &[]);
    let (out, err) = export(&pkg);
    assert!(
        err.contains("warning") && err.contains("multiclass_nms3"),
        "no warning naming the op: {err}"
    );
    assert!(!pkg.join("compile.ort.onnx").exists());
    assert!(
        out.contains("--staticPlugins=libtemblor_plugins.so"),
        "the trtexec command loads no plugins: {out}"
    );
    let trt = check(&pkg.join("compile.onnx"));
    let (inputs, outputs) = package_io(&pkg);
    assert_eq!(names(&trt["inputs"]), inputs);
    assert_eq!(names(&trt["outputs"]), outputs);
    let plugins = trt["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 1, "{trt}");
    let p = &plugins[0];
    assert_eq!(p["op_type"], "TemblorMulticlassNms");
    assert_eq!(trt["opsets"][p["domain"].as_str().unwrap()], 1);
    assert_eq!(p["attrs"]["plugin_version"], "1");
    assert_eq!(p["attrs"]["plugin_namespace"], "temblor");
    // The op's own attributes travel with it.
    assert_eq!(p["attrs"]["keep_top_k"], 100);
}

fn f16_weight(dims: &[usize], values: &[f32]) -> Weight {
    Weight {
        dtype: DType::F16,
        dims: dims.to_vec(),
        data: values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect::<Vec<u8>>()
            .into(),
    }
}

fn i8_weight(dims: &[usize], values: &[i8]) -> Weight {
    Weight {
        dtype: DType::I8,
        dims: dims.to_vec(),
        data: values.iter().map(|&v| v as u8).collect::<Vec<u8>>().into(),
    }
}

fn typed(dtype: DType, dims: &[usize]) -> TensorType {
    TensorType {
        dtype,
        shape: Shape::from_known(dims),
        layout: Layout::NCHW,
    }
}

fn conv3x3(activation: Option<Activation>) -> Op {
    Op::Conv(ConvAttrs {
        kernel: [3, 3],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [1, 1, 1, 1],
        group: 1,
        activation,
    })
}

/// A graph in the precision contract's compile form: an fp16 conv (f16 weights, fused Clip)
/// between Casts, then an int8 conv whose input is QuantizeLinear -> DequantizeLinear with a
/// per-tensor scale and whose weight is a per-channel DequantizeLinear of int8 values, with a
/// fused residual add and SiLU. A second output is the graph input itself.
fn precision_graph() -> temblor_ir::Graph {
    let (c_in, c) = (4, 8);
    let mut b = Builder::new("precision", 7);
    let x = b.input("x", typed(DType::F32, &[1, c_in, 8, 8]));
    let to_f16 = b.node(
        "x.to_f16",
        Op::Cast { to: DType::F16 },
        typed(DType::F16, &[1, c_in, 8, 8]),
        &[x],
    );
    let w: Vec<f32> = b.rng.values(c * c_in * 9);
    let w = b.weight("conv_a.w", f16_weight(&[c, c_in, 3, 3], &w), Layout::OIHW);
    let bias: Vec<f32> = b.rng.values(c);
    let bias = b.weight("conv_a.b", f16_weight(&[c], &bias), Layout::C);
    let clip = Activation::Clip { min: 0.0, max: 6.0 };
    let a = b.node(
        "conv_a",
        conv3x3(Some(clip)),
        typed(DType::F16, &[1, c, 8, 8]),
        &[to_f16, w, bias],
    );
    let a32 = b.node(
        "conv_a.to_f32",
        Op::Cast { to: DType::F32 },
        typed(DType::F32, &[1, c, 8, 8]),
        &[a],
    );
    let scale = b.constant("conv_b.input_scale", &[], vec![6.0 / 127.0], Layout::Any);
    let zero = b.weight("conv_b.input_zero", i8_weight(&[], &[0]), Layout::Any);
    let q = b.node(
        "conv_b.input_q",
        Op::QuantizeLinear {
            axis: 1,
            saturate: true,
        },
        typed(DType::I8, &[1, c, 8, 8]),
        &[a32, scale, zero],
    );
    let dq = b.node(
        "conv_b.input_dq",
        Op::DequantizeLinear { axis: 1 },
        typed(DType::F32, &[1, c, 8, 8]),
        &[q, scale, zero],
    );
    let w8: Vec<i8> = b
        .rng
        .bytes(c * c * 9)
        .into_iter()
        .map(|v| v as i8)
        .collect();
    let w8 = b.weight("conv_b.w", i8_weight(&[c, c, 3, 3], &w8), Layout::OIHW);
    let scales: Vec<f32> = (0..c).map(|i| 0.002 + 0.001 * i as f32).collect();
    let scales = b.constant("conv_b.w_scale", &[c], scales, Layout::C);
    let zeros = b.weight("conv_b.w_zero", i8_weight(&[c], &[0; 8]), Layout::C);
    let wdq = b.node(
        "conv_b.weight_dq",
        Op::DequantizeLinear { axis: 0 },
        typed(DType::F32, &[c, c, 3, 3]),
        &[w8, scales, zeros],
    );
    let bias = b.random("conv_b.b", &[c], Layout::C);
    let y = b.node(
        "conv_b",
        conv3x3(Some(Activation::Silu)),
        typed(DType::F32, &[1, c, 8, 8]),
        &[dq, wdq, bias, a32],
    );
    b.g.outputs = vec![
        GraphOutput {
            name: "y".into(),
            value: y,
        },
        GraphOutput {
            name: "x_again".into(),
            value: ValueRef::new(x.node, 0),
        },
    ];
    temblor_ir::validate(&b.g).expect("a valid graph");
    b.g
}

/// The contract's Cast and Q/DQ structure, built by hand: compile.onnx keeps it as it is (f16
/// and int8 initializers, the Casts and Q/DQ nodes unchanged); compile.ort.onnx holds the
/// float16 values widened, each rounded by a Cast pair; onnxruntime runs it as temblor does.
#[test]
fn casts_and_qdq_export_as_they_are_and_match_temblor_run() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("precision.temblor");
    std::fs::create_dir(&pkg).unwrap();
    temblor::package::write(&precision_graph(), &pkg).expect("package written");
    export(&pkg);
    let (trt, ort) = check_exports(&pkg);
    for (op, n) in [
        ("Cast", 2),
        ("QuantizeLinear", 1),
        ("DequantizeLinear", 2),
        ("Conv", 2),
        ("Clip", 1),
        ("Sigmoid", 1),
        ("Identity", 1),
    ] {
        assert_eq!(op_count(&trt, op), n, "{op} in {trt}");
    }
    // Two float16 values (x.to_f16, conv_a), each rounded by a pair of Casts.
    assert_eq!(op_count(&ort, "Cast"), 2 + 2 * 2, "{ort}");
    let types = initializer_types(&trt);
    assert!(
        types.contains("FLOAT16") && types.contains("INT8"),
        "{types:?}"
    );
    let types = initializer_types(&ort);
    assert!(
        !types.contains("FLOAT16") && types.contains("INT8"),
        "{types:?}"
    );
    let x = dir.path().join("x.npy");
    let values = temblor_tests::Rng(3).values(4 * 64);
    let input = Tensor::f32(vec![1, 4, 8, 8], values.iter().map(|v| v * 3.0).collect());
    temblor::npy::write(&x, &input).expect("input written");
    let inputs = [("x", x)];
    let (ours, theirs) = run_both(&pkg, &inputs, dir.path());
    assert_dense_agree(&ours, &theirs, 1e-3);
    assert_isolated_agree(&pkg, &inputs, dir.path(), 1e-3);
}
