//! The one error for a model with ops temblor cannot map. The frontends import such ops as
//! [`Op::Opaque`] so that `inspect` and the parse view work; every stage that must understand
//! each op (optimize, run, bench) calls [`check_supported`] first, so a person learns every
//! missing op from one message instead of one per attempt.

use crate::{Error, Framework, Graph, Op, Result};

/// `Ok` when the graph holds no [`Op::Opaque`]; otherwise a `BadInput` error naming every
/// unsupported op once, each with the first node (in source order) that uses it.
pub fn check_supported(g: &Graph) -> Result<()> {
    let mut missing: Vec<(String, &str)> = Vec::new();
    let mut source = None;
    let graphs = std::iter::once(g).chain(all_bodies(g));
    for (g, id) in graphs.flat_map(|g| g.node_ids().map(move |id| (g, id))) {
        let node = g.node(id);
        let Op::Opaque {
            domain,
            op_type,
            at,
            ..
        } = &node.op
        else {
            continue;
        };
        let op = if domain.is_empty() {
            op_type.clone()
        } else {
            format!("{domain}:{op_type}")
        };
        if !missing.iter().any(|(m, _)| *m == op) {
            missing.push((op, at));
        }
        if source.is_none() {
            source = node.provenance.origins.first().and_then(|&o| g.origin(o));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing
        .iter()
        .map(|(op, at)| format!("{op} (first at {at})"))
        .collect();
    let list = list.join(", ");
    Err(Error::bad_input(match source {
        Some(o) if o.framework == Framework::Paddle => {
            format!("{}: unsupported Paddle ops: {list}", o.file)
        }
        Some(o) => format!("unsupported ops in {}: {list}", o.file),
        None => format!("unsupported ops in graph '{}': {list}", g.name),
    }))
}

/// Every body of `g`'s control-flow ops, nested ones included.
fn all_bodies(g: &Graph) -> Vec<&Graph> {
    let mut out = Vec::new();
    for b in &g.bodies {
        out.push(b);
        out.extend(all_bodies(b));
    }
    out
}
