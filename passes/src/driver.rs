use crate::{Pass, Rewriter};
use std::cell::RefCell;
use std::time::Instant;
use temblor_ir::{validate, Graph};

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// A pass met a graph it cannot rewrite safely (e.g. a weight of an unexpected dtype).
    #[error("pass '{pass}': {message}")]
    Rewrite { pass: &'static str, message: String },
    /// A pass removed a node that something still reads: a compiler bug, named by the pass.
    #[error("pass '{pass}': {source}")]
    Remove {
        pass: &'static str,
        source: temblor_ir::RemoveNodeError,
    },
    /// A pass left a graph that breaks an invariant: a compiler bug, named by the pass.
    #[error("pass '{pass}' produced an invalid graph: {source}")]
    Invalid {
        pass: &'static str,
        source: temblor_ir::ValidationError,
    },
    /// Retyping the graph after a pass failed: the pass left a value no shape rule accepts.
    #[error("after pass '{pass}': {source}")]
    Retype {
        pass: &'static str,
        source: temblor_ir::Error,
    },
    #[error("passes did not reach a fixed point in {rounds} rounds; last to change: {pass}")]
    NoFixedPoint { rounds: usize, pass: &'static str },
}

/// Whose fault a failed optimization is decides the exit code. A pass that cannot rewrite the
/// graph it met, or whose result no shape rule accepts, has met something in the user's model
/// (a cycle, a weight of an unexpected dtype, shapes that only disagree once a pass made them
/// static): that error keeps the kind it has. An invalid graph or a missing fixed point is
/// temblor's bug.
impl From<PassError> for temblor_ir::Error {
    fn from(e: PassError) -> temblor_ir::Error {
        let message = e.to_string();
        match e {
            PassError::Rewrite { .. } => temblor_ir::Error::BadInput(message),
            PassError::Retype { source, .. } => match source {
                temblor_ir::Error::Internal(_) => temblor_ir::Error::Internal(message),
                temblor_ir::Error::Usage(_) | temblor_ir::Error::BadInput(_) => {
                    temblor_ir::Error::BadInput(message)
                }
            },
            PassError::Remove { .. }
            | PassError::Invalid { .. }
            | PassError::NoFixedPoint { .. } => temblor_ir::Error::Internal(message),
        }
    }
}

/// What one run of one pass did (report.json lists these).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PassRecord {
    pub pass: &'static str,
    pub round: usize,
    /// Number of rewrites applied.
    pub applied: usize,
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub layers_before: usize,
    pub layers_after: usize,
    pub micros: u128,
}

/// Runs passes in order, round after round, until a whole round applies nothing.
pub struct Driver {
    passes: Vec<Box<dyn Pass>>,
    max_rounds: usize,
    /// Stop after this many applied rewrites, counted over all passes and rounds, even in the
    /// middle of a pass: `--pass-steps N` and `N - 1` differ by exactly one rewrite, so a person
    /// can bisect to the one that breaks a model.
    step_limit: Option<usize>,
    /// Shown the graph after each pass that applied (RefCell: `run` takes `&self`).
    on_applied: Option<RefCell<OnApplied>>,
}

/// An observer of the optimizer's progress: called with the record of each pass run that applied
/// (after retyping and validation) and the graph it left, e.g. to snapshot it for measuring.
pub type OnApplied = Box<dyn FnMut(&PassRecord, &Graph)>;

impl Driver {
    pub fn new(passes: Vec<Box<dyn Pass>>) -> Driver {
        Driver {
            passes,
            max_rounds: 32,
            step_limit: None,
            on_applied: None,
        }
    }

    pub fn with_step_limit(mut self, steps: Option<usize>) -> Driver {
        self.step_limit = steps;
        self
    }

    pub fn with_on_applied(mut self, on_applied: OnApplied) -> Driver {
        self.on_applied = Some(RefCell::new(on_applied));
        self
    }

    pub fn pass_names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// Runs to a fixed point (or the step limit), validating after every pass; then does the
    /// same inside each body of the graph's loops and conditionals (which the observer does not
    /// see: it follows the model's graph).
    pub fn run(&self, graph: &mut Graph) -> Result<Vec<PassRecord>, PassError> {
        let mut records = self.run_graph(graph, true)?;
        records.extend(self.run_bodies(graph)?);
        Ok(records)
    }

    fn run_bodies(&self, graph: &mut Graph) -> Result<Vec<PassRecord>, PassError> {
        let mut records = Vec::new();
        for body in &mut graph.bodies {
            records.extend(self.run_graph(body, false)?);
            records.extend(self.run_bodies(body)?);
        }
        Ok(records)
    }

    fn run_graph(&self, graph: &mut Graph, observe: bool) -> Result<Vec<PassRecord>, PassError> {
        let mut records = Vec::new();
        let mut budget = self.step_limit;
        for round in 1..=self.max_rounds {
            let mut last_changed = None;
            for pass in &self.passes {
                if budget == Some(0) {
                    return Ok(records);
                }
                let (nodes_before, layers_before) = (graph.node_count(), graph.layer_count());
                let start = Instant::now();
                let mut rw = Rewriter::new(graph, pass.name(), budget);
                pass.run(&mut rw)?;
                if let Some(source) = rw.refused() {
                    return Err(PassError::Remove {
                        pass: pass.name(),
                        source,
                    });
                }
                let applied = rw.applied();
                budget = budget.map(|b| b - applied);
                // Every value is retyped after a pass that changed the graph, so a shape that
                // folding made static is static for the passes that follow.
                if applied > 0 {
                    temblor_infer::infer(graph).map_err(|source| PassError::Retype {
                        pass: pass.name(),
                        source,
                    })?;
                }
                let micros = start.elapsed().as_micros();
                validate(graph).map_err(|source| PassError::Invalid {
                    pass: pass.name(),
                    source,
                })?;
                if applied > 0 {
                    last_changed = Some(pass.name());
                }
                let record = PassRecord {
                    pass: pass.name(),
                    round,
                    applied,
                    nodes_before,
                    nodes_after: graph.node_count(),
                    layers_before,
                    layers_after: graph.layer_count(),
                    micros,
                };
                if let (Some(on_applied), true) = (&self.on_applied, applied > 0 && observe) {
                    (on_applied.borrow_mut())(&record, graph);
                }
                records.push(record);
            }
            match last_changed {
                None => return Ok(records),
                Some(pass) if round == self.max_rounds => {
                    return Err(PassError::NoFixedPoint {
                        rounds: self.max_rounds,
                        pass,
                    })
                }
                Some(_) => {}
            }
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::PassError;
    use temblor_ir::{Error, ValidationError};

    /// A user's model that a pass cannot handle exits 2; temblor's own bugs exit 1.
    #[test]
    fn the_fault_decides_the_exit_code() {
        let exit = |e: PassError| Error::from(e).exit_code();
        let rewrite = PassError::Rewrite {
            pass: "FoldConstants",
            message: "cycle".into(),
        };
        let retype = |source| PassError::Retype {
            pass: "FuseConvEpilogue",
            source,
        };
        let invalid = PassError::Invalid {
            pass: "RemoveNoOps",
            source: ValidationError {
                graph: "g".into(),
                what: "dangling edge".into(),
            },
        };
        let no_fixed_point = PassError::NoFixedPoint {
            rounds: 32,
            pass: "SinkTransposes",
        };
        assert_eq!(exit(rewrite), 2);
        assert_eq!(exit(retype(Error::bad_input("shapes disagree"))), 2);
        assert_eq!(
            exit(retype(Error::internal("rule gave 2 outputs for 1"))),
            1
        );
        assert_eq!(exit(invalid), 1);
        assert_eq!(exit(no_fixed_point), 1);
    }
}
