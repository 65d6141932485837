//! Shared support for temblor's tests: where the binary, the Python references, the models and
//! the shared material are, and how to compare tensors.

#![forbid(unsafe_code)]

pub mod builder;
pub mod detections;
pub mod observe;
pub mod paddle_cases;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared` beside the checkout (or `$TEMBLOR_SHARED`).
pub fn shared() -> PathBuf {
    std::env::var_os("TEMBLOR_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared"))
}

/// A fetched real model: `$TEMBLOR_MODELS/<name>/<file>`.
pub fn real_model(name: &str, file: &str) -> PathBuf {
    let dir = std::env::var_os("TEMBLOR_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/temblor/models"));
    let path = dir.join(name).join(file);
    assert!(
        path.is_file(),
        "{} is missing: run `../shared/models/fetch.sh {name}` (scripts/test.sh does)",
        path.display()
    );
    path
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// The Python of the test environment (`scripts/setup-python.sh`).
pub fn python() -> PathBuf {
    let venv = std::env::var_os("TEMBLOR_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/temblor/venv"));
    let py = venv.join("bin/python");
    assert!(
        py.is_file(),
        "{} is missing: run scripts/setup-python.sh (scripts/test.sh does)",
        py.display()
    );
    py
}

/// The ONNX backend node test suite shipped in the onnx wheel of the test environment.
pub fn node_suite() -> PathBuf {
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

/// The `temblor` binary built beside this test executable (`cargo build --bin temblor`, which
/// scripts/test.sh runs before the tests).
pub fn temblor() -> Command {
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("temblor"))
        .expect("target directory");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build --bin temblor` first",
        bin.display()
    );
    Command::new(bin)
}

/// Runs a command and returns (exit code, stdout, stderr).
pub fn output(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("spawn");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs onnxruntime on `model` with `inputs` (name, .npy path); outputs land in `out_dir`.
pub fn ort_reference(model: &Path, inputs: &[(&str, PathBuf)], out_dir: &Path) {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/scripts/ort_run.py"))
        .arg(model)
        .arg(out_dir);
    for (name, path) in inputs {
        cmd.arg(format!("{name}={}", path.display()));
    }
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "onnxruntime reference failed: {err}");
}

/// One graph output, temblor's values beside onnxruntime's (written to `path`).
pub struct Compared {
    pub path: PathBuf,
    pub ours: Vec<f32>,
    pub theirs: Vec<f32>,
}

/// Runs `target` (a package or a model) with `temblor run` and `model` with onnxruntime on the
/// same inputs, and pairs every output onnxruntime wrote with temblor's (shapes checked equal,
/// at least one output); the caller judges the values by its own tolerance.
pub fn run_both(
    target: &Path,
    model: &Path,
    inputs: &[(&str, PathBuf)],
    dir: &Path,
) -> Vec<Compared> {
    run_both_with(target, model, inputs, dir, &[])
}

/// [`run_both`], with `args` added to `temblor run`.
pub fn run_both_with(
    target: &Path,
    model: &Path,
    inputs: &[(&str, PathBuf)],
    dir: &Path,
    args: &[&str],
) -> Vec<Compared> {
    let (ours, theirs) = (dir.join("temblor_out"), dir.join("ort_out"));
    let _ = std::fs::remove_dir_all(&ours);
    let _ = std::fs::remove_dir_all(&theirs);
    std::fs::create_dir_all(&theirs).unwrap();
    let mut cmd = temblor();
    cmd.arg("run").arg(target).arg("-o").arg(&ours).args(args);
    for (name, path) in inputs {
        cmd.arg("--input").arg(format!("{name}={}", path.display()));
    }
    let (code, _, err) = output(&mut cmd);
    assert_eq!(code, 0, "run failed: {err}");
    ort_reference(model, inputs, &theirs);
    let compared: Vec<Compared> = std::fs::read_dir(&theirs)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let mine = ours.join(path.file_name().unwrap());
            let ((shape_a, a), (shape_b, b)) = (read_f32(&mine), read_f32(&path));
            assert_eq!(shape_a, shape_b, "{}: shapes differ", mine.display());
            Compared {
                path,
                ours: a,
                theirs: b,
            }
        })
        .collect();
    assert!(!compared.is_empty(), "onnxruntime wrote no outputs");
    compared
}

/// An f32 .npy file as (shape, values).
pub fn read_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).expect("npy header");
    // References are written C-ordered; a Fortran-ordered one would be read transposed.
    assert!(
        npy.order() == npyz::Order::C,
        "{}: Fortran-ordered; save the reference with np.ascontiguousarray",
        path.display()
    );
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    (shape, npy.into_vec::<f32>().expect("f32 data"))
}

/// A float32, int32 or int64 .npy file as (shape, values widened to f64).
pub fn read_numbers(path: &Path) -> (Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).expect("npy header");
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    let descr = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => panic!("{}: structured dtype {other:?}", path.display()),
    };
    let values = match descr.as_str() {
        "<f4" => npy
            .into_vec::<f32>()
            .expect("f32")
            .into_iter()
            .map(f64::from)
            .collect(),
        "<i4" => npy
            .into_vec::<i32>()
            .expect("i32")
            .into_iter()
            .map(f64::from)
            .collect(),
        "<i8" => npy
            .into_vec::<i64>()
            .expect("i64")
            .into_iter()
            .map(|v| v as f64)
            .collect(),
        other => panic!(
            "{}: dtype {other} is not a number type here",
            path.display()
        ),
    };
    (shape, values)
}

/// `||a - b|| / ||b||`, the relative L2 error of `a` against the reference `b`.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "element counts differ");
    let (mut num, mut den) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        num += (*x as f64 - *y as f64).powi(2);
        den += (*y as f64).powi(2);
    }
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

/// A seeded xorshift generator: the same data on every run and machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// Values in [-1, 1).
    pub fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
            .collect()
    }
}
