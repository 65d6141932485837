//! .npy files that coverage-guided fuzzing of the reader found (`fuzz/`, target `npy`; see
//! RELIABILITY.md): a header claiming 3.6 to 4 GB in a file of a few hundred bytes, which the
//! `npyz` crate allocated before reading, and headers of nested brackets that its parser took
//! longer than the fuzzer's 10 s to refuse. Each must be a clear error, at once.

use std::path::Path;

#[test]
fn fuzzer_findings_are_clear_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile_npy");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the findings directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 5, "the five findings in {}", dir.display());
    for path in files {
        let err = temblor_tools::npy::read(&path).expect_err("a hostile file is refused");
        let message = err.to_string();
        // Refused by the header check, before `npyz` sees the file.
        assert!(
            message.contains("past the end of the file") || message.contains("nests brackets"),
            "{}: {message}",
            path.display()
        );
    }
}

/// A well-formed file still reads after the header check, and one whose shape claims more data
/// than it holds is refused before anything is allocated for it.
#[test]
fn the_header_check_keeps_valid_files_and_refuses_short_ones() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let path = dir.path().join("x.npy");
    let t = temblor_runtime::Tensor::f32(vec![2, 3], (0..6).map(|i| i as f32).collect());
    temblor_tools::npy::write(&path, &t).expect("written");
    let back = temblor_tools::npy::read(&path).expect("read back");
    assert_eq!(back.shape, vec![2, 3]);
    let mut bytes = std::fs::read(&path).expect("the file");
    bytes.truncate(bytes.len() - 4);
    std::fs::write(&path, &bytes).expect("truncated");
    let err = temblor_tools::npy::read(&path).expect_err("a short file is refused");
    assert!(err.to_string().contains("corrupt data"), "{err}");
}
