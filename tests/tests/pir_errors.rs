//! Bad Paddle 3 PIR models: each is exit 2 with a message naming the file and what was
//! expected (and the op, where one is at fault), and no output left behind.

use std::path::{Path, PathBuf};
use temblor_tests::{output, shared, temblor};

fn basic(file: &str) -> Vec<u8> {
    let path = shared().join("models/pir/paddle_basic").join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A model directory holding `program` as inference.json and `params` as inference.pdiparams.
fn model_dir(program: &[u8], params: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("inference.json"), program).unwrap();
    std::fs::write(dir.path().join("inference.pdiparams"), params).unwrap();
    let model = dir.path().to_path_buf();
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

/// Replaces the first occurrence of `from` with `to`.
fn replace(text: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = String::from_utf8(text.to_vec()).unwrap();
    assert!(s.contains(from), "{from} not in the program");
    s.replacen(from, to, 1).into_bytes()
}

#[test]
fn random_bytes_named_json_are_not_a_program() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("inference.json");
    std::fs::write(&model, noise).unwrap();
    let err = compile_fails(&model);
    assert!(
        err.contains("inference.json: not a PIR program: the JSON is malformed"),
        "{err}"
    );
}

#[test]
fn truncated_json_says_where_it_ends() {
    let program = basic("inference.json");
    let (_dir, model) = model_dir(&program[..program.len() / 2], &basic("inference.pdiparams"));
    let err = compile_fails(&model);
    assert!(
        err.contains("inference.json: not a PIR program: the JSON is malformed")
            && err.contains("EOF while parsing"),
        "{err}"
    );
}

#[test]
fn a_parameter_file_of_the_wrong_size_is_refused() {
    let params = basic("inference.pdiparams");
    let (_dir, model) = model_dir(&basic("inference.json"), &params[..params.len() - 100]);
    let err = compile_fails(&model);
    assert!(
        err.contains("inference.pdiparams") && err.contains("the parameters end inside '"),
        "{err}"
    );
    let mut longer = params.clone();
    longer.extend_from_slice(&[0; 64]);
    let (_dir, model) = model_dir(&basic("inference.json"), &longer);
    let err = compile_fails(&model);
    assert!(err.contains("64 bytes are left after"), "{err}");
}

/// An op missing an operand (a conv with its filter dropped) is named by block and position.
#[test]
fn an_op_missing_an_operand_is_named() {
    let program = replace(
        &basic("inference.json"),
        r#""I":[{"%":19},{"%":1}]"#,
        r#""I":[{"%":19}]"#,
    );
    let (_dir, model) = model_dir(&program, &basic("inference.pdiparams"));
    let err = compile_fails(&model);
    assert!(
        err.contains("op 'pd_op.conv2d' (block_0, op ")
            && err.contains("input 'Filter' is missing"),
        "{err}"
    );
}

/// Every op without a mapping is listed, with its position, in one message.
#[test]
fn unknown_ops_are_all_reported_at_once() {
    let program = replace(&basic("inference.json"), r#""1.relu""#, r#""1.frobnicate""#);
    let program = replace(&program, r#""1.sigmoid""#, r#""1.unheard_of""#);
    let (_dir, model) = model_dir(&program, &basic("inference.pdiparams"));
    let err = compile_fails(&model);
    assert!(
        err.contains("2 op(s) have no mapping in temblor: pd_op.frobnicate (block_0, op ")
            && err.contains("pd_op.unheard_of (block_0, op "),
        "{err}"
    );
}
