//! `temblor profile` on real detectors (PicoDet COCO, the reduced YOLOv3 DCN): the per-op-type
//! table holds exactly the layers of the compile graph that `temblor compile` writes, the per-op
//! times account for the end-to-end time, and the stage map puts every layer in one stage, NMS
//! in postprocess. A YAML stage file takes each `until` layer with everything upstream of it.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use temblor_ir::{
    BinaryOp, ConvAttrs, DType, GraphOutput, Layout, Op, ResizeAttrs, ResizeCoordinate, ResizeMode,
    ResizeNearest, Shape, TensorType, UnaryOp, ValueRef, Weight,
};
use temblor_tests::builder::Builder;
use temblor_tests::{output, read_numbers, real_model, shared, temblor};
use temblor_tools::profile::StageMap;

/// One layer of `compile.prototxt`.
struct Layer {
    name: String,
    /// The op type `profile` must show: the canonical op, with a conv's fused residual
    /// (`input_3`) and activation spelled as the standalone op (`hard_swish` -> `HardSwish`).
    op_type: String,
    bottoms: Vec<String>,
    tops: Vec<String>,
}

fn quoted<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.trim()
        .strip_prefix(key)?
        .strip_prefix(": \"")?
        .strip_suffix('"')
}

fn camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

fn parse_layers(prototxt: &str) -> Vec<Layer> {
    prototxt
        .split("\nlayer {")
        .skip(1)
        .map(|block| {
            let lines: Vec<&str> = block.lines().collect();
            let all = |key: &str| -> Vec<String> {
                lines
                    .iter()
                    .filter_map(|l| quoted(l, key))
                    .map(String::from)
                    .collect()
            };
            let op = all("op").into_iter().next().expect("layer op");
            let mut op_type = op.clone();
            if op == "Conv" && lines.iter().any(|l| l.trim().starts_with("input_3:")) {
                op_type.push_str("+Add");
            }
            if let Some(a) = all("activation").first() {
                op_type.push('+');
                op_type.push_str(&camel(a));
            }
            Layer {
                name: all("name").into_iter().next().expect("layer name"),
                op_type,
                bottoms: all("bottom"),
                tops: all("top"),
            }
        })
        .collect()
}

/// `temblor compile` with the same input dims profile uses: report.json's compile op counts and
/// the compile view's layers.
fn compile_view(model: &Path, dims: &[String]) -> (BTreeMap<String, u64>, Vec<Layer>) {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("pkg");
    let mut cmd = temblor();
    cmd.arg("compile")
        .arg(model)
        .arg("--no-verify")
        .arg("-o")
        .arg(&dir);
    for d in dims {
        cmd.arg("--input").arg(d);
    }
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "compile {}: {err}", model.display());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let counts = report["views"]["compile"]["op_counts"]
        .as_object()
        .expect("op_counts")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    let layers = parse_layers(&std::fs::read_to_string(dir.join("compile.prototxt")).unwrap());
    (counts, layers)
}

fn profile(model: &Path, inputs: &[String], extra: &[&str]) -> (i32, String, String) {
    let mut cmd = temblor();
    cmd.arg("profile")
        .arg(model)
        .args(["--json", "--iters", "3", "--warmup", "1", "--threads", "2"])
        .args(extra);
    for i in inputs {
        cmd.arg("--input").arg(i);
    }
    output(&mut cmd)
}

fn profile_json(model: &Path, inputs: &[String], extra: &[&str]) -> Value {
    let (code, out, err) = profile(model, inputs, extra);
    assert_eq!(code, 0, "profile {}: {err}", model.display());
    serde_json::from_str(&out).expect("one JSON object")
}

/// `name:DIMS` for every `input_<name>.npy` of a case directory, and `name=FILE` to feed it.
fn case_inputs(case: &Path) -> (Vec<String>, Vec<String>) {
    let mut dims = Vec::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(case).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(name) = file
            .strip_prefix("input_")
            .and_then(|f| f.strip_suffix(".npy"))
        else {
            continue;
        };
        let (shape, _) = read_numbers(&path);
        let shape: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        dims.push(format!("{name}:{}", shape.join("x")));
        files.push(format!("{name}={}", path.display()));
    }
    assert!(!dims.is_empty(), "{}: no inputs", case.display());
    (dims, files)
}

fn yolov3() -> (PathBuf, Vec<String>, Vec<String>) {
    let case = shared().join("models/paddle/yolov3_r18vd_dcn");
    let (dims, files) = case_inputs(&case);
    (case.join("model.pdmodel"), dims, files)
}

/// The table, the time accounting and the stage cover of one profile against its compile view.
fn check_profile(model: &Path, dims: &[String], inputs: &[String], nms: &str) {
    let (counts, layers) = compile_view(model, dims);
    let p = profile_json(model, inputs, &[]);

    let op_types = p["op_types"].as_array().expect("op_types");
    let shown: BTreeMap<String, u64> = op_types
        .iter()
        .map(|t| {
            assert!(t["mean_ms"].as_f64().unwrap() >= 0.0);
            assert!(t["stddev_ms"].as_f64().unwrap() >= 0.0);
            (
                t["op_type"].as_str().unwrap().to_string(),
                t["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shown.len(), op_types.len(), "an op type is listed twice");
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for l in &layers {
        *expected.entry(l.op_type.clone()).or_default() += 1;
    }
    assert_eq!(shown, expected, "{}: op types per run", model.display());
    let mut by_op: BTreeMap<String, u64> = BTreeMap::new();
    for (op_type, n) in &shown {
        let op = op_type.split('+').next().unwrap();
        *by_op.entry(op.to_string()).or_default() += n;
    }
    assert_eq!(by_op, counts, "{}: report.json op counts", model.display());
    assert!(
        shown.keys().any(|t| t.contains('+')),
        "{}: no fused conv shown",
        model.display()
    );

    let total = p["total_ms"].as_f64().unwrap();
    let sum: f64 = op_types
        .iter()
        .map(|t| t["mean_ms"].as_f64().unwrap())
        .sum();
    assert!(total > 0.0);
    assert!(
        (sum - total).abs() <= 0.1 * total,
        "{}: per-op sum {sum} ms vs end-to-end {total} ms",
        model.display()
    );

    let stages = p["stages"].as_array().expect("stages");
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["preprocess", "backbone", "neck", "head", "postprocess"]
    );
    let profiled = p["layers"].as_array().expect("layers");
    for l in profiled {
        let ms = |k: &str| l[k].as_f64().unwrap();
        assert!(
            0.0 <= ms("min_ms") && ms("min_ms") <= ms("median_ms") && ms("min_ms") <= ms("mean_ms"),
            "{}: layer {} times out of order",
            model.display(),
            l["layer"]
        );
    }
    let stage_of: HashMap<&str, &str> = profiled
        .iter()
        .map(|l| (l["layer"].as_str().unwrap(), l["stage"].as_str().unwrap()))
        .collect();
    let in_graph: BTreeSet<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(in_graph.len(), layers.len(), "layer names are not unique");
    assert_eq!(profiled.len(), layers.len());
    assert_eq!(
        stage_of.keys().copied().collect::<BTreeSet<_>>(),
        in_graph,
        "{}: every layer once",
        model.display()
    );
    let per_stage: u64 = stages.iter().map(|s| s["layers"].as_u64().unwrap()).sum();
    assert_eq!(per_stage as usize, layers.len());
    for s in stages {
        let name = s["stage"].as_str().unwrap();
        let n = stage_of.values().filter(|&&v| v == name).count();
        assert_eq!(s["layers"].as_u64().unwrap() as usize, n, "stage {name}");
    }
    let nms_layers: Vec<&Layer> = layers.iter().filter(|l| l.op_type == nms).collect();
    assert!(!nms_layers.is_empty(), "{}: no {nms}", model.display());
    for l in nms_layers {
        assert_eq!(stage_of[l.name.as_str()], "postprocess", "{}", l.name);
    }
    for stage in ["backbone", "head"] {
        assert!(
            stage_of.values().any(|&s| s == stage),
            "{}: empty {stage}",
            model.display()
        );
    }
}

#[test]
fn profile_picodet_coco() {
    let model = real_model("picodet_coco_paddle", "model.pdmodel");
    let dims = ["image:1x3x416x416".to_string(), "scale_factor:1x2".into()];
    check_profile(&model, &dims, &dims, "multiclass_nms3");
}

#[test]
fn profile_picodet_coco_onnx() {
    let model = shared().join("models/real/picodet_coco_onnx/model.onnx");
    let dims = ["image:1x3x416x416".to_string(), "scale_factor:1x2".into()];
    check_profile(&model, &dims, &dims, "NonMaxSuppression");
}

#[test]
fn profile_yolov3_dcn() {
    let (model, dims, files) = yolov3();
    check_profile(&model, &dims, &files, "multiclass_nms3");
}

/// `names` and every layer upstream of them, through the view's bottoms and tops.
fn upstream(layers: &[Layer], names: &[&str]) -> BTreeSet<String> {
    let producer: HashMap<&str, &Layer> = layers
        .iter()
        .flat_map(|l| l.tops.iter().map(move |t| (t.as_str(), l)))
        .collect();
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&Layer> = layers
        .iter()
        .filter(|l| names.contains(&l.name.as_str()))
        .collect();
    while let Some(l) = todo.pop() {
        if seen.insert(l.name.clone()) {
            todo.extend(l.bottoms.iter().filter_map(|b| producer.get(b.as_str())));
        }
    }
    seen
}

#[test]
fn profile_stage_file_takes_layers_upstream_of_until() {
    let (model, dims, files) = yolov3();
    let (_, layers) = compile_view(&model, &dims);
    let first = |op: &str| {
        layers
            .iter()
            .find(|l| l.op_type == op)
            .unwrap_or_else(|| panic!("no {op}"))
            .name
            .as_str()
    };
    let concat = first("Concat");
    let decode = first("yolo_box");
    let last_concat = layers
        .iter()
        .rev()
        .find(|l| l.op_type == "Concat")
        .unwrap()
        .name
        .as_str();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stages.yml");
    std::fs::write(
        &file,
        format!(
            "stages:\n  - name: early\n    until: {concat}\n  - name: middle\n    until: [{decode}, {last_concat}]\n  - name: rest\n"
        ),
    )
    .unwrap();
    let p = profile_json(&model, &files, &["--stages", file.to_str().unwrap()]);

    let early = upstream(&layers, &[concat]);
    let middle: BTreeSet<String> = upstream(&layers, &[decode, last_concat])
        .difference(&early)
        .cloned()
        .collect();
    assert!(!early.is_empty() && !middle.is_empty());
    let expected = |name: &str| {
        if early.contains(name) {
            "early"
        } else if middle.contains(name) {
            "middle"
        } else {
            "rest"
        }
    };
    let profiled = p["layers"].as_array().unwrap();
    assert_eq!(profiled.len(), layers.len());
    for l in profiled {
        let name = l["layer"].as_str().unwrap();
        assert_eq!(l["stage"].as_str().unwrap(), expected(name), "layer {name}");
    }
    let stages: Vec<(&str, u64)> = p["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stage"].as_str().unwrap(), s["layers"].as_u64().unwrap()))
        .collect();
    let rest = layers.len() - early.len() - middle.len();
    assert_eq!(
        stages,
        [
            ("early", early.len() as u64),
            ("middle", middle.len() as u64),
            ("rest", rest as u64)
        ]
    );
}

#[test]
fn profile_stage_file_errors_exit_2_naming_the_layer() {
    let (model, _, files) = yolov3();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stages.yml");
    std::fs::write(
        &file,
        "stages:\n  - name: backbone\n    until: no_such_layer.tmp_0\n  - name: rest\n",
    )
    .unwrap();
    let (code, out, err) = profile(&model, &files, &["--stages", file.to_str().unwrap()]);
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("no_such_layer.tmp_0"), "{err}");
    assert!(err.contains(file.to_str().unwrap()), "{err}");

    std::fs::write(
        &file,
        "stages:\n  - name: rest\n  - name: head\n    until: x\n",
    )
    .unwrap();
    let (code, _, err) = profile(&model, &files, &["--stages", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("'rest'"), "{err}");

    std::fs::write(&file, "stages: [{name: a, untill: x}]\n").unwrap();
    let (code, _, err) = profile(&model, &files, &["--stages", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("untill"), "{err}");
}

/// A float NCHW activation of `c` channels at `hw`x`hw`.
fn nchw(c: usize, hw: usize) -> TensorType {
    TensorType {
        dtype: DType::F32,
        shape: Shape::from_known(&[1, c, hw, hw]),
        layout: Layout::NCHW,
    }
}

fn conv(b: &mut Builder, name: &str, x: ValueRef, out: TensorType) -> ValueRef {
    let attrs = ConvAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        activation: None,
        kernel: [1, 1],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [0; 4],
        group: 1,
        affine: None,
    };
    let w = b.random(&format!("{name}.w"), &[4, 4, 1, 1], Layout::OIHW);
    b.node(name, Op::Conv(attrs), out, &[x, w])
}

/// The inference rules of the module doc on a small FPN: normalization before the first conv,
/// a two-scale backbone whose lateral feeds an upsampling, a merge with a second lateral, a head
/// conv per scale, and sigmoids after them.
#[test]
fn inferred_stages_follow_the_documented_rules() {
    let mut b = Builder::new("fpn", 3);
    let x = b.input("x", nchw(4, 8));
    let mean = b.random("mean", &[1, 4, 1, 1], Layout::NCHW);
    let norm = b.node("norm", Op::Binary(BinaryOp::Sub), nchw(4, 8), &[x, mean]);
    let c1 = conv(&mut b, "c1", norm, nchw(4, 8));
    let c2 = conv(&mut b, "c2", c1, nchw(4, 4));
    let lat = conv(&mut b, "lat", c2, nchw(4, 4));
    let resize = ResizeAttrs::new(
        ResizeMode::Nearest,
        ResizeCoordinate::Asymmetric,
        ResizeNearest::Floor,
    );
    let roi = b.weight("roi", Weight::from_f32(vec![0], &[]), Layout::Any);
    let scales = Weight::from_f32(vec![4], &[1.0, 1.0, 2.0, 2.0]);
    let scales = b.weight("scales", scales, Layout::Any);
    let up = b.node("up", Op::Resize(resize), nchw(4, 8), &[lat, roi, scales]);
    let side = conv(&mut b, "side", c1, nchw(4, 8));
    let cat = b.node("cat", Op::Concat { axis: 1 }, nchw(8, 8), &[up, side]);
    let h8 = conv(&mut b, "h8", cat, nchw(4, 8));
    let h4 = conv(&mut b, "h4", lat, nchw(4, 4));
    for (name, h, hw) in [("s8", h8, 8), ("s4", h4, 4)] {
        let s = b.node(name, Op::Unary(UnaryOp::Sigmoid), nchw(4, hw), &[h]);
        b.g.outputs.push(GraphOutput {
            name: name.into(),
            value: s,
        });
    }
    let map = StageMap::infer(&b.g).unwrap();
    let stage = |v: ValueRef| map.stage_of(v.node).unwrap();
    let want = [
        (norm, "preprocess"),
        (c1, "backbone"),
        (c2, "backbone"),
        (lat, "backbone"),
        (side, "neck"),
        (up, "neck"),
        (cat, "neck"),
        (h8, "head"),
        (h4, "head"),
    ];
    for (v, s) in want {
        assert_eq!(stage(v), s, "{}", b.g.node(v.node).name);
    }
    for o in &b.g.outputs {
        assert_eq!(stage(o.value), "postprocess", "{}", o.name);
    }
    assert_eq!(map.stage_of(x.node), None, "a graph input is no layer");
}

/// The warning every command gives for PicoDet's open batch, naming the input.
fn assert_batch_warning(err: &str) {
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("dynamic batch"))
        .collect();
    assert_eq!(lines.len(), 1, "one warning expected: {err}");
    assert!(
        lines[0].starts_with("warning: ")
            && lines[0].contains("'image' [?, 3, 416, 416]")
            && lines[0].contains("set to 1"),
        "{err}"
    );
}

#[test]
fn a_dynamic_batch_defaults_to_one_with_a_warning() {
    // PaddleDetection exports declare `image` [?, 3, 416, 416]: profile, bench and compile need
    // no --input, as trtexec needs no shapes for such a model.
    let model = real_model("picodet_coco_paddle", "model.pdmodel");
    let (code, out, err) = profile(&model, &[], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("multiclass_nms3"), "{out}");
    assert_batch_warning(&err);

    let (code, out, err) = output(
        temblor()
            .arg("bench")
            .arg(&model)
            .args(["--iters", "1", "--warmup", "0"]),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("image: float32 [1, 3, 416, 416]"), "{out}");
    assert_batch_warning(&err);

    // compile verifies at batch 1 (it skipped verification while the batch was open).
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("picodet.temblor");
    let (code, out, err) = output(
        temblor()
            .arg("compile")
            .arg(&model)
            .arg("--no-measure")
            .arg("-o")
            .arg(&pkg),
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("verified"), "{out}");
    assert_batch_warning(&err);
}
