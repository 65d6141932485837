//! nvcc, and the host harness it builds from `tests/cuda` (see harness.cu's header for the
//! commands): how a test sends it inputs and compares its answers with the Rust kernels'.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use temblor_tests::{output, python, root};

/// nvcc of the test environment: `<venv>/lib/python3.*/site-packages/nvidia/cu13/bin/nvcc`.
pub(super) fn nvcc() -> Command {
    let venv = python();
    let lib = venv
        .parent()
        .and_then(Path::parent)
        .map(|v| v.join("lib"))
        .expect("the venv's python sits in <venv>/bin");
    let found = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("site-packages/nvidia/cu13/bin/nvcc"))
        .find(|p| p.is_file());
    let nvcc = found.unwrap_or_else(|| {
        panic!(
            "nvcc is missing from {}: run scripts/setup-python.sh, which installs it from PyPI \
             (`pip install -r scripts/requirements.txt`: nvidia-cuda-nvcc and the wheels it needs)",
            lib.display()
        )
    });
    let mut cmd = Command::new(nvcc);
    // Warnings are errors: a host function called from device code is only a warning to nvcc,
    // and would fail at run time on the GPU.
    cmd.args(["-Werror", "all-warnings"]);
    cmd
}

/// The `.cu` files of a folder, sorted.
pub(super) fn cuda_sources(dir: &Path) -> Vec<PathBuf> {
    let mut sources: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    sources.sort();
    sources
}

/// The host harness, built into a temporary directory that lives while a test holds it.
pub(super) struct Harness {
    dir: tempfile::TempDir,
}

impl Harness {
    /// The harness the tests running now share, built when none holds one: nvcc takes seconds
    /// a build, so this process builds it once or a few times rather than once per test, and
    /// test runs sharing a target directory never run each other's build.
    pub(super) fn shared() -> Arc<Harness> {
        static SHARED: Mutex<Weak<Harness>> = Mutex::new(Weak::new());
        // A test that failed to build it leaves the lock poisoned; the next one builds again.
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(harness) = shared.upgrade() {
            return harness;
        }
        let harness = Arc::new(Harness::build());
        *shared = Arc::downgrade(&harness);
        harness
    }

    fn build() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        // No contraction of a multiply and an add into one FMA (GCC's default wherever the
        // instruction set has one, e.g. aarch64): Rust never contracts, and the runtime's kernels
        // are compared with its bit for bit.
        let (code, _, err) = output(
            nvcc()
                .args(["-Xcompiler", "-ffp-contract=off"])
                .arg("-I")
                .arg(root().join("ops_lib/cuda"))
                .arg("-I")
                .arg(root().join("runtime/cuda"))
                .arg("-o")
                .arg(dir.path().join("harness"))
                .args(cuda_sources(&root().join("tests/cuda"))),
        );
        assert_eq!(code, 0, "the host harness does not compile:\n{err}");
        Harness { dir }
    }

    /// Runs `commands` (see harness.cu's header); returns one line of numbers per answer line.
    pub(super) fn run(&self, commands: &str) -> Vec<Vec<f32>> {
        let mut child = Command::new(self.dir.path().join("harness"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the harness");
        // Written from a thread of its own while the answers are read here: the harness answers
        // as it reads, so answers past a pipe's buffer would block it, and with it this write.
        let mut stdin = child.stdin.take().unwrap();
        let out = std::thread::scope(|s| {
            s.spawn(move || stdin.write_all(commands.as_bytes()).unwrap());
            child.wait_with_output().unwrap()
        });
        assert!(
            out.status.success(),
            "harness failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|line| {
                line.split_whitespace()
                    .map(|t| t.parse().unwrap_or_else(|_| panic!("harness printed {t}")))
                    .collect()
            })
            .collect()
    }
}

/// Appends numbers to a harness command (Rust prints the shortest decimal that reads back as the
/// same f32, and the harness reads it with scanf, which rounds correctly).
pub(super) fn push<T: std::fmt::Display>(cmd: &mut String, values: &[T]) {
    for v in values {
        write!(cmd, " {v}").unwrap();
    }
}

/// The harness's values against the Rust kernel's. Both sides run the same f32 operations in the
/// same order, with the same libm for exp, pow and log2 (glibc's: Rust's f32 methods call it
/// too), so on x86-64 they agree to the last bit. The tolerance, 1e-6 of the value (or absolute
/// below 1), leaves room for a host whose libm differs from the one Rust links (a few 1e-8
/// relative); a wrong index, weight, clamp or formula is off by far more (an 8-bit step of a
/// normalized pixel is 0.017, a sample's weight at least 1e-3, a decay or a box coordinate
/// changes in the third digit).
pub(super) fn assert_matches(what: &str, harness: &[f32], rust: &[f32]) {
    assert_eq!(harness.len(), rust.len(), "{what}: value count");
    for (i, (&a, &b)) in harness.iter().zip(rust).enumerate() {
        assert!(
            (a - b).abs() <= 1e-6 * b.abs().max(1.0),
            "{what}: element {i}: harness {a}, Rust kernel {b}"
        );
    }
}

/// Harness commands and the CPU runtime's values for each, checked in one run of the harness.
#[derive(Default)]
pub(super) struct Cases {
    commands: String,
    wants: Vec<(String, Vec<f32>)>,
}

impl Cases {
    /// A case named `what`: its command (without the newline) and the runtime's values.
    pub(super) fn add(&mut self, what: String, command: &str, want: Vec<f32>) {
        self.commands.push_str(command);
        self.commands.push('\n');
        self.wants.push((what, want));
    }

    /// Each answer against the runtime's values bit for bit (any NaN matching any NaN): for
    /// kernels that run the very f32 and f64 operations of the CPU's, in its order, with
    /// runtime/cuda/math.cuh's exp, erf and tanh for its polynomial ones, and no library math
    /// that may round otherwise.
    pub(super) fn assert_bits(self, harness: &Harness) {
        let answers = harness.run(&self.commands);
        assert_eq!(answers.len(), self.wants.len(), "answer lines");
        for ((what, want), got) in self.wants.iter().zip(&answers) {
            assert_eq!(got.len(), want.len(), "{what}: value count");
            for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "{what}: element {i}: harness {a:e} ({:#010x}), CPU runtime {b:e} ({:#010x})",
                    a.to_bits(),
                    b.to_bits()
                );
            }
        }
    }
}
