//! The ONNX backend node test suite (shipped in the onnx wheel of the test environment) run
//! through temblor's frontend, shape inference and CPU runtime, then through the optimizer and
//! fp16 legalization. The cases expected to pass as imported are listed in
//! tests/conformance/expected_pass.txt: the test fails when one of them stops passing, or when a
//! case that passes as imported fails optimized; it prints the newly passing cases so the list
//! can grow, and per op how many cases pass in fp16.

use temblor_ir::{Graph, Op, UnaryOp};
use temblor_pipeline::conformance::conformance_stages;
use temblor_tests::{node_suite, root};
use temblor_tools::conformance::{self, Binding, Outcome, PassList, Stage, Tolerance};

#[test]
fn node_suite_cases_in_the_pass_list_pass() {
    let dir = node_suite();
    let cases = conformance::cases(&dir).expect("the node suite is readable");
    assert!(
        cases.len() > 1000,
        "{} holds only {} cases",
        dir.display(),
        cases.len()
    );
    let stages = conformance_stages();
    let results = conformance::run_all(&cases, &stages, Binding::Initializers);
    let list_path = root().join("tests/conformance/expected_pass.txt");
    let list = PassList::read(&list_path).expect("the pass list is readable");
    let drift = list.drift(&results, &stages);
    for name in &drift.newly_passing {
        println!("newly passing (add to the pass list): {name}");
    }
    let passed = results
        .iter()
        .filter(|r| r.outcome == Outcome::Passed)
        .count();
    println!("{passed} of {} cases pass", results.len());
    for stage in &stages {
        let ran: Vec<&Outcome> = results
            .iter()
            .filter_map(|r| r.stages.get(stage.name).and_then(Option::as_ref))
            .collect();
        let passed = ran.iter().filter(|o| ***o == Outcome::Passed).count();
        println!("{}: {passed} of {} cases pass", stage.name, ran.len());
    }
    assert!(
        !drift.is_regression(),
        "{} listed case(s) no longer pass, {} passing case(s) fail a later stage:\n{}",
        drift.regressed.len(),
        drift.stage_failures.len(),
        drift.lines().join("\n")
    );
}

/// Every graph input fed at run time, as onnxruntime's backend runner feeds it: operands
/// temblor once required to be constants (Split sizes, a Reshape target computed from a Shape
/// chain) are resolved by shape inference where static and read by the kernel where not. The
/// floors are the counts reached; issue 15 measured 741 of the vision subset's 949 before.
#[test]
fn node_suite_with_inputs_fed_at_run_time_does_not_regress() {
    const VISION_FLOOR: usize = 934;
    const ALL_FLOOR: usize = 1091;
    let cases = conformance::cases(&node_suite()).expect("the node suite is readable");
    let results = conformance::run_all(&cases, &[], Binding::RunTime);
    let passed = |vision_only: bool| {
        results
            .iter()
            .filter(|r| r.outcome == Outcome::Passed && (r.vision || !vision_only))
            .count()
    };
    let vision = results.iter().filter(|r| r.vision).count();
    println!(
        "run-time inputs: vision {} of {vision}, all {} of {}",
        passed(true),
        passed(false),
        results.len()
    );
    assert_eq!(vision, 949, "the vision subset of onnx 1.22.0's suite");
    assert!(
        passed(true) >= VISION_FLOOR,
        "vision subset: {}",
        passed(true)
    );
    assert!(passed(false) >= ALL_FLOOR, "all cases: {}", passed(false));
}

/// Split sizes and a Reshape target fed as graph inputs, against the node suite's stored
/// outputs (computed by the ONNX reference implementation).
#[test]
fn run_time_split_sizes_and_shapes_match_the_suite() {
    let dir = node_suite();
    for case in [
        "test_split_variable_parts_2d_opset13",
        "test_split_variable_parts_1d_opset18",
        "test_split_zero_size_splits_opset13",
        "test_reshape_negative_dim",
        "test_layer_normalization_4d_axis1_expanded",
    ] {
        let (outcome, _) = conformance::run_case(&dir.join(case), &[], Binding::RunTime);
        assert_eq!(outcome, Outcome::Passed, "{case}");
    }
}

/// A Loop whose trip count and an If whose condition are graph inputs (and the Loops of Range's
/// function body, whose trip count is computed from them) run as Loop and If nodes, their
/// bodies graphs of their own, against the suite's stored outputs.
#[test]
fn loop_and_if_decided_at_run_time_match_the_suite() {
    let dir = node_suite();
    for (case, op) in [
        ("test_if", "If"),
        ("test_loop11", "Loop"),
        ("test_range_float_type_positive_delta_expanded", "Loop"),
        ("test_range_int32_type_negative_delta_expanded", "Loop"),
    ] {
        let (outcome, _) = conformance::run_case(&dir.join(case), &[], Binding::RunTime);
        assert_eq!(outcome, Outcome::Passed, "{case}");
        let imported = temblor_frontend::load_onnx_case(
            &dir.join(case),
            "test_data_set_0",
            temblor_frontend::Binding::RunTime,
        )
        .expect("the case imports");
        assert!(
            imported
                .graph
                .op_counts()
                .iter()
                .any(|(name, _)| name == op),
            "{case}: no {op} node, so it was unrolled"
        );
    }
}

#[test]
fn a_wrong_kernel_result_is_a_failure_not_a_pass() {
    // The comparison itself must be able to fail: run a real case, then check it against the
    // expected outputs of a different case of the same op.
    let dir = node_suite();
    let stages = conformance_stages();
    let (good, at_stages) =
        conformance::run_case(&dir.join("test_relu"), &stages, Binding::RunTime);
    assert_eq!(good, Outcome::Passed);
    for (stage, outcome) in at_stages {
        assert_eq!(outcome, Some(Outcome::Passed), "{stage}");
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let case = tmp.path().join("test_relu");
    std::fs::create_dir_all(case.join("test_data_set_0")).expect("mkdir");
    std::fs::copy(dir.join("test_relu/model.onnx"), case.join("model.onnx")).expect("copy");
    let data = dir.join("test_relu/test_data_set_0");
    std::fs::copy(
        data.join("input_0.pb"),
        case.join("test_data_set_0/input_0.pb"),
    )
    .expect("copy");
    // The input itself as the expected output: relu changes its negative elements.
    std::fs::copy(
        data.join("input_0.pb"),
        case.join("test_data_set_0/output_0.pb"),
    )
    .expect("copy");
    let (bad, _) = conformance::run_case(&case, &stages, Binding::RunTime);
    assert!(
        matches!(bad, Outcome::Failed(_)),
        "a wrong expectation must fail, got {bad:?}"
    );
}

/// A later stage that breaks a passing case is a regression of the run, though the case still
/// passes as imported.
#[test]
fn a_stage_that_breaks_a_passing_case_is_a_regression() {
    fn relu_to_abs(g: &Graph) -> temblor_ir::Result<Option<Graph>> {
        let mut out = g.clone();
        for id in out.node_ids().collect::<Vec<_>>() {
            if out.node(id).op == Op::Unary(UnaryOp::Relu) {
                out.node_mut(id).op = Op::Unary(UnaryOp::Abs);
            }
        }
        Ok(Some(out))
    }
    let broken = [Stage {
        name: "broken",
        lower: relu_to_abs,
        tolerance: Tolerance::SUITE,
        required: true,
    }];
    let results =
        conformance::run_all(&[node_suite().join("test_relu")], &broken, Binding::RunTime);
    assert_eq!(results[0].outcome, Outcome::Passed);
    let list = PassList(["test_relu".to_string()].into());
    let drift = list.drift(&results, &broken);
    assert!(drift.regressed.is_empty());
    assert_eq!(drift.stage_failures.len(), 1, "{:?}", drift.lines());
    assert!(drift.is_regression());
}
