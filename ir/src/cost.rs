//! What a layer costs, for choosing what to lower, for reporting FLOP shares and for placing a
//! layer's measured time against the machine's limits: multiply-adds count two FLOPs; any
//! other layer one per output element, since it streams its output once. The bytes a layer
//! moves are those of the values it reads and writes, each once.

use crate::{Dim, Graph, NodeId, Op};

pub fn flops(g: &Graph, id: NodeId) -> f64 {
    let node = g.node(id);
    let out = node.outputs.first().map_or(0.0, |o| {
        extents(o.ty.shape.dims()).iter().product::<usize>() as f64
    });
    let weight_dims = || {
        g.input(id, 1)
            .map(|w| extents(g.value_type(w).shape.dims()))
            .unwrap_or_default()
    };
    match &node.op {
        // Each output element sums over input channels per group times the kernel area, which is
        // the weight tensor's extent past its output-channel axis.
        Op::Conv(_) | Op::DeformConv(_) => {
            let w = weight_dims();
            2.0 * out * w.iter().skip(1).product::<usize>() as f64
        }
        // Each input element reaches every output channel of its group through every kernel
        // tap: the weight `[C, O/g, kH, kW]` past its input-channel axis.
        Op::ConvTranspose(_) => {
            let x = g
                .input(id, 0)
                .map(|x| extents(g.value_type(x).shape.dims()))
                .unwrap_or_default();
            let w = weight_dims();
            2.0 * x.iter().product::<usize>() as f64 * w.iter().skip(1).product::<usize>() as f64
        }
        Op::MatMul | Op::Gemm { .. } => {
            let a = g
                .input(id, 0)
                .map(|a| extents(g.value_type(a).shape.dims()))
                .unwrap_or_default();
            2.0 * out * a.last().copied().unwrap_or(1) as f64
        }
        op if op.is_layer() => out,
        _ => 0.0,
    }
}

/// Known extents, with an open one (the batch, usually) counted as 1: shares of a total are
/// what the costs are for, and every layer scales with the batch alike.
fn extents(dims: &[Dim]) -> Vec<usize> {
    dims.iter().map(|d| d.known().unwrap_or(1)).collect()
}

/// The bytes of every value the layer reads (weights included) and writes, each counted once:
/// the least memory traffic its kernel can have.
pub fn bytes(g: &Graph, id: NodeId) -> f64 {
    let size = |ty: &crate::TensorType| {
        (extents(ty.shape.dims()).iter().product::<usize>() * ty.dtype.size_bytes()) as f64
    };
    let read: f64 = g
        .inputs_of(id)
        .into_iter()
        .flatten()
        .map(|v| size(g.value_type(v)))
        .sum();
    let written: f64 = g.node(id).outputs.iter().map(|o| size(&o.ty)).sum();
    read + written
}
