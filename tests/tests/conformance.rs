//! The ONNX backend node test suite (shipped in the onnx wheel of the test environment) run
//! through temblor's frontend, shape inference and CPU runtime. The cases expected to pass are
//! listed in tests/conformance/expected_pass.txt: the test fails when one of them stops passing,
//! and prints the newly passing cases so the list can grow.

use std::path::PathBuf;
use std::process::Command;
use temblor_tests::{python, root};
use temblor_tools::conformance::{self, Outcome, PassList};

fn node_suite() -> PathBuf {
    let out = Command::new(python())
        .args([
            "-c",
            "import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), 'backend/test/data/node'))",
        ])
        .output()
        .expect("the test environment's python runs (scripts/setup-python.sh)");
    assert!(out.status.success(), "onnx is not importable");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

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
    let results = conformance::run_all(&cases);
    let list_path = root().join("tests/conformance/expected_pass.txt");
    let list = PassList::read(&list_path).expect("the pass list is readable");
    let drift = list.drift(&results);
    for name in &drift.newly_passing {
        println!("newly passing (add to the pass list): {name}");
    }
    let passed = results
        .iter()
        .filter(|r| r.outcome == Outcome::Passed)
        .count();
    println!("{passed} of {} cases pass", results.len());
    let regressed: Vec<String> = drift
        .regressed
        .iter()
        .map(|(name, why)| format!("{name}: {why}"))
        .collect();
    assert!(
        regressed.is_empty(),
        "{} listed case(s) no longer pass:\n{}",
        regressed.len(),
        regressed.join("\n")
    );
}

#[test]
fn a_wrong_kernel_result_is_a_failure_not_a_pass() {
    // The comparison itself must be able to fail: run a real case, then check it against the
    // expected outputs of a different case of the same op.
    let dir = node_suite();
    let good = conformance::run_case(&dir.join("test_relu"));
    assert_eq!(good, Outcome::Passed);
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
    let bad = conformance::run_case(&case);
    assert!(
        matches!(bad, Outcome::Failed(_)),
        "a wrong expectation must fail, got {bad:?}"
    );
}
