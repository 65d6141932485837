//! Values that must be known to compile, resolved after import: a TF-style strided SAME network
//! (auto_pad resolved by shape inference, or by the kernels at run time) and a Resize whose
//! sizes come from another input's shape (PyTorch's `interpolate(size=y.shape[2:])`). Each
//! compiles without `--input`, runs at two sizes, and matches onnxruntime.

use std::path::{Path, PathBuf};
use std::process::Command;
use temblor_tests::{output, python, rel_l2, run_both, temblor};

/// Runs `script` with the test environment's python: it writes `model.onnx` and the inputs of
/// two sizes (`<name>_<k>.npy`) into the directory given as its argument.
fn make(script: &str, dir: &Path) {
    let (code, _, err) = output(Command::new(python()).args(["-c", script]).arg(dir));
    assert_eq!(code, 0, "building the model failed: {err}");
}

/// Runs `target` with temblor and `model` with onnxruntime on `inputs`; every output within
/// relative L2 1e-5.
fn assert_matches(target: &Path, model: &Path, inputs: &[(&str, PathBuf)], dir: &Path) {
    for c in run_both(target, model, inputs, dir) {
        let err = rel_l2(&c.ours, &c.theirs);
        assert!(err < 1e-5, "{}: relative L2 {err:e}", c.path.display());
    }
}

fn compile(model: &Path, out: &Path, dims: &[&str]) {
    let mut cmd = temblor();
    cmd.arg("compile")
        .arg(model)
        .arg("-o")
        .arg(out)
        .arg("--no-measure");
    for d in dims {
        cmd.args(["--input", d]);
    }
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "compile failed: {err}");
}

const SAME: &str = r#"
import sys, onnx, numpy as np
from onnx import helper, numpy_helper, TensorProto as T
d = sys.argv[1]
rng = np.random.default_rng(3)
x = helper.make_tensor_value_info("x", T.FLOAT, ["n", 3, "h", "w"])
y = helper.make_tensor_value_info("y", T.FLOAT, None)
w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
w2 = numpy_helper.from_array(rng.standard_normal((4, 8, 4, 4)).astype(np.float32), "w2")
nodes = [
    helper.make_node("Conv", ["x", "w"], ["c"], strides=[2, 2], auto_pad="SAME_UPPER"),
    helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
    helper.make_node("Conv", ["p", "w2"], ["c2"], strides=[3, 2], auto_pad="SAME_LOWER"),
    helper.make_node("AveragePool", ["c2"], ["y"], kernel_shape=[2, 3], strides=[2, 2], auto_pad="SAME_LOWER"),
]
g = helper.make_graph(nodes, "same", [x], [y], initializer=[w, w2])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), f"{d}/model.onnx")
for k, (h, wd) in enumerate([(37, 50), (64, 29)]):
    np.save(f"{d}/x_{k}.npy", rng.standard_normal((1, 3, h, wd)).astype(np.float32))
"#;

#[test]
fn strided_same_padding_compiles_without_input_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make(SAME, d);
    let model = d.join("model.onnx");
    let pkg = d.join("dynamic.temblor");
    compile(&model, &pkg, &[]);
    for k in 0..2 {
        let x = d.join(format!("x_{k}.npy"));
        assert_matches(&pkg, &model, &[("x", x)], d);
    }
    // With the sizes fixed, shape inference makes the pads explicit.
    let fixed = d.join("fixed.temblor");
    compile(&model, &fixed, &["x:1x3x37x50"]);
    let view = std::fs::read_to_string(fixed.join("optimize.prototxt")).unwrap();
    assert!(!view.contains("same_upper") && !view.contains("same_lower"));
    assert_matches(&fixed, &model, &[("x", d.join("x_0.npy"))], d);
}

const SHAPE_RESIZE: &str = r#"
import sys, onnx, numpy as np
from onnx import helper, numpy_helper, TensorProto as T
d = sys.argv[1]
rng = np.random.default_rng(5)
x = helper.make_tensor_value_info("x", T.FLOAT, [1, 2, "h", "w"])
y = helper.make_tensor_value_info("y", T.FLOAT, [1, 2, "H", "W"])
outs = [helper.make_tensor_value_info(n, T.FLOAT, None) for n in ["lin", "cub"]]
c = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)
nodes = [
    helper.make_node("Shape", ["x"], ["sx"]),
    helper.make_node("Shape", ["y"], ["sy"]),
    helper.make_node("Gather", ["sx", "i01"], ["nc"], axis=0),
    helper.make_node("Gather", ["sy", "i2"], ["h"], axis=0),
    helper.make_node("Gather", ["sy", "i3"], ["w"], axis=0),
    helper.make_node("Unsqueeze", ["h", "ax0"], ["hu"]),
    helper.make_node("Unsqueeze", ["w", "ax0"], ["wu"]),
    helper.make_node("Concat", ["nc", "hu", "wu"], ["sizes"], axis=0),
    helper.make_node("Resize", ["x", "", "", "sizes"], ["up"], mode="linear",
                     coordinate_transformation_mode="pytorch_half_pixel"),
    helper.make_node("Add", ["up", "y"], ["lin"]),
    helper.make_node("Resize", ["x", "", "", "sizes"], ["cub"], mode="cubic",
                     cubic_coeff_a=-0.75, coordinate_transformation_mode="half_pixel"),
]
inits = [c("i01", [0, 1]), c("i2", 2), c("i3", 3), c("ax0", [0])]
g = helper.make_graph(nodes, "shape_resize", [x, y], outs, initializer=inits)
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), f"{d}/model.onnx")
for k, (h, w, H, W) in enumerate([(5, 7, 12, 9), (16, 16, 8, 24)]):
    np.save(f"{d}/x_{k}.npy", rng.standard_normal((1, 2, h, w)).astype(np.float32))
    np.save(f"{d}/y_{k}.npy", rng.standard_normal((1, 2, H, W)).astype(np.float32))
"#;

#[test]
fn resize_to_a_shape_computed_size_compiles_without_input_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make(SHAPE_RESIZE, d);
    let model = d.join("model.onnx");
    let pkg = d.join("dynamic.temblor");
    compile(&model, &pkg, &[]);
    for k in 0..2 {
        let inputs = [
            ("x", d.join(format!("x_{k}.npy"))),
            ("y", d.join(format!("y_{k}.npy"))),
        ];
        assert_matches(&pkg, &model, &inputs, d);
    }
    // With the sizes fixed, folding turns the shape computation into a constant.
    let fixed = d.join("fixed.temblor");
    compile(&model, &fixed, &["x:1x2x5x7", "y:1x2x12x9"]);
    let inputs = [("x", d.join("x_0.npy")), ("y", d.join("y_0.npy"))];
    assert_matches(&fixed, &model, &inputs, d);
}
