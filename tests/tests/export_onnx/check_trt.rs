//! `temblor check-trt` as a command: a file that breaks parser rules exits 1 naming each node
//! and rule, a clean export passes, an unreadable file exits 2. (Each rule's own negative case
//! is a unit test in `export/src/trt_check/tests.rs`.)

use temblor_tests::{output, python, temblor};

/// An opset-20 file with a `linear` GridSample, a RoiAlign without sampling_ratio and an
/// unsorted TopK, made by onnx's helper.
const BROKEN: &str = r#"
import sys, onnx
from onnx import helper as h, TensorProto as T
nodes = [
    h.make_node("GridSample", ["x", "grid"], ["s"], name="gs", mode="linear"),
    h.make_node("RoiAlign", ["x", "rois", "idx"], ["r"], name="roi"),
    h.make_node("TopK", ["v", "k"], ["t", "ti"], name="topk", sorted=0),
]
g = h.make_graph(nodes, "broken",
    [h.make_tensor_value_info("x", T.FLOAT, [1, 2, 4, 4]),
     h.make_tensor_value_info("grid", T.FLOAT, [1, 4, 4, 2]),
     h.make_tensor_value_info("rois", T.FLOAT, [3, 4]),
     h.make_tensor_value_info("idx", T.INT64, [3]),
     h.make_tensor_value_info("v", T.FLOAT, [10])],
    [h.make_tensor_value_info(n, T.FLOAT, None) for n in ("s", "r", "t")],
    [h.make_tensor("k", T.INT64, [1], [3])])
onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 20)]), sys.argv[1])
"#;

#[test]
fn check_trt_names_the_node_and_rule_of_each_broken_rule() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.onnx");
    let (code, _, err) = output(
        std::process::Command::new(python())
            .arg("-c")
            .arg(BROKEN)
            .arg(&file),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = output(temblor().arg("check-trt").arg(&file));
    assert_eq!(code, 1, "{out}{err}");
    for (rule, node) in [
        ("gridsample-mode", "gs"),
        ("roialign-sampling-ratio", "roi"),
        ("topk-unsorted", "topk"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("error") && l.contains(&format!("[{rule}] {node} "))),
            "no {rule} finding on {node}: {out}"
        );
    }
    assert!(err.contains("3 TensorRT parser rule(s) broken"), "{err}");
    let (code, json, _) = output(temblor().arg("check-trt").arg(&file).arg("--json"));
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["errors"], 3, "{report}");
}

#[test]
fn check_trt_refuses_a_file_that_is_not_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("garbage.onnx");
    std::fs::write(&file, b"\xff\xff\xff not a model").unwrap();
    let (code, _, err) = output(temblor().arg("check-trt").arg(&file));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not an ONNX model"), "{err}");
}
