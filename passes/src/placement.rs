//! The compile stage's placement: each layer's precision and partition. Everything is fp32
//! until precision assignment exists; every canonical op can run inside an engine, ops_lib
//! and opaque ops run on the host until they have an engine plugin.

use temblor_ir::{Graph, Op, Partition, Placement, Precision};

pub fn place(g: &mut Graph) {
    let ids: Vec<_> = g.node_ids().collect();
    for id in ids {
        let node = g.node_mut(id);
        if !node.op.is_layer() {
            continue;
        }
        let partition = match node.op {
            Op::Lib(_) | Op::Custom { .. } => Partition::Host,
            _ => Partition::Engine,
        };
        node.placement = Some(Placement {
            precision: Precision::Fp32,
            partition,
        });
    }
    // The precision search looks at the model's graph only: layers in loop and branch bodies
    // stay fp32.
    for body in &mut g.bodies {
        place(body);
    }
}
