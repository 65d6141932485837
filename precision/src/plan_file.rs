//! `precision.yml`: the plan as a person reads, edits and re-applies it (`--plan FILE`).

use crate::PrecisionPlan;
use std::path::Path;
use temblor_ir::{Error, Result};

const HEADER: &str = "\
# temblor precision plan: layers not listed run in fp32. Edit and re-apply with
# `temblor compile MODEL --plan precision.yml`. int8 layers need input_scale (activation
# clip threshold / 127); their weights are quantized per output channel when applied.
";

pub fn read(path: &Path) -> Result<PrecisionPlan> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("--plan {}: {e}", path.display())))?;
    serde_saphyr::from_str(&text).map_err(|e| {
        Error::usage(format!(
            "--plan {}: not a precision plan: {e}",
            path.display()
        ))
    })
}

pub fn render(plan: &PrecisionPlan) -> Result<String> {
    let body = serde_saphyr::to_string(plan)
        .map_err(|e| Error::internal(format!("cannot write the precision plan: {e}")))?;
    Ok(format!("{HEADER}{body}"))
}
