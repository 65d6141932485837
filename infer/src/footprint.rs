//! How much memory a graph claims, from its inferred shapes, checked against the process's
//! [`Limits`] before anything is allocated: each value as shape inference types it (so a
//! constant-evaluated ConstantOfShape, a Tile by 2^40 or a Resize to 100000x100000 is refused
//! before the evaluator builds it), and a run's peak, the most bytes alive at once when nodes
//! run in topological order and each value is freed after its last consumer. Unknown dims count
//! as 1 (a dynamic batch is checked again at run time, where the runtime allocates from data);
//! weights are memory-mapped and not counted.

use temblor_ir::limits::Limits;
use temblor_ir::{Error, Graph, NodeId, Op, Result, TensorInfo, ValueRef};

/// Bytes of a value, unknown dims as 1; `None` when the count overflows.
fn bytes(info: &TensorInfo) -> Option<u128> {
    info.ty
        .shape
        .dims()
        .iter()
        .filter_map(|d| d.known())
        .try_fold(info.ty.dtype.size_bytes() as u128, |a, d| {
            a.checked_mul(d as u128)
        })
}

/// Refuses an output of node `id` larger than the value limit, naming the node.
pub(crate) fn check_outputs(g: &Graph, id: NodeId, limits: &Limits) -> Result<()> {
    for info in &g.node(id).outputs {
        let dims: Vec<usize> = info
            .ty
            .shape
            .dims()
            .iter()
            .filter_map(|d| d.known())
            .collect();
        limits
            .check_value(&dims, info.ty.dtype.size_bytes())
            .map_err(|e| {
                Error::bad_input(format!("{}, output '{}': {e}", g.describe(id), info.name))
            })?;
    }
    Ok(())
}

/// The most bytes of values alive at once in a run of `g` (bodies of control flow not included:
/// their values live one iteration), and the node at which that peak is reached.
pub fn peak_bytes(g: &Graph) -> Result<(u128, Option<NodeId>)> {
    let order = g.topo_order().map_err(|n| {
        Error::bad_input(format!("the graph has a cycle through {}", g.describe(n)))
    })?;
    let position: std::collections::HashMap<NodeId, usize> =
        order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
    let outputs: std::collections::HashSet<ValueRef> = g.outputs.iter().map(|o| o.value).collect();
    // Bytes freed after each position: a value dies after its last consumer.
    let mut freed = vec![0u128; order.len()];
    let (mut live, mut peak, mut at) = (0u128, 0u128, None);
    for (i, &id) in order.iter().enumerate() {
        if !matches!(g.node(id).op, Op::Constant { .. }) {
            for (port, info) in g.node(id).outputs.iter().enumerate() {
                let b = bytes(info).unwrap_or(u128::MAX);
                let value = ValueRef::new(id, port);
                live = live.saturating_add(b);
                let last = g
                    .consumers(value)
                    .iter()
                    .filter_map(|(c, _)| position.get(c).copied())
                    .max();
                match last {
                    Some(l) if !outputs.contains(&value) => freed[l] = freed[l].saturating_add(b),
                    // A graph output lives to the end; an unused value dies at once.
                    None if !outputs.contains(&value) => freed[i] = freed[i].saturating_add(b),
                    _ => {}
                }
            }
        }
        if live > peak {
            (peak, at) = (live, Some(id));
        }
        live = live.saturating_sub(freed[i]);
    }
    Ok((peak, at))
}

/// Refuses a graph whose run would hold more than the peak limit, naming where it peaks.
pub fn check_peak(g: &Graph, limits: &Limits) -> Result<()> {
    let (peak, at) = peak_bytes(g)?;
    if peak > limits.peak_bytes as u128 {
        return Err(Error::bad_input(format!(
            "a run would hold {peak} bytes of values at once{}, above the limit of {} \
             (--max-peak-bytes)",
            at.map_or(String::new(), |n| format!(" (at {})", g.describe(n))),
            limits.peak_bytes
        )));
    }
    Ok(())
}
