//! The ONNX backend node test suite as a conformance check of every stage (STYLE.md: one suite,
//! every stage). Each case is imported, shape-inferred, validated and run on the CPU runtime, and
//! its outputs are compared with the suite's. A case ends in one of three ways: it passes, it is
//! unsupported (temblor refused it with a clear error: an op, dtype or attribute it does not
//! handle), or it fails (wrong numbers, shape or dtype; an internal error; a panic).
//!
//! A case that passes as imported then goes through the later [`Stage`]s the caller gives (the
//! optimizer, fp16 legalization), each rewriting the graph of the stage before it as the
//! compiler does, and each stage's graph is checked against the same expected outputs at the
//! stage's [`Tolerance`]. Cases that do not pass as imported are not run further: a later stage
//! cannot be judged on a graph the runtime already gets wrong. The stages come from the caller
//! because the fp16 stage belongs to the precision crate, which depends on this one.

mod vision;

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
pub use temblor_frontend::Binding;
use temblor_ir::{Graph, GraphOutput, Result};
use temblor_runtime::{
    prepare, Device, ErrorKind, PrepareOptions, RuntimeError, Tensor, TensorData,
};

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
    /// Whether the case is in the vision subset ([`vision`]).
    pub vision: bool,
    /// As imported.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Per later stage, by name: its outcome, or `None` where it did not run (the case does not
    /// pass as imported, the stage does not apply to it, or a stage before it did not pass).
    pub stages: BTreeMap<&'static str, Option<Outcome>>,
}

/// Floats agree when `|got - want| <= atol + rtol * |want|`, NaN equal to NaN; other dtypes
/// must be equal.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

impl Tolerance {
    /// The suite's own tolerances. Every op of the pass list passes with them, so no op has
    /// looser ones.
    pub const SUITE: Tolerance = Tolerance {
        rtol: 1e-3,
        atol: 1e-7,
    };
}

/// A stage of the compiler after import that every case passing as imported also runs through.
pub struct Stage {
    /// Its column in the table: `optimized`, `fp16`.
    pub name: &'static str,
    /// The stage's graph from the graph of the stage before it; `Ok(None)` when the stage does
    /// not apply to the case (no layer has an fp16 form), and the next stage gets the same graph.
    pub lower: fn(&Graph) -> Result<Option<Graph>>,
    pub tolerance: Tolerance,
    /// Whether a case passing as imported must pass this stage too; the others are reported.
    pub required: bool,
}

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

/// Runs every case through import and then `stages`, each case named after the op it tests.
pub fn run_all(dirs: &[PathBuf], stages: &[Stage], binding: Binding) -> Vec<CaseResult> {
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
            let npy_io = temblor_frontend::onnx_npy_io(&dir.join("model.onnx")).unwrap_or(false);
            let (outcome, stages) = run_case(dir, stages, binding);
            CaseResult {
                name,
                op,
                vision: vision::is_vision(own, npy_io),
                outcome,
                stages,
            }
        })
        .collect()
}

/// Runs one case as imported and through `stages`. Never panics: a panic inside temblor is
/// caught and reported as a failure of the stage it happened in.
pub fn run_case(
    dir: &Path,
    stages: &[Stage],
    binding: Binding,
) -> (Outcome, BTreeMap<&'static str, Option<Outcome>>) {
    let mut outcomes: BTreeMap<&'static str, Option<Outcome>> =
        stages.iter().map(|s| (s.name, None)).collect();
    let imported = guarded(|| {
        let case = import(dir, binding)?;
        check(&case, &case.graph, Tolerance::SUITE)?;
        Ok(case)
    });
    let case = match imported {
        Ok(case) => case,
        Err(outcome) => return (outcome, outcomes),
    };
    let mut graph = case.graph.clone();
    for stage in stages {
        let lowered = guarded(|| {
            let Some(g) = (stage.lower)(&graph).map_err(|e| Outcome::Failed(e.to_string()))? else {
                return Ok(None);
            };
            temblor_ir::validate(&g).map_err(|e| Outcome::Failed(format!("invalid IR: {e}")))?;
            check(&case, &g, stage.tolerance)?;
            Ok(Some(g))
        });
        match lowered {
            Ok(Some(g)) => {
                outcomes.insert(stage.name, Some(Outcome::Passed));
                graph = g;
            }
            Ok(None) => {}
            Err(outcome) => {
                outcomes.insert(stage.name, Some(outcome));
                break;
            }
        }
    }
    (Outcome::Passed, outcomes)
}

/// `f`'s result, with a panic turned into a failure.
fn guarded<T>(f: impl FnOnce() -> Result<T, Outcome>) -> Result<T, Outcome> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(Outcome::Failed(format!("panic: {}", panic_text(&p)))))
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "non-string payload".into())
}

/// The case with its graph imported, shape-inferred and validated; `Err` holds the non-passing
/// outcome.
fn import(dir: &Path, binding: Binding) -> Result<temblor_frontend::Case, Outcome> {
    let unsupported = |e: crate::Error| Outcome::Unsupported(e.to_string());
    let mut case =
        temblor_frontend::load_onnx_case(dir, "test_data_set_0", binding).map_err(unsupported)?;
    temblor_ir::check_supported(&case.graph).map_err(unsupported)?;
    temblor_infer::infer(&mut case.graph).map_err(unsupported)?;
    temblor_ir::validate(&case.graph).map_err(|e| Outcome::Failed(format!("invalid IR: {e}")))?;
    Ok(case)
}

fn runtime(e: RuntimeError) -> Outcome {
    match e.kind {
        ErrorKind::Unsupported => Outcome::Unsupported(e.to_string()),
        ErrorKind::BadInput | ErrorKind::Internal => Outcome::Failed(e.to_string()),
    }
}

/// Runs `g` (the case's graph at some stage) on the case's inputs and compares its outputs with
/// the expected ones; `Err` holds the non-passing outcome.
fn check(case: &temblor_frontend::Case, g: &Graph, tolerance: Tolerance) -> Result<(), Outcome> {
    let plan = prepare(g, &Device::Cpu, &PrepareOptions::default()).map_err(runtime)?;
    let mut inputs = Vec::with_capacity(case.inputs.len());
    for (name, w) in &case.inputs {
        inputs.push((name.clone(), Tensor::from_weight(w).map_err(runtime)?));
    }
    let got = plan.run_once(&inputs).map_err(runtime)?;
    for (out, (_, t)) in g.outputs.iter().zip(&got) {
        inferred_type_fits(g, out, t).map_err(Outcome::Failed)?;
    }
    for ((name, want), (_, got)) in case.outputs.iter().zip(&got) {
        let want = Tensor::from_weight(want).map_err(runtime)?;
        compare(&want, got, tolerance)
            .map_err(|e| Outcome::Failed(format!("output '{name}': {e}")))?;
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

fn compare(want: &Tensor, got: &Tensor, tolerance: Tolerance) -> Result<(), String> {
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
            w == g
                || (w.is_nan() && g.is_nan())
                || (w - g).abs() <= tolerance.atol + tolerance.rtol * w.abs()
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
        TensorData::BF16(v) => v.iter().map(|x| x.to_f64()).collect(),
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

/// How many cases of one op passed, failed, or were unsupported, at one stage.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub unsupported: usize,
}

impl Counts {
    fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed(_) => self.failed += 1,
            Outcome::Unsupported(_) => self.unsupported += 1,
        }
    }

    pub fn run(&self) -> usize {
        self.passed + self.failed + self.unsupported
    }
}

/// Per op type: the cases, their outcomes as imported, and at each later stage the outcomes of
/// the cases that ran it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OpRow {
    pub cases: usize,
    #[serde(flatten)]
    pub imported: Counts,
    pub stages: BTreeMap<&'static str, Counts>,
}

pub fn table(results: &[CaseResult]) -> BTreeMap<String, OpRow> {
    let mut rows: BTreeMap<String, OpRow> = BTreeMap::new();
    for r in results {
        let row = rows.entry(r.op.clone()).or_default();
        row.cases += 1;
        row.imported.add(&r.outcome);
        for (&stage, outcome) in &r.stages {
            let counts = row.stages.entry(stage).or_default();
            if let Some(outcome) = outcome {
                counts.add(outcome);
            }
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
    /// Listed cases that no longer pass as imported (or were not run at all), with their
    /// outcome.
    pub regressed: Vec<(String, String)>,
    /// Cases that pass as imported but not a required later stage: the stage and its outcome.
    pub stage_failures: Vec<(String, &'static str, String)>,
    /// Passing cases the list does not have yet.
    pub newly_passing: Vec<String>,
}

impl Drift {
    /// Whether the run is worse than the list promises.
    pub fn is_regression(&self) -> bool {
        !self.regressed.is_empty() || !self.stage_failures.is_empty()
    }

    /// One line per regression, for a message.
    pub fn lines(&self) -> Vec<String> {
        let regressed = self
            .regressed
            .iter()
            .map(|(name, why)| format!("regressed: {name}: {why}"));
        let stages = self
            .stage_failures
            .iter()
            .map(|(name, stage, why)| format!("{stage}: {name}: {why}"));
        regressed.chain(stages).collect()
    }
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

    /// Compares a run with the list; `stages` says which later stages are required.
    pub fn drift(&self, results: &[CaseResult], stages: &[Stage]) -> Drift {
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
        for r in results {
            for stage in stages.iter().filter(|s| s.required) {
                if let Some(Some(outcome)) = r.stages.get(stage.name) {
                    let why = match outcome {
                        Outcome::Passed => continue,
                        Outcome::Failed(why) => format!("failed: {why}"),
                        Outcome::Unsupported(why) => format!("unsupported: {why}"),
                    };
                    drift.stage_failures.push((r.name.clone(), stage.name, why));
                }
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
