//! Removes nodes none of whose outputs reach a graph output. Graph inputs stay even when unused:
//! they are part of the model's interface.

use crate::Pass;
use crate::PassError;
use temblor_ir::{Graph, Op, ValueRef};

pub struct DeadNodes;

impl Pass for DeadNodes {
    fn name(&self) -> &'static str {
        "dead_nodes"
    }

    fn run(&self, g: &mut Graph) -> Result<usize, PassError> {
        let order = g.topo_order().map_err(|n| PassError::Rewrite {
            pass: self.name(),
            message: format!("cycle through {}", g.describe(n)),
        })?;
        let mut removed = 0;
        // Reverse topological order sees every consumer before its producers, so one sweep
        // removes whole dead chains.
        for id in order.into_iter().rev() {
            let node = g.node(id);
            if matches!(node.op, Op::Input { .. }) {
                continue;
            }
            let used = (0..node.outputs.len()).any(|p| g.is_used(ValueRef::new(id, p)));
            if !used {
                g.remove_node(id).map_err(|source| PassError::Remove {
                    pass: self.name(),
                    source,
                })?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
