//! The ONNX frontend and shape inference: both real models import, and every value's shape
//! equals what ONNX's own shape inference computes (tests/scripts/onnx_shapes.py); weights come
//! through exactly (external data included); bad files fail with `BadInput` naming the file.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use temblor_infer::StaticDims;
use temblor_ir::{validate, BinaryOp, Dim, Error, Graph, Layout, Op, SplitSizes, UnaryOp};
use temblor_tests::{output, python, real_model, root, Rng};

fn ppocr() -> PathBuf {
    real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx")
}

fn picodet() -> PathBuf {
    real_model("picodet_layout_onnx", "layout_cdla.onnx")
}

fn dims_arg(dims: &[usize]) -> String {
    dims.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

/// load + fix_inputs + infer + validate.
fn import(model: &Path, fixed: &[(&str, &[usize])]) -> Graph {
    let mut g = temblor_frontend::load(model, &[])
        .unwrap_or_else(|e| panic!("load {}: {e}", model.display()));
    let dims: Vec<(String, Vec<usize>)> = fixed
        .iter()
        .map(|(n, d)| (n.to_string(), d.to_vec()))
        .collect();
    temblor_infer::fix_inputs(&mut g, &dims, StaticDims::Keep).unwrap();
    temblor_infer::infer(&mut g).unwrap();
    validate(&g).unwrap();
    g
}

/// ONNX's inferred shapes: value name -> dims (int, symbol string or null).
fn reference(model: &Path, fixed: &[(&str, &[usize])]) -> BTreeMap<String, Vec<Value>> {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/scripts/onnx_shapes.py"))
        .arg(model);
    for (name, dims) in fixed {
        cmd.arg(format!("{name}:{}", dims_arg(dims)));
    }
    let (code, out, err) = output(&mut cmd);
    assert_eq!(code, 0, "onnx_shapes.py failed: {err}");
    serde_json::from_str(&out).expect("onnx_shapes.py prints JSON")
}

/// Every node output must have ONNX's rank, and where ONNX knows an extent it must be ours
/// (ONNX's symbols are its own: graph outputs get the names the file declares, others fresh
/// `unk__N`). Returns how many values were compared.
fn compare(g: &Graph, reference: &BTreeMap<String, Vec<Value>>) -> usize {
    let mut compared = 0;
    for id in g.node_ids() {
        for info in &g.node(id).outputs {
            let Some(want) = reference.get(&info.name) else {
                continue;
            };
            let got = info.ty.shape.dims();
            let ok = got.len() == want.len()
                && got.iter().zip(want).all(|(d, w)| match (d, w) {
                    (Dim::Known(n), Value::Number(m)) => m.as_u64() == Some(*n as u64),
                    (_, Value::Number(_)) => false,
                    _ => true,
                });
            assert!(
                ok,
                "{}: value '{}' is {}, onnx says {want:?}",
                g.describe(id),
                info.name,
                info.ty.shape
            );
            compared += 1;
        }
    }
    compared
}

#[test]
fn ppocr_det_fixed_input_matches_onnx_shapes() {
    let fixed: &[(&str, &[usize])] = &[("x", &[1, 3, 640, 480])];
    let g = import(&ppocr(), fixed);
    let reference = reference(&ppocr(), fixed);
    let outputs: usize = g.node_ids().map(|id| g.node(id).outputs.len()).sum();
    assert_eq!(
        compare(&g, &reference),
        outputs,
        "every value has a reference shape"
    );
    let out = g.value_type(g.outputs[0].value);
    assert_eq!(out.shape.known(), Some(vec![1, 1, 640, 480]));
}

#[test]
fn ppocr_det_dynamic_input_keeps_symbols() {
    let g = import(&ppocr(), &[]);
    let reference = reference(&ppocr(), &[]);
    assert!(compare(&g, &reference) > 500);
    let batch = Dim::Symbol("p2o.DynamicDimension.0".into());
    let out = g.value_type(g.outputs[0].value);
    assert_eq!(out.shape.rank(), 4);
    assert_eq!(
        out.shape.0[0], batch,
        "the batch symbol reaches the output: {}",
        out.shape
    );
    assert_eq!(out.shape.0[1], Dim::Known(1));
}

#[test]
fn ppocr_det_structure() {
    let g = import(&ppocr(), &[("x", &[1, 3, 640, 480])]);
    assert_eq!(g.inputs.len(), 1);
    let x = g.node(g.inputs[0]);
    assert_eq!(x.outputs[0].name, "x");
    assert_eq!(x.outputs[0].ty.layout, Layout::NCHW);
    assert_eq!(g.outputs[0].name, "sigmoid_0.tmp_0");
    assert_eq!(g.weights.len(), 342, "every Constant node is a weight");
    let counts: BTreeMap<String, usize> = g.op_counts().into_iter().collect();
    assert_eq!(counts["Conv"], 62);
    assert_eq!(counts["ConvTranspose"], 2);
    assert_eq!(counts["Clip"], 24);
    assert_eq!(counts["Resize"], 6);
    let mut names = std::collections::HashSet::new();
    for id in g.node_ids() {
        let n = g.node(id);
        assert!(
            names.insert(n.name.clone()),
            "duplicate node name {}",
            n.name
        );
        assert_eq!(n.provenance.origins.len(), 1, "{}", g.describe(id));
        let origin = g.origin(n.provenance.origins[0]).unwrap();
        assert!(origin.file.ends_with("ch_PP-OCRv4_det_infer.onnx"));
        match &n.op {
            Op::Clip { min, max } => {
                assert_eq!(g.inputs_of(id).len(), 1, "Clip bounds are attributes");
                assert_eq!((*min, *max), (0.0, 6.0));
            }
            Op::Resize(_) => {
                // Scales stay an operand (port 2), a constant in this model.
                let scales = g.input(id, 2).and_then(|v| g.constant(v)).unwrap();
                let s = scales.to_f32().unwrap();
                assert!(
                    s[..2] == [1.0, 1.0] && s[2] == s[3] && [2.0, 4.0, 8.0].contains(&s[2]),
                    "{s:?}"
                );
            }
            Op::Conv(_) => {
                let w = g.input(id, 1).unwrap();
                assert_eq!(g.value_type(w).layout, Layout::OIHW);
                assert_eq!(g.value_type(id_out(id)).layout, Layout::NCHW);
            }
            Op::ConvTranspose(_) => {
                assert_eq!(g.value_type(g.input(id, 1).unwrap()).layout, Layout::IOHW)
            }
            Op::BatchNorm { epsilon } => {
                assert!((epsilon - 1e-5).abs() < 1e-9);
                assert_eq!(g.value_type(g.input(id, 1).unwrap()).layout, Layout::C);
            }
            Op::HardSigmoid { beta, .. } => {
                assert_eq!(*beta, 0.5);
                assert!(n.source_attrs.iter().any(|(k, _)| k == "alpha"));
            }
            _ => {}
        }
    }
}

fn id_out(id: temblor_ir::NodeId) -> temblor_ir::ValueRef {
    temblor_ir::ValueRef::new(id, 0)
}

#[test]
fn picodet_layout_matches_onnx_shapes() {
    let fixed: &[(&str, &[usize])] = &[("image", &[1, 3, 800, 608])];
    let g = import(&picodet(), fixed);
    let reference = reference(&picodet(), fixed);
    let outputs: usize = g.node_ids().map(|id| g.node(id).outputs.len()).sum();
    assert_eq!(compare(&g, &reference), outputs);
    assert_eq!(g.outputs.len(), 8);
    let splits: Vec<&Op> = g
        .node_ids()
        .map(|id| &g.node(id).op)
        .filter(|op| matches!(op, Op::Split { .. }))
        .collect();
    assert_eq!(splits.len(), 4);
    assert!(splits.iter().all(
        |op| matches!(op, Op::Split { sizes: SplitSizes::Explicit(s), .. } if s == &[10, 32])
    ));
}

#[test]
fn picodet_layout_without_fixing_is_static() {
    let g = import(&picodet(), &[]);
    let reference = reference(&picodet(), &[]);
    assert!(compare(&g, &reference) > 1000);
}

/// Runs a Python snippet (onnx, numpy available) with `args`; returns its stdout.
fn run_python(script: &str, args: &[&Path]) -> String {
    let mut cmd = Command::new(python());
    cmd.args(["-c", script]).args(args);
    let (code, out, err) = output(&mut cmd);
    assert_eq!(code, 0, "python failed: {err}");
    out
}

const TINY_EXTERNAL: &str = r#"
import json, sys
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto as T
path = sys.argv[1]
w = np.arange(6, dtype=np.float32).reshape(2, 3) * 0.25 - 0.6
b = np.array([1.5, -2.0, 3.25], dtype=np.float32)
s = np.array([3, 2], dtype=np.int64)
inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B"), numpy_helper.from_array(s, "S")]
x = helper.make_tensor_value_info("X", T.FLOAT, ["batch", 3])
w_in = helper.make_tensor_value_info("W", T.FLOAT, [2, 3])
y = helper.make_tensor_value_info("Y", T.FLOAT, [3, 2])
nodes = [
    helper.make_node("Identity", ["W"], ["w_id"]),
    helper.make_node("Constant", [], ["c"], value_floats=[0.5, 0.25, 0.125]),
    helper.make_node("Add", ["w_id", "B"], ["wb"]),
    helper.make_node("Mul", ["wb", "c"], ["wbc"]),
    helper.make_node("Reshape", ["wbc", "S"], ["Y"], name="reshape"),
]
g = helper.make_graph(nodes, "tiny", [x, w_in], [y], initializer=inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
onnx.save(m, path, save_as_external_data=True, all_tensors_to_one_file=True, location="tiny.bin", size_threshold=0)
print(json.dumps({"W": w.ravel().tolist(), "B": b.ravel().tolist(), "S": s.tolist()}))
"#;

#[test]
fn tiny_model_with_external_data() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.onnx");
    let values: BTreeMap<String, Vec<f64>> =
        serde_json::from_str(&run_python(TINY_EXTERNAL, &[&model])).unwrap();
    assert!(
        dir.path().join("tiny.bin").is_file(),
        "the weights are external"
    );
    let mut g = temblor_frontend::load(&model, &[]).unwrap();
    assert_eq!(
        g.inputs.len(),
        1,
        "an input that is also an initializer is a weight"
    );
    assert_eq!(
        g.node(g.inputs[0]).outputs[0].ty.shape.0,
        vec![Dim::Symbol("batch".into()), Dim::Known(3)]
    );
    temblor_infer::infer(&mut g).unwrap();
    validate(&g).unwrap();
    let weight = |name: &str| {
        let id = g
            .node_ids()
            .find(|&id| g.node(id).outputs[0].name == name)
            .unwrap();
        assert!(
            matches!(g.node(id).op, Op::Constant { .. }),
            "{name} is a Constant node"
        );
        g.constant(id_out(id)).unwrap().clone()
    };
    for name in ["W", "B"] {
        let want: Vec<f32> = values[name].iter().map(|&v| v as f32).collect();
        assert_eq!(weight(name).to_f32().unwrap(), want, "{name}");
    }
    let s: Vec<f64> = weight("S")
        .to_i64()
        .unwrap()
        .into_iter()
        .map(|v| v as f64)
        .collect();
    assert_eq!(s, values["S"]);
    assert_eq!(weight("c").to_f32().unwrap(), vec![0.5, 0.25, 0.125]);
    assert_eq!(weight("W").dims, vec![2, 3]);
    let identity = g
        .node_ids()
        .find(|&id| g.node(id).name == "Identity_0")
        .unwrap();
    assert_eq!(g.node(identity).op, Op::Unary(UnaryOp::Identity));
    let out = g.value_type(g.outputs[0].value);
    assert_eq!(g.outputs[0].name, "Y");
    assert_eq!(out.shape.known(), Some(vec![3, 2]));
}

fn bad_input(path: &Path) -> String {
    match temblor_frontend::load(path, &[]) {
        Err(Error::BadInput(msg)) => {
            assert!(
                msg.starts_with(&path.display().to_string())
                    || msg.contains(&path.display().to_string()),
                "{msg}"
            );
            msg
        }
        Err(e) => panic!("expected BadInput for {}, got {e:?}", path.display()),
        Ok(_) => panic!("{} loaded", path.display()),
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn missing_file() {
    let msg = bad_input(Path::new("/nonexistent/model.onnx"));
    assert!(
        msg.starts_with("/nonexistent/model.onnx: cannot open"),
        "{msg}"
    );
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let msg = bad_input(&write(dir.path(), "empty.onnx", b""));
    assert!(
        msg.ends_with("empty.onnx: the model file is empty"),
        "{msg}"
    );
}

#[test]
fn random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = Rng(0x2545F4914F6CDD1D).bytes(4096);
    let msg = bad_input(&write(dir.path(), "random.onnx", &bytes));
    assert!(msg.contains("not an ONNX model"), "{msg}");
}

#[test]
fn truncated_real_model() {
    let model = std::fs::read(ppocr()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for cut in [model.len() / 2, model.len() - 7, 100] {
        let msg = bad_input(&write(dir.path(), "cut.onnx", &model[..cut]));
        assert!(
            msg.contains("corrupt or truncated protobuf"),
            "cut at {cut}: {msg}"
        );
    }
}

/// Unknown ops import as opaque nodes (so the model can be inspected); the stages after import
/// refuse them with one message naming each with its first node.
#[test]
fn unsupported_ops_listed_in_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.onnx");
    let script = r#"
import sys, onnx
from onnx import helper, TensorProto as T
x = helper.make_tensor_value_info("x", T.FLOAT, [1, 3, 4, 4])
y = helper.make_tensor_value_info("y", T.FLOAT, [1, 3, 4, 4])
nodes = [
    helper.make_node("Relu", ["x"], ["a"], name="relu"),
    helper.make_node("Foo", ["a"], ["b"], name="foo_1"),
    helper.make_node("Bar", ["b"], ["c"], name="x"),
    helper.make_node("Foo", ["c"], ["y"], name="foo_2"),
]
g = helper.make_graph(nodes, "g", [x], [y])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
"#;
    run_python(script, &[&model]);
    let g = import(&model, &[]);
    let opaque: Vec<&str> = g
        .node_ids()
        .filter(|&id| matches!(g.node(id).op, Op::Opaque { .. }))
        .map(|id| g.node(id).op.name())
        .collect();
    assert_eq!(opaque, ["Foo", "Bar", "Foo"]);
    let y = g.value_type(g.outputs[0].value);
    assert_eq!(
        y.shape.0,
        vec![Dim::Unknown; 4],
        "declared rank, unknown dims"
    );
    let msg = match temblor_ir::check_supported(&g) {
        Err(Error::BadInput(msg)) => msg,
        other => panic!("expected BadInput, got {other:?}"),
    };
    let want = format!(
        "unsupported ops in {}: Foo (first at node 'foo_1'), Bar (first at node 'x')",
        model.display()
    );
    assert_eq!(msg, want);
}

/// An opset before 7 imports only when every op means there what it means in opset 7: Relu
/// does; Add broadcast differently, so the error names it.
#[test]
fn old_opset_imports_only_unchanged_ops() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import sys, onnx
from onnx import helper, TensorProto as T
x = helper.make_tensor_value_info("x", T.FLOAT, [2])
y = helper.make_tensor_value_info("y", T.FLOAT, [2])
relu = helper.make_node("Relu", ["x"], ["r"])
last = helper.make_node(sys.argv[2], ["r"] * int(sys.argv[3]), ["y"])
g = helper.make_graph([relu, last], "g", [x], [y])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 6)]), sys.argv[1])
"#;
    let model = dir.path().join("relu.onnx");
    run_python(script, &[&model, Path::new("Relu"), Path::new("1")]);
    temblor_frontend::load(&model, &[]).expect("Relu is the same since opset 1");
    let model = dir.path().join("add.onnx");
    run_python(script, &[&model, Path::new("Add"), Path::new("2")]);
    let msg = bad_input(&model);
    assert!(
        msg.contains("opset 6") && msg.contains("do not: Add"),
        "{msg}"
    );
}

#[test]
fn fix_inputs_checks_names_ranks_and_static_dims() {
    let mut g = temblor_frontend::load(&picodet(), &[]).unwrap();
    let usage = |g: &mut Graph, name: &str, dims: &[usize]| match temblor_infer::fix_inputs(
        g,
        &[(name.into(), dims.to_vec())],
        StaticDims::Keep,
    ) {
        Err(Error::Usage(msg)) => msg,
        other => panic!("expected a usage error for {name}:{dims:?}, got {other:?}"),
    };
    let msg = usage(&mut g, "nosuch", &[1, 3, 800, 608]);
    assert!(msg.contains("nosuch") && msg.contains("image"), "{msg}");
    assert!(usage(&mut g, "image", &[1, 3, 800]).contains("rank"));
    assert!(usage(&mut g, "image", &[1, 3, 640, 608]).contains("800"));
    let image = [("image".into(), vec![1, 3, 800, 608])];
    temblor_infer::fix_inputs(&mut g, &image, StaticDims::Keep).unwrap();
    // An explicit override replaces the declared 800.
    let image = [("image".into(), vec![1, 3, 640, 608])];
    temblor_infer::fix_inputs(&mut g, &image, StaticDims::Override).unwrap();
}

#[test]
fn conv_channel_mismatch_names_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("conv.onnx");
    let script = r#"
import sys, onnx
import numpy as np
from onnx import helper, numpy_helper, TensorProto as T
x = helper.make_tensor_value_info("x", T.FLOAT, [1, 4, 8, 8])
y = helper.make_tensor_value_info("y", T.FLOAT, None)
w = numpy_helper.from_array(np.zeros((2, 3, 3, 3), np.float32), "w")
node = helper.make_node("Conv", ["x", "w"], ["y"], name="bad_conv", pads=[1, 1, 1, 1])
g = helper.make_graph([node], "g", [x], [y], initializer=[w])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
"#;
    run_python(script, &[&model]);
    let mut g = temblor_frontend::load(&model, &[]).unwrap();
    match temblor_infer::infer(&mut g) {
        Err(Error::BadInput(msg)) => assert!(
            msg.contains("bad_conv") && msg.contains("4 channels"),
            "{msg}"
        ),
        other => panic!("expected BadInput, got {other:?}"),
    }
}

#[test]
fn external_data_out_of_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.onnx");
    run_python(TINY_EXTERNAL, &[&model]);
    let side = dir.path().join("tiny.bin");
    let bytes = std::fs::read(&side).unwrap();
    std::fs::write(&side, &bytes[..8]).unwrap();
    let msg = bad_input(&model);
    assert!(msg.contains("outside 'tiny.bin'"), "{msg}");
    std::fs::remove_file(&side).unwrap();
    let msg = bad_input(&model);
    assert!(msg.contains("cannot open external data"), "{msg}");
}

#[test]
fn clip_with_computed_bound_imports_as_max_of_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("clip.onnx");
    let script = r#"
import sys, onnx
from onnx import helper, TensorProto as T
x = helper.make_tensor_value_info("x", T.FLOAT, [4])
lo = helper.make_tensor_value_info("lo", T.FLOAT, [])
y = helper.make_tensor_value_info("y", T.FLOAT, [4])
g = helper.make_graph([helper.make_node("Clip", ["x", "lo"], ["y"], name="clamp")], "g", [x, lo], [y])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
"#;
    run_python(script, &[&model]);
    // A bound known only at run time: Clip becomes Max(x, lo), named after the node (the node
    // suite's test_clip_* cases check the values with every input fed at run time).
    let g = temblor_frontend::load(&model, &[]).unwrap();
    let clamp = g
        .node_ids()
        .find(|&id| g.node(id).name == "clamp")
        .expect("a layer named after the Clip");
    assert_eq!(g.node(clamp).op, Op::Binary(BinaryOp::Max));
    let lo = g.input(clamp, 1).unwrap();
    assert!(matches!(g.node(lo.node).op, Op::Input { .. }));
}
