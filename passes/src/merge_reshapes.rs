//! Merges consecutive data-layout changes: a Transpose of a Transpose becomes one Transpose by
//! the composed permutation, and a chain of reshape-like layers (Reshape, Squeeze, Unsqueeze,
//! Flatten) whose result has a static shape becomes one Reshape to that shape. An inner
//! reshape must be read by nothing else; an inner Transpose may be, since each Transpose
//! reading it composes with it at no cost (it goes once its last reader has), which is how a
//! Transpose that `push_transposes` moved in front of several inverse ones cancels against
//! each. `remove_no_ops` then drops a merge that composes to nothing.

use crate::rewrite::{Replacement, Rewrite};
use crate::{Pass, PassError, Rewriter};
use temblor_ir::{Graph, Layout, NodeId, Op, ValueRef, Weight};

pub struct MergeReshapes;

impl Pass for MergeReshapes {
    fn name(&self) -> &'static str {
        "merge_reshapes"
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        rw.each(|_| true, merged);
        Ok(())
    }
}

/// `outer(inner(x))` as one layer in `outer`'s place.
fn merged(g: &Graph, outer: NodeId) -> Option<Rewrite> {
    let inner = g.input(outer, 0)?.node;
    let x = g.input(inner, 0)?;
    let op = match (&g.node(inner).op, &g.node(outer).op) {
        (Op::Transpose { perm: p1 }, Op::Transpose { perm: p2 }) if p1.len() == p2.len() => {
            Op::Transpose {
                perm: p2.iter().map(|&i| p1[i]).collect(),
            }
        }
        (a, b) if reshape_like(a) && reshape_like(b) => Op::Reshape { allowzero: true },
        _ => return None,
    };
    if matches!(op, Op::Transpose { .. }) && g.consumers(ValueRef::new(inner, 0)).len() > 1 {
        return Some(Rewrite::in_place(vec![outer], outer, op, vec![Some(x)]));
    }
    let shape: Option<Vec<i64>> = match op {
        Op::Reshape { .. } => {
            let dims = g.node(outer).outputs[0].ty.shape.known()?;
            Some(dims.iter().map(|&d| d as i64).collect())
        }
        _ => None,
    };
    Some(Rewrite::new(vec![inner, outer], outer, move |p| {
        let shape = shape.map(|dims| {
            let name = format!("{}.shape", p.graph().node(outer).name);
            p.constant(name, Weight::from_i64(vec![dims.len()], &dims), Layout::Any)
        });
        Replacement::Reuse {
            node: outer,
            op,
            inputs: vec![Some(x), shape],
        }
    }))
}

fn reshape_like(op: &Op) -> bool {
    matches!(
        op,
        Op::Reshape { .. } | Op::Squeeze | Op::Unsqueeze | Op::Flatten { .. }
    )
}
