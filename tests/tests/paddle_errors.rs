//! Bad Paddle models: each is exit 2 with a message naming the variable or op at fault, and no
//! output left behind.

use std::path::{Path, PathBuf};
use temblor_tests::{output, shared, temblor};

fn basic() -> PathBuf {
    shared().join("models/paddle/paddle_basic")
}

/// A model directory holding `program` as model.pdmodel and `params` as model.pdiparams.
fn model_dir(program: &[u8], params: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.pdmodel");
    std::fs::write(&model, program).unwrap();
    std::fs::write(dir.path().join("model.pdiparams"), params).unwrap();
    (dir, model)
}

fn compile_fails(model: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (code, _, err) = output(temblor().arg("compile").arg(model).arg("-o").arg(&out));
    assert_eq!(code, 2, "expected exit 2, stderr: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.exists(), "output left behind");
    err
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replaces the last occurrence of `from` with `to` (same length, so the protobuf stays valid).
fn replace_last(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes
        .windows(from.len())
        .rposition(|w| w == from)
        .unwrap_or_else(|| panic!("{from:?} not in the program"));
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

#[test]
fn truncated_params_name_the_variable() {
    let params = read(basic().join("model.pdiparams"));
    let (_dir, model) = model_dir(
        &read(basic().join("model.pdmodel")),
        &params[..params.len() / 2],
    );
    let err = compile_fails(&model);
    assert!(err.contains("the parameters end inside '"), "{err}");
}

#[test]
fn params_of_another_model_are_refused() {
    let other = read(shared().join("models/paddle/yolov3_r18vd_dcn/model.pdiparams"));
    let (_dir, model) = model_dir(&read(basic().join("model.pdmodel")), &other);
    let err = compile_fails(&model);
    assert!(
        err.contains("parameter '") && err.contains("another model"),
        "{err}"
    );
}

#[test]
fn a_program_reading_a_missing_variable_is_refused() {
    // The concat is the last op to read relu_0.tmp_0; make it read a variable nothing declares.
    let program = replace_last(
        &read(basic().join("model.pdmodel")),
        b"relu_0.tmp_0",
        b"relu_9.tmp_0",
    );
    let (_dir, model) = model_dir(&program, &read(basic().join("model.pdiparams")));
    let err = compile_fails(&model);
    assert!(
        err.contains("'relu_9.tmp_0'") && err.contains("op 'concat'"),
        "{err}"
    );
}

#[test]
fn unknown_ops_are_named() {
    // An OpDesc's type is field 3, a length-delimited string: tag 0x1a, then its length.
    let program = replace_last(
        &read(basic().join("model.pdmodel")),
        b"\x1a\x05relu6",
        b"\x1a\x05relu7",
    );
    let (_dir, model) = model_dir(&program, &read(basic().join("model.pdiparams")));
    let err = compile_fails(&model);
    assert!(err.contains("unsupported Paddle ops: relu7"), "{err}");
}

#[test]
fn inspect_shows_paddle_facts() {
    let (code, text, err) = output(temblor().arg("inspect").arg(basic().join("model.pdmodel")));
    assert_eq!(code, 0, "{err}");
    for fact in [
        "program_version: 2006002",
        "block 0: parent -1, 24 ops",
        "feed: image",
        "fetch: save_infer_model/scale_0.tmp_0",
    ] {
        assert!(text.contains(fact), "missing '{fact}' in:\n{text}");
    }
}
