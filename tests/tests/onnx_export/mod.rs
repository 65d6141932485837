//! What the ONNX export tests share: `temblor export`, onnx's checker, and the comparison of
//! onnxruntime running `compile.ort.onnx` with `temblor run` of the same package.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use temblor_ir::{DType, GraphOutput, Op, TensorType, ValueRef};
use temblor_tests::{ort_reference, output, python, read_f32, rel_l2, root, temblor};

/// `temblor export PKG`; returns its stdout and stderr.
pub fn export(pkg: &Path) -> (String, String) {
    let (code, out, err) = output(temblor().arg("export").arg(pkg));
    assert_eq!(code, 0, "export failed: {err}");
    (out, err)
}

/// onnx's checker on `model` (tests/scripts/onnx_check.py) and a summary of the file.
pub fn check(model: &Path) -> serde_json::Value {
    let mut cmd = std::process::Command::new(python());
    cmd.arg(root().join("tests/scripts/onnx_check.py"))
        .arg(model);
    let (code, out, err) = output(&mut cmd);
    assert_eq!(code, 0, "{}: onnx checker failed: {err}", model.display());
    serde_json::from_str(&out).expect("onnx_check.py prints JSON")
}

pub fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a name").to_string())
        .collect()
}

/// The package's graph input and output names, in order.
pub fn package_io(pkg: &Path) -> (Vec<String>, Vec<String>) {
    let g = temblor_ir::package::load(pkg).expect("package loads");
    let inputs = g
        .inputs
        .iter()
        .map(|&id| g.node(id).outputs[0].name.clone())
        .collect();
    (inputs, g.outputs.iter().map(|o| o.name.clone()).collect())
}

/// Checks both files of `pkg` and that they keep the package's input and output names.
pub fn check_exports(pkg: &Path) -> (serde_json::Value, serde_json::Value) {
    let (inputs, outputs) = package_io(pkg);
    let trt = check(&pkg.join("compile.onnx"));
    let ort = check(&pkg.join("compile.ort.onnx"));
    for (what, s) in [("compile.onnx", &trt), ("compile.ort.onnx", &ort)] {
        assert_eq!(names(&s["inputs"]), inputs, "{what}: graph inputs");
        assert_eq!(names(&s["outputs"]), outputs, "{what}: graph outputs");
        // A TensorRT file with bfloat16 weights needs opset 22, the first whose Conv takes them.
        let bf16 = what == "compile.onnx"
            && s["initializer_types"]
                .as_object()
                .is_some_and(|t| t.values().any(|v| v == "BFLOAT16"));
        assert_eq!(s["opsets"][""], if bf16 { 22 } else { 20 }, "{what}: opset");
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
pub fn run_both(pkg: &Path, inputs: &[(&str, PathBuf)], dir: &Path) -> (PathBuf, PathBuf) {
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

/// Every output of onnxruntime within relative L2 `tol` of temblor's.
pub fn assert_dense_agree(ours: &Path, theirs: &Path, tol: f64) {
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
pub fn dump_values(pkg: &Path, inputs: &[(&str, PathBuf)], dir: &Path) -> PathBuf {
    let mut g = temblor_ir::package::load(pkg).expect("package loads");
    let mut taken: BTreeSet<String> = g.outputs.iter().map(|o| o.name.clone()).collect();
    let ids: Vec<_> = g
        .node_ids()
        .filter(|&id| g.node(id).op.is_layer())
        .collect();
    for id in ids {
        for (port, info) in g.node(id).outputs.clone().into_iter().enumerate() {
            let dtype = info.ty.dtype;
            if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16 | DType::I8)
                || !taken.insert(info.name.clone())
            {
                continue;
            }
            let mut value = ValueRef::new(id, port);
            // A graph output is written under the output's name already.
            if g.outputs.iter().any(|o| o.value == value) {
                continue;
            }
            if dtype.is_half() {
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
    temblor_ir::package::write(&g, &dumped).expect("package written");
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
pub fn assert_isolated_agree(pkg: &Path, inputs: &[(&str, PathBuf)], dir: &Path, tol: f64) {
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

pub fn op_count(summary: &serde_json::Value, op: &str) -> u64 {
    summary["ops"][op].as_u64().unwrap_or(0)
}

pub fn initializer_types(summary: &serde_json::Value) -> BTreeSet<String> {
    summary["initializer_types"]
        .as_object()
        .expect("a map")
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}
