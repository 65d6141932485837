//! Bad input never panics and never leaves output behind: every case exits 2 with a first
//! stderr line `error: ...` that says what is wrong.

use std::path::Path;
use temblor_tests::{output, python, real_model, shared, temblor, Rng};

/// Compiles `model` into a fresh directory and checks the failure contract; returns stderr.
fn compile_fails(model: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.temblor");
    let (code, _, err) = output(temblor().arg("compile").arg(model).arg("-o").arg(&out));
    assert_eq!(code, 2, "expected exit 2, stderr: {err}");
    assert!(
        err.starts_with("error: "),
        "first line must be 'error: ...': {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "output left behind: {left:?}");
    err
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn missing_file() {
    let err = compile_fails(Path::new("/nonexistent/model.onnx"));
    assert!(err.contains("/nonexistent/model.onnx"), "{err}");
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = compile_fails(&write(dir.path(), "empty.onnx", b""));
    assert!(err.contains("empty.onnx"), "{err}");
}

#[test]
fn random_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = Rng(0x2545F4914F6CDD1D).bytes(4096);
    compile_fails(&write(dir.path(), "random.onnx", &bytes));
}

#[test]
fn truncated_real_model() {
    let model =
        std::fs::read(real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for cut in [model.len() / 2, model.len() - 7, 100] {
        let err = compile_fails(&write(dir.path(), "cut.onnx", &model[..cut]));
        assert!(err.contains("cut.onnx"), "{err}");
    }
}

#[test]
fn unsupported_ops_are_all_listed() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("unknown.onnx");
    let script = format!(
        r#"
import onnx
from onnx import helper, TensorProto as T
x = helper.make_tensor_value_info("x", T.FLOAT, [1, 3, 4, 4])
y = helper.make_tensor_value_info("y", T.FLOAT, [1, 3, 4, 4])
nodes = [
    helper.make_node("Relu", ["x"], ["a"], name="relu"),
    helper.make_node("Hardmax", ["a"], ["b"], name="hardmax_1"),
    helper.make_node("Hardmax", ["b"], ["c"], name="hardmax_2"),
    helper.make_node("Softsign", ["c"], ["y"], name="soft"),
]
g = helper.make_graph(nodes, "g", [x], [y])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), r"{}")
"#,
        model.display()
    );
    let (code, _, err) = output(std::process::Command::new(python()).args(["-c", &script]));
    assert_eq!(code, 0, "{err}");
    let err = compile_fails(&model);
    assert!(
        err.contains("Hardmax") && err.contains("hardmax_1"),
        "{err}"
    );
    assert!(err.contains("Softsign") && err.contains("soft"), "{err}");
}

/// Dropout in training mode drops elements at random: refused at import, naming the node and
/// the op, unless its ratio is a constant 0 (every element kept, so inference).
#[test]
fn training_dropout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("dropout.onnx");
    let script = format!(
        r#"
import onnx
from onnx import helper, TensorProto as T
x = helper.make_tensor_value_info("x", T.FLOAT, [1, 3, 4, 4])
y = helper.make_tensor_value_info("y", T.FLOAT, [1, 3, 4, 4])
inits = [
    helper.make_tensor("ratio", T.FLOAT, [], [0.5]),
    helper.make_tensor("train", T.BOOL, [], [True]),
]
nodes = [helper.make_node("Dropout", ["x", "ratio", "train"], ["y"], name="drop")]
g = helper.make_graph(nodes, "g", [x], [y], inits)
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), r"{}")
"#,
        model.display()
    );
    let (code, _, err) = output(std::process::Command::new(python()).args(["-c", &script]));
    assert_eq!(code, 0, "{err}");
    let err = compile_fails(&model);
    assert!(
        err.contains("'drop'") && err.contains("Dropout") && err.contains("training mode"),
        "{err}"
    );
}

/// An unknown op does not stop `inspect` or the parse view; `run` refuses the model with the
/// same one message as `compile`.
#[test]
fn a_model_with_unknown_ops_is_inspected_and_viewed_but_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("unknown.onnx");
    let script = format!(
        r#"
import onnx
from onnx import helper, TensorProto as T
x = helper.make_tensor_value_info("x", T.FLOAT, [1, 3, 4, 4])
y = helper.make_tensor_value_info("y", T.FLOAT, [1, 3, 4, 4])
nodes = [
    helper.make_node("Foo", ["x"], ["a"], name="foo", domain="com.example", gain=2.5),
    helper.make_node("Relu", ["a"], ["y"], name="relu"),
]
g = helper.make_graph(nodes, "g", [x], [y])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), r"{}")
"#,
        model.display()
    );
    let (code, _, err) = output(std::process::Command::new(python()).args(["-c", &script]));
    assert_eq!(code, 0, "{err}");
    let view = dir.path().join("parse.prototxt");
    let (code, out, err) = output(
        temblor()
            .arg("inspect")
            .arg(&model)
            .arg("--parse-view")
            .arg(&view),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("  Foo: 1") && out.contains("  Relu: 1"),
        "{out}"
    );
    assert!(
        out.contains("com.example:Foo (first at node 'foo')"),
        "{out}"
    );
    let text = std::fs::read_to_string(&view).unwrap();
    assert!(
        text.contains("type: \"Foo\"") && text.contains("gain"),
        "{text}"
    );

    let outs = dir.path().join("outs");
    let (code, _, err) = output(temblor().arg("run").arg(&model).arg("-o").arg(&outs));
    assert_eq!(code, 2, "{err}");
    let want = format!(
        "error: unsupported ops in {}: com.example:Foo (first at node 'foo')",
        model.display()
    );
    assert_eq!(err.trim_end(), want);
    assert!(!outs.exists(), "output directory created on failure");
}

#[test]
fn bad_run_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let model = real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx");
    let not_npy = write(dir.path(), "x.npy", b"not a numpy file");
    let out = dir.path().join("outs");
    for input in [
        format!("x={}", not_npy.display()),
        "x=/nonexistent.npy".into(),
        "x".into(),
    ] {
        let (code, _, err) = output(
            temblor()
                .arg("run")
                .arg(&model)
                .args(["--input", &input, "-o"])
                .arg(&out),
        );
        assert_eq!(code, 2, "--input {input}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(!out.exists(), "output directory created on failure");
    }
}

#[test]
fn bad_input_dims() {
    let model = real_model("picodet_layout_onnx", "layout_cdla.onnx");
    let dir = tempfile::tempdir().unwrap();
    for spec in ["image:1x3x640x640", "nosuch:1x3x800x608", "image:1x3xbad"] {
        let out = dir.path().join("o.temblor");
        let (code, _, err) = output(
            temblor()
                .arg("compile")
                .arg(&model)
                .args(["--input", spec, "-o"])
                .arg(&out),
        );
        assert_eq!(code, 2, "--input {spec}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(!out.exists());
    }
}

/// `temblor preprocess image` must fail with exit 2, a first line `error: ` naming the file
/// and what is wrong (`what`), no panic, and no output written.
fn preprocess_fails(image: &Path, what: &str) {
    let out = image.with_extension("npy");
    let (code, _, err) = output(temblor().arg("preprocess").arg(image).arg("-o").arg(&out));
    assert_eq!(
        code,
        2,
        "{}: expected exit 2, stderr: {err}",
        image.display()
    );
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(&image.display().to_string()), "{err}");
    assert!(err.contains(what), "expected '{what}': {err}");
    assert!(
        !err.contains("panicked") && !err.contains("internal"),
        "{err}"
    );
    assert!(!out.exists(), "output written on failure");
}

/// A standard CRC-32 (the PNG chunk checksum), so the header below is valid in every byte.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn bad_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // A real JPEG (the shared photo, encoded here) cut in half.
    let photo = temblor_ops_lib::preprocess::load_image(&shared().join("images/coffee.png"))
        .expect("coffee.png");
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode(
            &photo.rgb,
            photo.width as u32,
            photo.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    let truncated = write(d, "truncated.jpg", &jpeg[..jpeg.len() / 2]);
    preprocess_fails(&truncated, "truncated JPEG");

    preprocess_fails(&write(d, "empty.jpg", b""), "empty");
    preprocess_fails(
        &write(d, "notes.jpg", b"these are not pixels\n"),
        "not a JPEG or PNG",
    );

    // A PNG signature and an IHDR of 30000 x 30000 RGB, nothing after: refused from the
    // header (27 GB of pixels would be allocated otherwise).
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(30000u32.to_be_bytes());
    ihdr.extend(30000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    preprocess_fails(&write(d, "huge.png", &png), "too large");
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    // `temblor inspect model | head -c 10`: the reader goes away before temblor prints.
    let model = real_model("picodet_layout_onnx", "layout_cdla.onnx");
    let mut child = temblor()
        .arg("inspect")
        .arg(&model)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "stderr: {err}");
    // Ended by SIGPIPE, as `cat` or `grep` would be, or done before it noticed: never an error.
    use std::os::unix::process::ExitStatusExt;
    const SIGPIPE: i32 = 13;
    assert!(
        out.status.success() || out.status.signal() == Some(SIGPIPE),
        "{:?}",
        out.status
    );
}

/// `--device cuda` (issue 23) exits 2 with one line, never a panic, for every command that runs
/// a model: without the CUDA driver, saying so before the model is touched; with a library
/// that is not one (here a stand-in libcuda.so.1, an empty library found through
/// LD_LIBRARY_PATH), naming the driver functions it lacks, which cudarc would have panicked on.
#[test]
fn device_cuda_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("relu.onnx");
    let script = format!(
        r#"
import onnx
from onnx import helper, TensorProto as T
x = helper.make_tensor_value_info("x", T.FLOAT, [1, 3, 4, 4])
y = helper.make_tensor_value_info("y", T.FLOAT, [1, 3, 4, 4])
g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [x], [y])
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), r"{}")
"#,
        model.display()
    );
    let (code, _, err) = output(std::process::Command::new(python()).args(["-c", &script]));
    assert_eq!(code, 0, "{err}");
    let package = dir.path().join("relu.temblor");
    let (code, _, err) = output(temblor().arg("compile").arg(&model).arg("-o").arg(&package));
    assert_eq!(code, 0, "{err}");
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let gt = write(dir.path(), "gt.json", b"{}");

    let fake_driver = dir.path().join("driver");
    std::fs::create_dir(&fake_driver).unwrap();
    let (code, _, err) = output(
        std::process::Command::new("cc")
            .args(["-shared", "-x", "c", "/dev/null", "-o"])
            .arg(fake_driver.join("libcuda.so.1")),
    );
    assert_eq!(code, 0, "building the stand-in driver: {err}");

    let no_driver = "error: no CUDA driver found (libcuda.so.1): --device cuda needs an NVIDIA \
                     GPU and its driver";
    let not_a_driver = "error: the CUDA driver libcuda.so.1 lacks cuInit, ";
    // A machine with NVIDIA's kernel module has its driver library too.
    let has_driver = Path::new("/proc/driver/nvidia").exists();
    let eval = [
        "--images",
        &images.display().to_string(),
        "--gt",
        &gt.display().to_string(),
    ]
    .map(String::from);
    for (command, extra) in [
        ("run", &[][..]),
        ("bench", &[]),
        ("profile", &[]),
        ("eval", &eval),
    ] {
        for stand_in in [false, true] {
            if has_driver && !stand_in {
                // With a GPU these run: scripts/gpu_check.sh checks them there.
                continue;
            }
            let mut cmd = temblor();
            cmd.arg(command)
                .arg(&package)
                .args(extra)
                .args(["--device", "cuda"]);
            if stand_in {
                cmd.env("LD_LIBRARY_PATH", &fake_driver);
            }
            let (code, out, err) = output(&mut cmd);
            let what = format!("{command} --device cuda (stand-in driver: {stand_in})");
            assert_eq!(code, 2, "{what}: {err}");
            assert!(out.is_empty(), "{what}: {out}");
            let want = if !stand_in && !has_driver {
                no_driver
            } else {
                not_a_driver
            };
            assert!(
                err.starts_with(want),
                "{what}: expected '{want}', got: {err}"
            );
            assert_eq!(err.lines().count(), 1, "{what}: {err}");
        }
    }
}
