//! Merges consecutive data-layout changes: a Transpose of a Transpose becomes one Transpose by
//! the composed permutation, and a chain of reshape-like layers (Reshape, Squeeze, Unsqueeze,
//! Flatten) whose result has a static shape becomes one Reshape to that shape. The inner layer
//! must be read by nothing else; `remove_no_ops` then drops a merge that composes to nothing.

use crate::add_constant;
use crate::Pass;
use crate::PassError;
use temblor_ir::{Graph, Layout, NodeId, Op, Provenance, Weight};

pub struct MergeReshapes;

const NAME: &str = "merge_reshapes";

impl Pass for MergeReshapes {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, g: &mut Graph) -> Result<usize, PassError> {
        let ids: Vec<NodeId> = g.node_ids().collect();
        let mut merged = 0;
        for outer in ids {
            if !g.contains(outer) {
                continue;
            }
            let Some(inner_out) = g.input(outer, 0) else {
                continue;
            };
            let inner = inner_out.node;
            if g.consumers(inner_out).len() != 1 || g.outputs.iter().any(|o| o.value == inner_out) {
                continue;
            }
            let Some(x) = g.input(inner, 0) else { continue };
            let op = match (&g.node(inner).op, &g.node(outer).op) {
                (Op::Transpose { perm: p1 }, Op::Transpose { perm: p2 })
                    if p1.len() == p2.len() =>
                {
                    Op::Transpose {
                        perm: p2.iter().map(|&i| p1[i]).collect(),
                    }
                }
                (a, b) if reshape_like(a) && reshape_like(b) => Op::Reshape { allowzero: true },
                _ => continue,
            };
            let out_ty = g.node(outer).outputs[0].ty.clone();
            let shape = match op {
                Op::Reshape { .. } => match out_ty.shape.known() {
                    Some(dims) => Some(dims.iter().map(|&d| d as i64).collect::<Vec<i64>>()),
                    None => continue,
                },
                _ => None,
            };
            let prov =
                Provenance::merged(NAME, [&g.node(inner).provenance, &g.node(outer).provenance]);
            let node = g.node_mut(outer);
            node.op = op;
            node.provenance = prov.clone();
            let name = node.name.clone();
            for port in g.incoming_ports(outer) {
                g.disconnect_input(outer, port);
            }
            g.connect(x, outer, 0);
            if let Some(dims) = shape {
                let w = Weight::from_i64(vec![dims.len()], &dims);
                let s = add_constant(g, format!("{name}.shape"), w, Layout::Any, &prov);
                g.connect(s, outer, 1);
            }
            g.remove_node(inner)
                .map_err(|source| PassError::Remove { pass: NAME, source })?;
            merged += 1;
        }
        Ok(merged)
    }
}

fn reshape_like(op: &Op) -> bool {
    matches!(
        op,
        Op::Reshape { .. } | Op::Squeeze | Op::Unsqueeze | Op::Flatten { .. }
    )
}
