//! ONNX control flow unrolled at import (frontend/src/onnx/control.rs), checked against the
//! outputs the backend node suite stores, as imported, optimized and in fp16: Scan in the
//! linear-attention expansions and the opset-9 Scan cases with every input fed at run time, If
//! and Loop with their control bound as constants; and a Scan whose trip count is an open input
//! extent, refused until `--input` fixes it.

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

#[test]
fn scan_over_an_open_extent_needs_input_dims() {
    let dir = tempfile::tempdir().unwrap();
    let model = open_extent_scan(dir.path());
    let err = temblor_frontend::load(&model, &[])
        .expect_err("the trip count is unknown")
        .to_string();
    assert!(
        err.contains("node 'Scan_0' (Scan)")
            && err.contains("extent is not known at import")
            && err.contains("--input"),
        "{err}"
    );

    let mut g = temblor_frontend::load(&model, &[("x".into(), vec![4, 2])]).unwrap();
    temblor_infer::infer(&mut g).unwrap();
    assert!(g
        .node_ids()
        .all(|id| !matches!(g.node(id).op, Op::Opaque { .. })));
    let z = g.outputs.iter().find(|o| o.name == "z").unwrap().value;
    assert_eq!(
        g.value_type(z).shape.0,
        vec![Dim::Known(4), Dim::Known(2)],
        "four passes stacked"
    );
}
