//! The statuses report.json records. They live at the bottom of the crate tree because the tools
//! that decide them and report.html, which shows them, sit in crates that do not depend on each
//! other. report.json is a public interface: each spelling is fixed by its serde name, and
//! [`name`](VerifyStatus::name) gives the same text for views.

use serde::{Deserialize, Serialize};

/// Whether `compile` checked the optimized graph against the parsed one. A failed check is not
/// a status but an error: `compile` stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyStatus {
    Passed,
    /// Inputs could not be synthesized (open extents, a graph without weights).
    Skipped,
}

/// What one optimization pass did over all its rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PassStatus {
    Applied,
    /// It ran and changed nothing.
    NoOp,
}

/// Whether the latencies of the parsed and compiled graphs were taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MeasureStatus {
    Measured,
    Skipped,
}

impl VerifyStatus {
    pub fn name(self) -> &'static str {
        match self {
            VerifyStatus::Passed => "passed",
            VerifyStatus::Skipped => "skipped",
        }
    }
}

impl PassStatus {
    pub fn name(self) -> &'static str {
        match self {
            PassStatus::Applied => "applied",
            PassStatus::NoOp => "no-op",
        }
    }
}

impl MeasureStatus {
    pub fn name(self) -> &'static str {
        match self {
            MeasureStatus::Measured => "measured",
            MeasureStatus::Skipped => "skipped",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialized(v: impl Serialize) -> String {
        serde_json::to_string(&v).unwrap()
    }

    /// The serde names are the report's spelling; `name` must agree with them.
    #[test]
    fn names_are_the_serialized_spellings() {
        for s in [VerifyStatus::Passed, VerifyStatus::Skipped] {
            assert_eq!(serialized(s), format!("\"{}\"", s.name()));
        }
        for s in [PassStatus::Applied, PassStatus::NoOp] {
            assert_eq!(serialized(s), format!("\"{}\"", s.name()));
        }
        for s in [MeasureStatus::Measured, MeasureStatus::Skipped] {
            assert_eq!(serialized(s), format!("\"{}\"", s.name()));
        }
        assert_eq!(serialized(PassStatus::NoOp), "\"no-op\"");
    }
}
