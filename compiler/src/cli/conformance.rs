use std::path::PathBuf;
use temblor_ir::{Error, Result};
use temblor_pipeline::conformance::conformance_stages;
use temblor_tools::conformance::{self, Binding, CaseResult, Outcome, PassList, Stage};

#[derive(clap::Args, Debug)]
pub struct ConformanceArgs {
    /// A directory of ONNX backend test cases (`test_*/model.onnx` + `test_data_set_0/`), e.g.
    /// `onnx/backend/test/data/node` inside the onnx wheel.
    pub dir: PathBuf,
    /// Only cases whose name contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// Print every non-passing case with its reason.
    #[arg(long)]
    pub verbose: bool,
    /// Print one JSON object (`ops` table and `cases`) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Compare with a list of cases expected to pass as imported; a listed case that does not
    /// pass, or a passing case the optimizer breaks, is an error (exit 1), and newly passing
    /// cases are printed so the list can grow.
    #[arg(long)]
    pub pass_list: Option<PathBuf>,
    /// Bind the inputs that feed operands temblor needs as constants (Clip bounds, Split sizes,
    /// ...) as initializers instead of feeding every input at run time as onnxruntime does.
    #[arg(long)]
    pub bind_inputs: bool,
}

pub fn conformance(args: &ConformanceArgs) -> Result<()> {
    let dirs = conformance::cases(&args.dir)
        .map_err(|e| Error::usage(format!("{}: cannot list cases: {e}", args.dir.display())))?;
    let dirs: Vec<PathBuf> = dirs
        .into_iter()
        .filter(|d| {
            args.filter.as_ref().is_none_or(|f| {
                d.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(f.as_str()))
            })
        })
        .collect();
    if dirs.is_empty() {
        return Err(Error::usage(format!(
            "{}: no test cases (test_*/model.onnx) found",
            args.dir.display()
        )));
    }
    // Panics are caught per case and reported in the table; the CLI's hook would print each.
    std::panic::set_hook(Box::new(|_| {}));
    let stages = conformance_stages();
    let binding = match args.bind_inputs {
        true => Binding::Initializers,
        false => Binding::RunTime,
    };
    let results = conformance::run_all(&dirs, &stages, binding);
    if args.json {
        let table = conformance::table(&results);
        let json = serde_json::json!({ "ops": table, "cases": results });
        println!("{json}");
    } else {
        let (vision, rest): (Vec<CaseResult>, Vec<CaseResult>) =
            results.iter().cloned().partition(|r| r.vision);
        println!("vision subset (cases holding a vision op, tensors a .npy holds):");
        print_table(&vision, &stages);
        println!();
        println!("the rest:");
        print_table(&rest, &stages);
        println!();
        println!(
            "all: {} cases, {} passed (inputs {})",
            results.len(),
            passed(&results),
            match binding {
                Binding::RunTime => "fed at run time",
                Binding::Initializers => "bound as initializers where needed",
            }
        );
        if args.verbose {
            for r in &results {
                match &r.outcome {
                    Outcome::Passed => {}
                    Outcome::Failed(why) => println!("FAILED {} [{}]: {why}", r.name, r.op),
                    Outcome::Unsupported(why) => {
                        println!("UNSUPPORTED {} [{}]: {why}", r.name, r.op)
                    }
                }
                for (stage, outcome) in &r.stages {
                    match outcome {
                        Some(Outcome::Failed(why)) => {
                            println!("FAILED {stage} {} [{}]: {why}", r.name, r.op)
                        }
                        Some(Outcome::Unsupported(why)) => {
                            println!("UNSUPPORTED {stage} {} [{}]: {why}", r.name, r.op)
                        }
                        Some(Outcome::Passed) | None => {}
                    }
                }
            }
        }
    }
    let Some(path) = &args.pass_list else {
        return Ok(());
    };
    let list = PassList::read(path)
        .map_err(|e| Error::usage(format!("{}: cannot read: {e}", path.display())))?;
    let drift = list.drift(&results, &stages);
    for name in &drift.newly_passing {
        eprintln!("newly passing (add to {}): {name}", path.display());
    }
    if !drift.is_regression() {
        return Ok(());
    }
    for line in drift.lines() {
        eprintln!("{line}");
    }
    Err(Error::internal(format!(
        "{} case(s) of {} no longer pass, {} passing case(s) fail a later stage",
        drift.regressed.len(),
        path.display(),
        drift.stage_failures.len()
    )))
}

fn passed(results: &[CaseResult]) -> usize {
    results
        .iter()
        .filter(|r| r.outcome == Outcome::Passed)
        .count()
}

/// The per-op table of `results`; each later stage's column: of the cases that ran it, how many
/// passed.
fn print_table(results: &[CaseResult], stages: &[Stage]) {
    print!(
        "{:<28} {:>6} {:>7} {:>7} {:>12}",
        "op", "cases", "passed", "failed", "unsupported"
    );
    for stage in stages {
        print!(" {:>10}", stage.name);
    }
    println!();
    for (op, row) in &conformance::table(results) {
        let c = &row.imported;
        print!(
            "{op:<28} {:>6} {:>7} {:>7} {:>12}",
            row.cases, c.passed, c.failed, c.unsupported
        );
        for stage in stages {
            let cell = match row.stages.get(stage.name).filter(|c| c.run() > 0) {
                Some(c) => format!("{}/{}", c.passed, c.run()),
                None => "-".to_string(),
            };
            print!(" {cell:>10}");
        }
        println!();
    }
    println!("total: {} cases, {} passed", results.len(), passed(results));
}
