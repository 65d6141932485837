//! The ONNX backend node test suite as a conformance check of the frontend, shape inference and
//! CPU runtime: each case is imported, shape-inferred, validated and run, and its outputs are
//! compared with the suite's. A case ends in one of three ways: it passes, it is unsupported
//! (temblor refused it with a clear error: an op, dtype or attribute it does not handle), or it
//! fails (wrong numbers, shape or dtype; an internal error; a panic).

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use temblor_ir::{Graph, GraphOutput};
use temblor_runtime::{prepare, Device, ErrorKind, PrepareOptions, Tensor, TensorData};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum Outcome {
    Passed,
    Unsupported(String),
    Failed(String),
}

#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    /// The case directory's name, `test_<op>_<variant>`.
    pub name: String,
    /// The op type the case tests.
    pub op: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The suite's own tolerances: `|got - want| <= ATOL + RTOL * |want|`, NaN equal to NaN. Every
/// op of the pass list passes with them, so no op has looser ones.
const RTOL: f64 = 1e-3;
const ATOL: f64 = 1e-7;

/// The case directories (`test_*` holding a `model.onnx`) under `dir`, sorted by name.
pub fn cases(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("test_"))
                && p.join("model.onnx").is_file()
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Runs every case, each named after the op it tests.
pub fn run_all(dirs: &[PathBuf]) -> Vec<CaseResult> {
    let types: Vec<Vec<String>> = dirs
        .iter()
        .map(|d| temblor_frontend::onnx_op_types(&d.join("model.onnx")).unwrap_or_default())
        .collect();
    let vocabulary: BTreeSet<&str> = types.iter().flatten().map(String::as_str).collect();
    dirs.iter()
        .zip(&types)
        .map(|(dir, own)| {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let op = op_of(&name, &vocabulary, own);
            CaseResult {
                outcome: run_case(dir),
                name,
                op,
            }
        })
        .collect()
}

/// Runs one case. Never panics: a panic inside temblor is caught and reported as a failure.
pub fn run_case(dir: &Path) -> Outcome {
    std::panic::catch_unwind(AssertUnwindSafe(|| check(dir)))
        .unwrap_or_else(|p| Err(Outcome::Failed(format!("panic: {}", panic_text(&p)))))
        .err()
        .unwrap_or(Outcome::Passed)
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "non-string payload".into())
}

/// `Err` holds the non-passing outcome.
fn check(dir: &Path) -> Result<(), Outcome> {
    let unsupported = |e: crate::Error| Outcome::Unsupported(e.to_string());
    let mut case = temblor_frontend::load_onnx_case(dir, "test_data_set_0").map_err(unsupported)?;
    temblor_infer::infer(&mut case.graph).map_err(unsupported)?;
    temblor_ir::validate(&case.graph).map_err(|e| Outcome::Failed(format!("invalid IR: {e}")))?;
    let runtime = |e: temblor_runtime::RuntimeError| match e.kind {
        ErrorKind::Unsupported => Outcome::Unsupported(e.to_string()),
        ErrorKind::BadInput | ErrorKind::Internal => Outcome::Failed(e.to_string()),
    };
    let plan = prepare(&case.graph, &Device::Cpu, &PrepareOptions::default()).map_err(runtime)?;
    let mut inputs = Vec::with_capacity(case.inputs.len());
    for (name, w) in &case.inputs {
        inputs.push((name.clone(), Tensor::from_weight(w).map_err(runtime)?));
    }
    let got = plan.run_once(&inputs).map_err(runtime)?;
    for (out, (_, t)) in case.graph.outputs.iter().zip(&got) {
        inferred_type_fits(&case.graph, out, t).map_err(Outcome::Failed)?;
    }
    for ((name, want), (_, got)) in case.outputs.iter().zip(&got) {
        let want = Tensor::from_weight(want).map_err(runtime)?;
        compare(&want, got).map_err(|e| Outcome::Failed(format!("output '{name}': {e}")))?;
    }
    Ok(())
}

/// Shape inference's type of a graph output agrees with what the kernels computed: the same
/// dtype, rank and every dim it claims to know.
fn inferred_type_fits(g: &Graph, out: &GraphOutput, t: &Tensor) -> Result<(), String> {
    let ty = g.value_type(out.value);
    let dims = ty.shape.dims();
    let fits = ty.dtype == t.dtype()
        && dims.len() == t.shape.len()
        && dims
            .iter()
            .zip(&t.shape)
            .all(|(d, &n)| d.known().is_none_or(|k| k == n));
    if fits {
        Ok(())
    } else {
        Err(format!(
            "output '{}': shape inference gave {} {}, the kernels {} {:?}",
            out.name,
            ty.dtype,
            ty.shape,
            t.dtype(),
            t.shape
        ))
    }
}

fn compare(want: &Tensor, got: &Tensor) -> Result<(), String> {
    if want.dtype() != got.dtype() {
        return Err(format!(
            "dtype {} expected, got {}",
            want.dtype(),
            got.dtype()
        ));
    }
    if want.shape != got.shape {
        return Err(format!(
            "shape {:?} expected, got {:?}",
            want.shape, got.shape
        ));
    }
    let (w, g) = (as_f64(&want.data), as_f64(&got.data));
    let float = want.dtype().is_float();
    let close = |w: f64, g: f64| {
        if float {
            w == g || (w.is_nan() && g.is_nan()) || (w - g).abs() <= ATOL + RTOL * w.abs()
        } else {
            w == g
        }
    };
    let differ: Vec<usize> = (0..w.len()).filter(|&i| !close(w[i], g[i])).collect();
    match differ.first() {
        None => Ok(()),
        Some(&i) => Err(format!(
            "element {i}: expected {}, got {} ({} of {} elements differ)",
            w[i],
            g[i],
            differ.len(),
            w.len()
        )),
    }
}

/// Values widened for comparison; int64 beyond 2^53 loses its low bits, which no suite case
/// depends on.
fn as_f64(d: &TensorData) -> Vec<f64> {
    match d {
        TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
        TensorData::F64(v) => v.clone(),
        TensorData::I8(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::U8(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I16(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::U16(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::U32(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::U64(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
    }
}

/// The op type a case tests: the longest op type of the suite whose snake-case name prefixes the
/// case name (`test_gather_elements_0` -> GatherElements, `test_layer_normalization_2d_expanded`
/// -> LayerNormalization although its model holds the expansion); else the model's first op.
fn op_of(name: &str, vocabulary: &BTreeSet<&str>, own: &[String]) -> String {
    let rest = name.strip_prefix("test_").unwrap_or(name);
    vocabulary
        .iter()
        .filter(|t| {
            let s = snake(t);
            rest == s || rest.starts_with(&format!("{s}_"))
        })
        .max_by_key(|t| t.len())
        .map(|t| t.to_string())
        .or_else(|| own.first().cloned())
        .unwrap_or_else(|| "?".into())
}

fn snake(op: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = op.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let boundary = i > 0
            && c.is_uppercase()
            && (chars[i - 1].is_lowercase() || chars.get(i + 1).is_some_and(|n| n.is_lowercase()));
        if boundary {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Per op type: cases, passed, failed, unsupported.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OpRow {
    pub cases: usize,
    pub passed: usize,
    pub failed: usize,
    pub unsupported: usize,
}

pub fn table(results: &[CaseResult]) -> BTreeMap<String, OpRow> {
    let mut rows: BTreeMap<String, OpRow> = BTreeMap::new();
    for r in results {
        let row = rows.entry(r.op.clone()).or_default();
        row.cases += 1;
        match r.outcome {
            Outcome::Passed => row.passed += 1,
            Outcome::Failed(_) => row.failed += 1,
            Outcome::Unsupported(_) => row.unsupported += 1,
        }
    }
    rows
}

/// A checked-in list of the cases expected to pass, one name per line (`#` comments allowed),
/// compared with a run.
pub struct PassList(pub BTreeSet<String>);

/// How a run differs from the pass list.
#[derive(Debug, Default)]
pub struct Drift {
    /// Listed cases that no longer pass (or were not run at all), with their outcome.
    pub regressed: Vec<(String, String)>,
    /// Passing cases the list does not have yet.
    pub newly_passing: Vec<String>,
}

impl PassList {
    pub fn read(path: &Path) -> std::io::Result<PassList> {
        let text = std::fs::read_to_string(path)?;
        Ok(PassList(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect(),
        ))
    }

    pub fn drift(&self, results: &[CaseResult]) -> Drift {
        let by_name: BTreeMap<&str, &Outcome> = results
            .iter()
            .map(|r| (r.name.as_str(), &r.outcome))
            .collect();
        let mut drift = Drift::default();
        for name in &self.0 {
            match by_name.get(name.as_str()) {
                Some(Outcome::Passed) => {}
                Some(Outcome::Failed(why)) => drift
                    .regressed
                    .push((name.clone(), format!("failed: {why}"))),
                Some(Outcome::Unsupported(why)) => drift
                    .regressed
                    .push((name.clone(), format!("unsupported: {why}"))),
                None => drift.regressed.push((name.clone(), "not found".into())),
            }
        }
        drift.newly_passing = results
            .iter()
            .filter(|r| r.outcome == Outcome::Passed && !self.0.contains(&r.name))
            .map(|r| r.name.clone())
            .collect();
        drift
    }
}
