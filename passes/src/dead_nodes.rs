//! Removes nodes none of whose outputs reach a graph output. Graph inputs stay even when unused:
//! they are part of the model's interface.

use crate::{Pass, PassError, Rewriter};
use temblor_ir::{Op, ValueRef};

pub struct DeadNodes;

impl Pass for DeadNodes {
    fn name(&self) -> &'static str {
        "dead_nodes"
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        let g = rw.graph();
        let order = g.topo_order().map_err(|n| PassError::Rewrite {
            pass: self.name(),
            message: format!("cycle through {}", g.describe(n)),
        })?;
        // Reverse topological order sees every consumer before its producers, so one sweep
        // removes whole dead chains. Each node removed is one rewrite.
        for id in order.into_iter().rev() {
            let node = rw.graph().node(id);
            let used = (0..node.outputs.len()).any(|p| rw.graph().is_used(ValueRef::new(id, p)));
            if matches!(node.op, Op::Input { .. }) || used {
                continue;
            }
            let Some(g) = rw.step() else { break };
            g.remove_node(id).map_err(|source| PassError::Remove {
                pass: self.name(),
                source,
            })?;
        }
        Ok(())
    }
}
