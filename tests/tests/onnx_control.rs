//! ONNX control flow unrolled at import (frontend/src/onnx/control.rs), checked against the
//! outputs the backend node suite stores, as imported, optimized and in fp16: Scan in the
//! linear-attention expansions and the opset-9 Scan cases with every input fed at run time, If
//! and Loop with their control bound as constants; and a Scan whose trip count is an open input
//! extent, which runs as a Loop (and unrolls once `--input` fixes it).

use std::path::Path;
use temblor_ir::{Dim, Op};
use temblor_pipeline::conformance::conformance_stages;
use temblor_tests::{node_suite, python};
use temblor_tools::conformance::{run_case, Binding, Outcome};

const SCAN_CASES: &[&str] = &[
    "test_linear_attention_decode_step_expanded",
    "test_linear_attention_delta_expanded",
    "test_linear_attention_explicit_scale_expanded",
    "test_linear_attention_fp16_expanded",
    "test_linear_attention_gated_delta_beta_scalar_expanded",
    "test_linear_attention_gated_delta_expanded",
    "test_linear_attention_gated_delta_gqa_expanded",
    "test_linear_attention_gated_delta_mqa_expanded",
    "test_linear_attention_gated_expanded",
    "test_linear_attention_gated_per_head_decay_expanded",
    "test_linear_attention_linear_expanded",
    "test_linear_attention_linear_t1_no_past_expanded",
    "test_linear_attention_no_past_explicit_zeros_expanded",
    "test_linear_attention_prefill_with_past_expanded",
    "test_scan9_multi_state",
    "test_scan9_scalar",
    "test_scan9_sum",
    // Opset 8: a batch axis the body does not see, scanned image by image.
    "test_scan_sum",
];

/// Runs each case as imported and through every later stage; all must pass.
fn assert_cases_pass(cases: &[&str], binding: Binding) {
    let suite = node_suite();
    let stages = conformance_stages();
    let mut failures = Vec::new();
    for case in cases {
        let (outcome, later) = run_case(&suite.join(case), &stages, binding);
        if outcome != Outcome::Passed {
            failures.push(format!("{case}: {outcome:?}"));
        }
        for (stage, o) in later {
            if o.as_ref().is_some_and(|o| *o != Outcome::Passed) {
                failures.push(format!("{case} {stage}: {o:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unrolled_scans_match_the_suite() {
    assert_cases_pass(SCAN_CASES, Binding::RunTime);
}

#[test]
fn if_and_loop_with_constant_control_match_the_suite() {
    assert_cases_pass(&["test_if", "test_loop11"], Binding::Initializers);
}

/// test_scan9_sum with its scan input's leading extent (the trip count) left open as `T`.
fn open_extent_scan(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("scan_open.onnx");
    let script = "import onnx, sys\n\
                  m = onnx.load(sys.argv[1])\n\
                  m.graph.input[1].type.tensor_type.shape.dim[0].dim_param = 'T'\n\
                  m.graph.output[1].type.tensor_type.shape.dim[0].dim_param = 'T'\n\
                  onnx.save(m, sys.argv[2])\n";
    let status = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(node_suite().join("test_scan9_sum/model.onnx"))
        .arg(&out)
        .status()
        .expect("python runs");
    assert!(status.success(), "writing {} failed", out.display());
    out
}

/// With the trip count open, the Scan is a Loop over the scan input's run-time extent: it runs
/// the case's own data to the suite's outputs. With `--input` fixing the extent it unrolls.
#[test]
fn scan_over_an_open_extent_runs_as_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let model = open_extent_scan(dir.path());
    let g = temblor_frontend::load(&model, &[]).unwrap();
    assert!(
        g.op_counts().iter().any(|(op, _)| op == "Loop"),
        "{:?}",
        g.op_counts()
    );
    let case = dir.path().join("test_scan9_sum_open");
    std::fs::create_dir(&case).unwrap();
    std::fs::rename(&model, case.join("model.onnx")).unwrap();
    let data = case.join("test_data_set_0");
    std::fs::create_dir(&data).unwrap();
    let suite = node_suite().join("test_scan9_sum/test_data_set_0");
    for entry in std::fs::read_dir(&suite).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, data.join(path.file_name().unwrap())).unwrap();
    }
    let (outcome, _) = run_case(&case, &[], Binding::RunTime);
    assert_eq!(outcome, Outcome::Passed);

    let model = case.join("model.onnx");
    let mut g = temblor_frontend::load(&model, &[("x".into(), vec![4, 2])]).unwrap();
    temblor_infer::infer(&mut g).unwrap();
    assert!(g
        .node_ids()
        .all(|id| !matches!(g.node(id).op, Op::Opaque { .. } | Op::Loop(_))));
    let z = g.outputs.iter().find(|o| o.name == "z").unwrap().value;
    assert_eq!(
        g.value_type(z).shape.0,
        vec![Dim::Known(4), Dim::Known(2)],
        "four passes stacked"
    );
}

/// A Scan over an open extent that reads its input from the end, writes its scan output in
/// reverse and on axis 1: the Loop's gathers, reversal and transpose against onnxruntime.
#[test]
fn a_reversed_scan_over_an_open_extent_matches_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("scan_reversed.onnx");
    let script = "import onnx, sys, numpy as np\n\
                  from onnx import helper\n\
                  m = onnx.load(sys.argv[1])\n\
                  scan = m.graph.node[0]\n\
                  scan.attribute.extend([helper.make_attribute('scan_input_directions', [1]), \
                  helper.make_attribute('scan_output_directions', [1]), \
                  helper.make_attribute('scan_output_axes', [1])])\n\
                  m.graph.input[1].type.tensor_type.shape.dim[0].dim_param = 'T'\n\
                  z = m.graph.output[1].type.tensor_type.shape\n\
                  z.dim[0].dim_value = 2\n\
                  z.dim[1].dim_param = 'T'\n\
                  onnx.checker.check_model(m)\n\
                  onnx.save(m, sys.argv[2])\n\
                  rng = np.random.default_rng(7)\n\
                  np.save(sys.argv[3], np.zeros(2, np.float32))\n\
                  np.save(sys.argv[4], rng.standard_normal((5, 2)).astype(np.float32))\n";
    let (y, x) = (dir.path().join("y.npy"), dir.path().join("x.npy"));
    let status = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(node_suite().join("test_scan9_sum/model.onnx"))
        .args([&model, &y, &x])
        .status()
        .expect("python runs");
    assert!(status.success(), "writing {} failed", model.display());
    let inputs = [("initial", y), ("x", x)];
    for c in temblor_tests::run_both(&model, &model, &inputs, dir.path()) {
        let worst = c
            .ours
            .iter()
            .zip(&c.theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-6, "{}: {worst}", c.path.display());
    }
}
