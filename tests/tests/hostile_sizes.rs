//! Models that claim absurd sizes fail with exit 2 naming the node, quickly and before anything
//! is allocated: a tensor of 10^12 elements, a Resize to 100000x100000, a Tile by 2^40, a Range
//! of 10^12 numbers, external data past the end of its file, a Loop of 2^62 iterations, and the
//! same claims made at run time by data (Tile's repeats, ConstantOfShape's shape as an input,
//! Pad's pads).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use temblor_tests::{output, python, temblor};

/// The hostile models, written by the `onnx` package into `dir`.
const MODELS: &str = r#"
import sys, os
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto as T
d = sys.argv[1]
def save(name, nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(m, os.path.join(d, name + ".onnx"))
def ints(name, v):
    return numpy_helper.from_array(np.array(v, dtype=np.int64), name)
f = lambda n, s: helper.make_tensor_value_info(n, T.FLOAT, s)
i64 = lambda n, s: helper.make_tensor_value_info(n, T.INT64, s)
save("constant_of_shape", [helper.make_node("ConstantOfShape", ["s"], ["c"], name="huge_fill"),
    helper.make_node("Add", ["x", "c"], ["y"], name="add")],
    [f("x", [1])], [f("y", None)], [ints("s", [1000000, 1000000])])
save("resize", [helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], name="huge_resize")],
    [f("x", [1, 1, 4, 4])], [f("y", None)], [ints("sizes", [1, 1, 100000, 100000])])
save("tile", [helper.make_node("Tile", ["x", "r"], ["y"], name="huge_tile")],
    [f("x", [1, 2])], [f("y", None)], [ints("r", [1 << 40, 1])])
save("range", [helper.make_node("Range", ["a", "b", "c"], ["y"], name="huge_range")],
    [], [i64("y", None)], [ints("a", 0), ints("b", 10**12), ints("c", 1)])
w = T(name="w", data_type=T.FLOAT, dims=[4])
w.data_location = T.EXTERNAL
for k, v in [("location", "w.bin"), ("offset", str(10**9)), ("length", "16")]:
    e = w.external_data.add(); e.key = k; e.value = v
open(os.path.join(d, "w.bin"), "wb").write(b"\0" * 16)
save("external", [helper.make_node("Add", ["x", "w"], ["y"], name="add_w")],
    [f("x", [4])], [f("y", [4])], [w])
body = helper.make_graph(
    [helper.make_node("Identity", ["c_in"], ["c_out"]), helper.make_node("Identity", ["v"], ["v_out"])],
    "body", [i64("i", []), helper.make_tensor_value_info("c_in", T.BOOL, []), f("v", [1])],
    [helper.make_tensor_value_info("c_out", T.BOOL, []), f("v_out", [1])])
save("loop", [helper.make_node("Loop", ["m", "", "x"], ["y"], name="huge_loop", body=body)],
    [f("x", [1])], [f("y", [1])], [ints("m", 1 << 62)])
save("loop_data", [helper.make_node("Loop", ["m", "", "x"], ["y"], name="data_loop", body=body)],
    [f("x", [1]), i64("m", [])], [f("y", [1])])
save("tile_data", [helper.make_node("Tile", ["x", "r"], ["y"], name="data_tile")],
    [f("x", [1, 2]), i64("r", [2])], [f("y", None)])
save("fill_data", [helper.make_node("ConstantOfShape", ["s"], ["y"], name="data_fill")],
    [i64("s", [2])], [f("y", None)])
save("pad_data", [helper.make_node("Pad", ["x", "p"], ["y"], name="data_pad")],
    [f("x", [1, 2]), i64("p", [4])], [f("y", None)])
np.save(os.path.join(d, "huge_pads.npy"), np.array([0, 0, 1 << 20, 1 << 40], np.int64))
np.save(os.path.join(d, "overflow_pads.npy"), np.array([0, 0, 1, (1 << 63) - 1], np.int64))
np.save(os.path.join(d, "x12.npy"), np.zeros((1, 2), np.float32))
np.save(os.path.join(d, "x1.npy"), np.zeros((1,), np.float32))
np.save(os.path.join(d, "trips.npy"), np.array(1 << 62, np.int64))
np.save(os.path.join(d, "repeats.npy"), np.array([1 << 40, 1], np.int64))
np.save(os.path.join(d, "small_repeats.npy"), np.array([1000, 1], np.int64))
np.save(os.path.join(d, "shape.npy"), np.array([1000000, 1000000], np.int64))
"#;

fn models() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = output(
        std::process::Command::new(python())
            .args(["-c", MODELS])
            .arg(dir.path()),
    );
    assert_eq!(code, 0, "{err}");
    dir
}

/// A command that must fail fast with exit 2 naming `node`, leaving no output.
fn refused(args: &[&str], out: &Path, node: &str) {
    let start = Instant::now();
    let (code, _, err) = output(temblor().args(args).arg("-o").arg(out));
    let took = start.elapsed();
    assert_eq!(code, 2, "{args:?}: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(node),
        "{args:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.exists(), "{args:?}: output left behind");
    // Under a second in a release build; a debug build and a loaded CI machine get headroom.
    assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
}

fn path(dir: &Path, file: &str) -> String {
    dir.join(file).display().to_string()
}

#[test]
fn absurd_sizes_in_a_model_are_refused_at_compile_time() {
    let dir = models();
    let d = dir.path();
    for (model, node) in [
        ("constant_of_shape", "huge_fill"),
        ("resize", "huge_resize"),
        ("tile", "huge_tile"),
        ("range", "huge_range"),
        ("external", "w.bin"),
    ] {
        let out: PathBuf = d.join(format!("{model}.temblor"));
        refused(&["compile", &path(d, &format!("{model}.onnx"))], &out, node);
    }
}

/// A Loop of 2^62 iterations: its trip count a constant (refused at import, which unrolls
/// loops it knows) or data (refused by the runtime before the first iteration).
#[test]
fn a_loop_past_the_limit_is_refused_before_it_runs() {
    let dir = models();
    let d = dir.path();
    let x = format!("x={}", path(d, "x1.npy"));
    refused(
        &["run", &path(d, "loop.onnx"), "--input", &x],
        &d.join("loop-out"),
        "huge_loop",
    );
    let m = format!("m={}", path(d, "trips.npy"));
    refused(
        &[
            "run",
            &path(d, "loop_data.onnx"),
            "--input",
            &x,
            "--input",
            &m,
        ],
        &d.join("loop-data-out"),
        "data_loop",
    );
}

#[test]
fn absurd_sizes_from_data_are_refused_at_run_time() {
    let dir = models();
    let d = dir.path();
    let x = format!("x={}", path(d, "x12.npy"));
    let r = format!("r={}", path(d, "repeats.npy"));
    refused(
        &[
            "run",
            &path(d, "tile_data.onnx"),
            "--input",
            &x,
            "--input",
            &r,
        ],
        &d.join("tile-out"),
        "data_tile",
    );
    let s = format!("s={}", path(d, "shape.npy"));
    refused(
        &["run", &path(d, "fill_data.onnx"), "--input", &s],
        &d.join("fill-out"),
        "data_fill",
    );
    for (pads, out) in [
        ("huge_pads", "pad-out"),
        ("overflow_pads", "pad-overflow-out"),
    ] {
        let p = format!("p={}", path(d, &format!("{pads}.npy")));
        refused(
            &[
                "run",
                &path(d, "pad_data.onnx"),
                "--input",
                &x,
                "--input",
                &p,
            ],
            &d.join(out),
            "data_pad",
        );
    }
}

/// The limits are settable: a Tile that runs by default is refused under a 1 KiB value limit
/// (its output takes 8000 bytes), naming the flag.
#[test]
fn the_value_limit_is_settable() {
    let dir = models();
    let d = dir.path();
    let x = format!("x={}", path(d, "x12.npy"));
    let r = format!("r={}", path(d, "small_repeats.npy"));
    let model = path(d, "tile_data.onnx");
    let run = |limit: &[&str], out: &str| {
        output(
            temblor()
                .args(["run", &model, "--input", &x, "--input", &r])
                .args(limit)
                .arg("-o")
                .arg(d.join(out)),
        )
    };
    let (code, _, err) = run(&[], "unlimited");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["--max-value-bytes", "1K"], "limited");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("data_tile") && err.contains("--max-value-bytes"),
        "{err}"
    );
}

/// The run's peak is estimated from the inferred shapes: the PP-OCR classifier at 48x192 holds
/// under 1 MiB at once, so it compiles under a 1 MiB peak limit and is refused under 200 KiB,
/// naming the node where the peak is reached and the flag; report.json records the estimate.
#[test]
fn the_peak_limit_is_settable() {
    let model =
        temblor_tests::real_model("ppocr_cls_v2_onnx", "ch_ppocr_mobile_v2.0_cls_infer.onnx");
    let dir = tempfile::tempdir().unwrap();
    let compile = |limit: &str, out: &str| {
        output(
            temblor()
                .arg("compile")
                .arg(&model)
                .args(["--input", "x:1x3x48x192", "--no-verify", "--no-measure"])
                .args(["--max-peak-bytes", limit, "-o"])
                .arg(dir.path().join(out)),
        )
    };
    let (code, _, err) = compile("1M", "fits");
    assert_eq!(code, 0, "{err}");
    let report = std::fs::read(dir.path().join("fits/report.json")).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&report).unwrap();
    let peak = report["memory"]["peak_bytes_estimate"].as_u64().unwrap();
    assert!((200 << 10..1 << 20).contains(&peak), "{}", report["memory"]);
    let (code, _, err) = compile("200K", "refused");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("at node '") && err.contains("--max-peak-bytes"),
        "{err}"
    );
    assert!(!dir.path().join("refused").exists());
}
