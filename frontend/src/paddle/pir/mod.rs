//! Paddle 3's PIR inference format: `inference.json` (the program) beside `inference.pdiparams`
//! (the parameters, laid out as the legacy combined file). The JSON is read into typed
//! operations (json.rs), every op is checked to have a translation (all unknown ops are
//! reported at once), the program is translated into the legacy `ProgramDesc` it stands for
//! (translate.rs, rules.rs), and that goes through the same importer as a `.pdmodel`.

mod json;
mod legacy;
mod rules;
mod translate;

pub(super) use translate::{IF_ELSE, POSITION};

use super::files::Files;
use std::collections::BTreeMap;
use temblor_ir::{Error, Graph, Result};

pub(super) fn load(
    bytes: &[u8],
    files: &Files,
    input_dims: &[(String, Vec<usize>)],
) -> Result<Graph> {
    let shown = files.program.display().to_string();
    let bad = |msg: String| Error::bad_input(format!("{shown}: {msg}"));
    let program = json::parse(bytes).map_err(bad)?;
    let unknown = translate::unknown_ops(&program);
    if !unknown.is_empty() {
        return Err(bad(format!(
            "{} op(s) have no mapping in temblor: {}",
            unknown.len(),
            unknown.join(", ")
        )));
    }
    let desc = translate::translate(&program).map_err(bad)?;
    let mut g = super::import(&desc, files, input_dims)?;
    g.facts = facts(&program, std::mem::take(&mut g.facts));
    Ok(g)
}

/// What `temblor inspect` shows about a PIR program: its version, regions and ops by dialect,
/// beside the parameters and the feed and fetch names the import found.
fn facts(program: &json::Program, imported: Vec<(String, String)>) -> Vec<(String, String)> {
    fn walk(block: &json::Block, depth: usize, stats: &mut Stats) {
        for op in &block.ops {
            let dialect = op.name.split('.').next().unwrap_or("?").to_string();
            *stats.dialects.entry(dialect).or_default() += 1;
            stats.ops += 1;
            stats.regions += op.regions.len();
            stats.depth = stats.depth.max(depth + usize::from(!op.regions.is_empty()));
            for r in &op.regions {
                walk(r, depth + 1, stats);
            }
        }
    }
    #[derive(Default)]
    struct Stats {
        ops: usize,
        regions: usize,
        depth: usize,
        dialects: BTreeMap<String, usize>,
    }
    let mut stats = Stats::default();
    walk(&program.body, 0, &mut stats);
    let by_dialect = stats
        .dialects
        .iter()
        .map(|(d, n)| format!("{d} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut facts = vec![
        (
            "format".to_string(),
            "paddle PIR program (JSON)".to_string(),
        ),
        ("pir_version".to_string(), program.version.to_string()),
        ("ops".to_string(), format!("{} ({by_dialect})", stats.ops)),
        (
            "regions".to_string(),
            format!(
                "{} nested in control flow, nesting depth {}",
                stats.regions, stats.depth
            ),
        ),
    ];
    facts.extend(
        imported
            .into_iter()
            .filter(|(k, _)| matches!(k.as_str(), "parameters" | "feed" | "fetch")),
    );
    facts
}
