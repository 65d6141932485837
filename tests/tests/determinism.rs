//! The same model and input give bit-identical outputs at any thread count: the CPU runtime's
//! threaded kernels split work by output region, so each element is summed by one thread in
//! one order however many share the work. Checked on two real models at `--threads 1, 2, 4`.

use std::path::Path;
use temblor_tests::{output, real_model, shared, temblor};

/// The output files `run` writes for `model` on `x` with `threads` threads, by name.
fn outputs(model: &Path, x: &Path, threads: usize, dir: &Path) -> Vec<(String, Vec<u8>)> {
    let out = dir.join(format!("threads-{threads}"));
    let (code, _, err) = output(
        temblor()
            .arg("run")
            .arg(model)
            .arg("--input")
            .arg(format!("x={}", x.display()))
            .args(["--threads", &threads.to_string(), "-o"])
            .arg(&out),
    );
    assert_eq!(code, 0, "{err}");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn assert_bit_identical(model: &Path, x: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let one = outputs(model, x, 1, dir.path());
    assert!(!one.is_empty());
    for threads in [2, 4] {
        let many = outputs(model, x, threads, dir.path());
        assert!(
            one == many,
            "{}: outputs at 1 and {threads} threads differ",
            model.display()
        );
    }
}

#[test]
fn ppocr_cls_is_bit_identical_at_any_thread_count() {
    let model = real_model("ppocr_cls_v2_onnx", "ch_ppocr_mobile_v2.0_cls_infer.onnx");
    let x = shared().join("models/real/ppocr_cls_v2_onnx/page_line0/input_x.npy");
    assert_bit_identical(&model, &x);
}

#[test]
fn ppocrv4_det_is_bit_identical_at_any_thread_count() {
    let model = real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx");
    let x = shared().join("models/real/ppocrv4_det_onnx/text_right_2x/input_x.npy");
    assert_bit_identical(&model, &x);
}
