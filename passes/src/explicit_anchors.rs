//! Makes yolo_box's anchors an explicit `[A, 2]` int32 constant on its input 2 instead of an
//! attribute: the form a TensorRT plugin takes them in, and a weight the views list with the
//! others. The kernel reads either form, so the rewrite changes no value.

use crate::{add_constant, Pass, PassError, Rewriter};
use temblor_ir::{DType, Layout, LibOp, NodeId, Op, Provenance, Weight, YoloBoxAttrs};

pub struct ExplicitAnchors;

const NAME: &str = "explicit_anchors";

impl Pass for ExplicitAnchors {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        let g = rw.graph();
        let targets: Vec<(NodeId, Vec<i64>)> = g
            .node_ids()
            .filter_map(|id| match &g.node(id).op {
                Op::Lib(LibOp::YoloBox(YoloBoxAttrs {
                    anchors: Some(anchors),
                    ..
                })) if g.input(id, 2).is_none() => Some((id, anchors.clone())),
                _ => None,
            })
            .collect();
        for (id, anchors) in &targets {
            let Some(g) = rw.step() else { break };
            let values: Vec<u8> = anchors
                .iter()
                .flat_map(|&a| (a as i32).to_le_bytes())
                .collect();
            let w = Weight {
                dtype: DType::I32,
                dims: vec![anchors.len() / 2, 2],
                data: values.into(),
            };
            let prov = Provenance::merged(NAME, [&g.node(*id).provenance]);
            let name = format!("{}.anchors", g.node(*id).name);
            let v = add_constant(g, name, w, Layout::Any, &prov);
            g.connect(v, *id, 2);
            let node = g.node_mut(*id);
            if let Op::Lib(LibOp::YoloBox(attrs)) = &mut node.op {
                attrs.anchors = None;
            }
            node.provenance = prov;
        }
        Ok(())
    }
}
