//! A package detects corruption: `package.json` records BLAKE3 hashes of `weights.bin` and of
//! itself, every loader checks them, and a flipped byte anywhere in either file is refused with
//! exit 2 naming the file, never wrong numbers. `--no-verify-hashes` loads it anyway; a package
//! of format 1 (no hashes) loads with a warning; an unknown format is refused, saying why.

use std::path::{Path, PathBuf};
use temblor_ir::{package, BinaryOp, DType, GraphOutput, Layout, Op, Shape, TensorType};
use temblor_tests::builder::Builder;
use temblor_tests::{output, real_model, shared, temblor};

/// The PP-OCR direction classifier (0.5 MB) compiled into `dir/pkg`.
fn compiled(dir: &Path) -> PathBuf {
    let model = real_model("ppocr_cls_v2_onnx", "ch_ppocr_mobile_v2.0_cls_infer.onnx");
    let pkg = dir.join("pkg");
    let (code, _, err) = output(
        temblor()
            .arg("compile")
            .arg(&model)
            .args([
                "--input",
                "x:1x3x48x192",
                "--no-verify",
                "--no-measure",
                "-o",
            ])
            .arg(&pkg),
    );
    assert_eq!(code, 0, "{err}");
    pkg
}

fn run(pkg: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
    let x = shared().join("models/real/ppocr_cls_v2_onnx/page_line0/input_x.npy");
    let (code, _, err) = output(
        temblor()
            .arg("run")
            .arg(pkg)
            .arg("--input")
            .arg(format!("x={}", x.display()))
            .arg("-o")
            .arg(out)
            .args(extra),
    );
    (code, err)
}

fn copy_package(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_bit_in_a_package_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = compiled(dir.path());
    let (code, err) = run(&pkg, &dir.path().join("good"), &[]);
    assert_eq!(code, 0, "{err}");
    for file in [package::WEIGHTS, package::MANIFEST] {
        let len = std::fs::metadata(pkg.join(file)).unwrap().len() as usize;
        for at in [0, len / 3, len / 2, len - 1] {
            let bad = dir.path().join(format!("bad-{file}-{at}"));
            copy_package(&pkg, &bad);
            flip(&bad.join(file), at);
            let out = dir.path().join(format!("out-{file}-{at}"));
            let (code, err) = run(&bad, &out, &[]);
            assert_eq!(code, 2, "{file} byte {at}: {err}");
            assert!(
                err.starts_with("error: ") && err.contains(file) && err.contains("corrupt"),
                "{file} byte {at}: {err}"
            );
            assert!(!out.exists(), "{file} byte {at}: output written");
        }
    }
    // The same weights.bin damage, loaded on purpose, runs.
    let bad = dir.path().join(format!("bad-{}-0", package::WEIGHTS));
    let (code, err) = run(&bad, &dir.path().join("forced"), &["--no-verify-hashes"]);
    assert_eq!(code, 0, "{err}");
}

/// Every byte of a small package's two files, flipped one at a time, is refused by the loader.
#[test]
fn every_flipped_byte_of_a_small_package_is_refused() {
    let mut b = Builder::new("small", 7);
    let ty = TensorType::new(DType::F32, Shape::from_known(&[1, 4]));
    let x = b.input("x", ty.clone());
    let w = b.constant("w", &[1, 4], vec![0.5, -1.0, 2.0, 3.0], Layout::Any);
    let y = b.node("y", Op::Binary(BinaryOp::Add), ty, &[x, w]);
    b.g.outputs.push(GraphOutput {
        value: y,
        name: "y".into(),
    });
    let dir = tempfile::tempdir().unwrap();
    package::write(&b.g, dir.path()).unwrap();
    package::load(dir.path()).expect("the package as written loads");
    for file in [package::MANIFEST, package::WEIGHTS] {
        let path = dir.path().join(file);
        let good = std::fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            let e = package::load(dir.path()).expect_err(&format!("{file} byte {at} flipped"));
            assert_eq!(e.exit_code(), 2, "{file} byte {at}: {e}");
        }
        std::fs::write(&path, good).unwrap();
    }
}

/// `path`'s manifest with the hashes removed and `format` set: a package from another version.
fn rewrite_format(pkg: &Path, format: &str) {
    let path = pkg.join(package::MANIFEST);
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    doc["format"] = format.into();
    let fields = doc.as_object_mut().unwrap();
    for hash in ["temblor_version", "weights_blake3", "manifest_blake3"] {
        fields.remove(hash);
    }
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
}

#[test]
fn packages_of_other_formats_load_with_a_warning_or_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = compiled(dir.path());
    let old = dir.path().join("old");
    copy_package(&pkg, &old);
    rewrite_format(&old, "temblor-package-1");
    let (code, err) = run(&old, &dir.path().join("old-out"), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning") && err.contains("before packages recorded hashes"),
        "{err}"
    );

    let newer = dir.path().join("newer");
    copy_package(&pkg, &newer);
    rewrite_format(&newer, "temblor-package-9");
    let (code, err) = run(&newer, &dir.path().join("newer-out"), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("temblor-package-9") && err.contains("compile the model again"),
        "{err}"
    );
}

/// The manifest records the temblor and format that wrote it.
#[test]
fn the_manifest_records_its_writer() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = compiled(dir.path());
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pkg.join(package::MANIFEST)).unwrap()).unwrap();
    assert_eq!(doc["format"], "temblor-package-2");
    assert_eq!(doc["temblor_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["weights_blake3"].as_str().map(str::len), Some(64));
    assert_eq!(doc["manifest_blake3"].as_str().map(str::len), Some(64));
}

/// How fast a load checks the hashes: `inspect` of a package with 512 MiB of weights, with and
/// without `--no-verify-hashes`; the difference is the hashing. Ignored in the suite (it writes
/// half a gigabyte); `cargo test --test package_integrity -- --ignored --nocapture` prints it
/// for RELIABILITY.md.
#[test]
#[ignore]
fn hash_throughput() {
    let n = 128 << 20;
    let mut b = Builder::new("big", 1);
    let ty = TensorType::new(DType::F32, Shape::from_known(&[n]));
    let x = b.input("x", ty.clone());
    let w = b.constant("w", &[n], vec![0.5; n], Layout::Any);
    let y = b.node("y", Op::Binary(BinaryOp::Add), ty, &[x, w]);
    b.g.outputs.push(GraphOutput {
        value: y,
        name: "y".into(),
    });
    let dir = tempfile::tempdir().unwrap();
    package::write(&b.g, dir.path()).unwrap();
    drop(b);
    let time = |extra: &[&str]| {
        let start = std::time::Instant::now();
        let (code, _, err) = output(temblor().arg("inspect").arg(dir.path()).args(extra));
        assert_eq!(code, 0, "{err}");
        start.elapsed().as_secs_f64()
    };
    let (mut checked, mut unchecked) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        checked = checked.min(time(&[]));
        unchecked = unchecked.min(time(&["--no-verify-hashes"]));
    }
    let bytes = (n * 4) as f64;
    println!(
        "inspect of 512 MiB: {checked:.3} s checked, {unchecked:.3} s unchecked: hashing at {:.2} GB/s",
        bytes / (checked - unchecked) / 1e9
    );
}
