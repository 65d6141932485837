//! Inputs that coverage-guided fuzzing (`fuzz/`, RELIABILITY.md) found to crash or hang temblor,
//! each read the way its fuzz target reads it. A file is named `TARGET-KIND-WHAT.onnx`, so a new
//! finding is one more file. The `.npy` findings live with the reader's own tests
//! (`tools/tests/hostile_npy.rs`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use temblor_pipeline::{Options, VerifyMode};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor, TensorData};
use temblor_tests::Rng;

fn findings() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_findings");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("the findings directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    files
}

/// What the `onnx_import` target does: import, then shape inference.
fn import(path: &Path) -> temblor_ir::Result<()> {
    let mut g = temblor_frontend::load(path, &[])?;
    temblor_infer::infer(&mut g)
}

/// What the `end_to_end` target does: compile, prepare, run on the given inputs, or when none
/// are given on zeros of each input's declared shape, as long as every input is static and
/// small (the target runs nothing otherwise, and neither does this).
fn compile_and_run(
    path: &Path,
    inputs: &[(String, Tensor)],
) -> temblor_ir::Result<Vec<(String, Tensor)>> {
    /// The target's `MAX_INPUT_ELEMENTS`.
    const MAX_INPUT_ELEMENTS: usize = 4096;
    let options = Options {
        verify: VerifyMode::Off,
        measure: false,
        default_batch: true,
        ..Options::default()
    };
    let compiled = temblor_pipeline::compile(path, &options)?;
    let g = &compiled.compile;
    let zeros = || -> Option<Vec<(String, Tensor)>> {
        g.inputs
            .iter()
            .map(|&id| {
                let info = g.node(id).outputs.first()?;
                let shape = info.ty.shape.known()?;
                let n = shape
                    .iter()
                    .try_fold(1usize, |a, &d| a.checked_mul(d))
                    .filter(|&n| n <= MAX_INPUT_ELEMENTS)?;
                let bytes = vec![0u8; n * info.ty.dtype.size_bytes()];
                let data = TensorData::from_le_bytes(info.ty.dtype, &bytes)?;
                Some((info.name.clone(), Tensor { shape, data }))
            })
            .collect()
    };
    let made;
    let inputs = match inputs {
        [] => match zeros() {
            Some(z) => {
                made = z;
                &made[..]
            }
            None => return Ok(Vec::new()),
        },
        given => given,
    };
    let plan = prepare(g, &Device::Cpu, &PrepareOptions::default())?;
    Ok(plan.run_once(inputs)?)
}

/// Every finding ends in `Ok` or a bad-input error (exit 2), never a panic or an internal
/// error.
#[test]
fn every_finding_is_ok_or_a_clear_error() {
    let files = findings();
    assert!(files.len() >= 2, "the findings in tests/fuzz_findings");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let result = catch_unwind(AssertUnwindSafe(|| {
            if name.starts_with("onnx_import-") {
                import(&path)
            } else if name.starts_with("end_to_end-") {
                compile_and_run(&path, &[]).map(|_| ())
            } else {
                panic!("{name}: no fuzz target by that name")
            }
        }));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => assert_eq!(e.exit_code(), 2, "{name}: {e}"),
            Err(_) => panic!("{name} panicked"),
        }
    }
}

/// A Slice whose starts outnumber its input's axes, with no axes given, is refused naming the
/// counts (it indexed past the shape).
#[test]
fn slice_starts_past_the_rank_are_refused() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_findings/onnx_import-crash-slice-starts-past-rank.onnx");
    let err = import(&path).expect_err("refused");
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(
        err.to_string().contains("1 starts for an input of rank 0"),
        "{err}"
    );
}

/// A MaxPool whose window (2 x 207,618,047, SAME_UPPER) dwarfs its 32x32 input took minutes
/// counting taps one by one. It runs at once now, and its output is what the ONNX definition
/// gives: each window holds two rows (the second padded away on the last row) and every column.
#[test]
fn a_pool_window_far_larger_than_its_input_runs_and_is_right() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_findings/end_to_end-timeout-maxpool-huge-kernel.onnx");
    let (c, h, w) = (3, 32, 32);
    let x = Rng(7).values(c * h * w);
    let out = compile_and_run(
        &path,
        &[("x".into(), Tensor::f32(vec![1, c, h, w], x.clone()))],
    )
    .expect("runs");
    let y = out[0].1.as_f32().expect("f32 output");
    assert_eq!(out[0].1.shape, vec![1, c, h, w]);
    for ch in 0..c {
        for i in 0..h {
            let rows = &x[(ch * h + i) * w..(ch * h + (i + 2).min(h)) * w];
            let want = rows.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            for j in 0..w {
                assert_eq!(
                    y[(ch * h + i) * w + j],
                    want,
                    "channel {ch}, row {i}, column {j}"
                );
            }
        }
    }
}

/// A GridSample whose input has an empty spatial axis (`X` of 1x1x0x2) clamped its taps to
/// `0..=-1` under border padding, which panics. An empty axis has no cell to read, so every
/// output is zero, as it is for taps outside the input under zero padding.
#[test]
fn grid_sample_over_an_empty_axis_reads_zeros() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_findings/end_to_end-crash-gridsample-border-on-an-empty-axis.onnx");
    let grid = Rng(3).values(2 * 4 * 2);
    let inputs = [
        ("X".to_string(), Tensor::f32(vec![1, 1, 0, 2], Vec::new())),
        ("Grid".to_string(), Tensor::f32(vec![1, 2, 4, 2], grid)),
    ];
    let out = compile_and_run(&path, &inputs).expect("runs");
    assert_eq!(out[0].1.shape, vec![1, 1, 2, 4]);
    assert!(out[0].1.as_f32().expect("f32").iter().all(|&v| v == 0.0));
}
