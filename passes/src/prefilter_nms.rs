//! A top-k pre-filter in front of multiclass NMS: of the `M` candidate boxes, only the `k` with
//! the highest score in any class go on to NMS, whose cost grows with the square of what it
//! sees. Quake used this on YOLOv3 at 608x608 (22743 boxes, nearly all of them hopeless).
//!
//! The rewrite is exact when `k` is at least the number of boxes that could survive, so it is
//! not in the default pass list: a user asks for it (`compile --nms-prefilter K`) knowing their
//! model's candidate counts. The kept boxes stay in their original order (the top-k indices are
//! sorted back), so ties between equal scores break exactly as before. NMS nodes whose `Index`
//! output is read are left alone, since it would index the filtered set.

use crate::{add_constant, Pass, PassError, Rewriter};
use temblor_ir::{
    DType, Graph, Layout, LibOp, NodeId, Op, Provenance, ReduceOp, Shape, TensorInfo, TensorType,
    ValueRef, Weight,
};

pub struct PrefilterNms {
    pub k: usize,
}

const NAME: &str = "prefilter_nms";

impl Pass for PrefilterNms {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError> {
        let g = rw.graph();
        let targets: Vec<NodeId> = g.node_ids().filter(|&id| self.applies(g, id)).collect();
        for nms in targets {
            let Some(g) = rw.step() else { break };
            self.rewrite(g, nms);
        }
        Ok(())
    }
}

impl PrefilterNms {
    /// multiclass_nms3 on `[N, M, 4]` boxes and `[N, C, M]` scores with `M > k` known, no
    /// RoisNum, and its Index output unread.
    fn applies(&self, g: &Graph, id: NodeId) -> bool {
        if !matches!(g.node(id).op, Op::Lib(LibOp::MulticlassNms(_))) {
            return false;
        }
        let (Some(boxes), Some(scores)) = (g.input(id, 0), g.input(id, 1)) else {
            return false;
        };
        let (b, s) = (&g.value_type(boxes).shape, &g.value_type(scores).shape);
        let m = b.dims().get(1).and_then(|d| d.known());
        b.rank() == 3
            && s.rank() == 3
            && m.is_some_and(|m| m > self.k)
            && s.dims()[2].known() == m
            && g.input(id, 2).is_none()
            && !g.is_used(ValueRef::new(id, 1))
    }

    fn rewrite(&self, g: &mut Graph, nms: NodeId) {
        let prov = Provenance::merged(NAME, [&g.node(nms).provenance]);
        let base = g.node(nms).name.clone();
        let boxes = g.input(nms, 0).expect("checked");
        let scores = g.input(nms, 1).expect("checked");
        let add = |g: &mut Graph, suffix: &str, op: Op, ins: &[ValueRef], outputs: usize| {
            let name = format!("{base}.{suffix}");
            let placeholder = TensorType::new(DType::F32, Shape::default());
            let infos = (0..outputs)
                .map(|p| TensorInfo {
                    name: if p == 0 {
                        name.clone()
                    } else {
                        format!("{name}:{p}")
                    },
                    ty: placeholder.clone(),
                })
                .collect();
            let mut node = temblor_ir::Node::new(name, op, infos);
            node.provenance = prov.clone();
            let id = g.add_node(node);
            for (port, v) in ins.iter().enumerate() {
                g.connect(*v, id, port);
            }
            ValueRef::new(id, 0)
        };
        let ints = |g: &mut Graph, suffix: &str, v: &[i64]| {
            let w = Weight::from_i64(vec![v.len()], v);
            add_constant(g, format!("{base}.{suffix}"), w, Layout::Any, &prov)
        };
        let classes = ints(g, "class_axis", &[1]);
        let reduce = Op::Reduce {
            op: ReduceOp::Max,
            keepdims: false,
            noop_with_empty_axes: false,
        };
        let best = add(g, "best_score", reduce, &[scores, classes], 1);
        let k = ints(g, "k", &[self.k as i64]);
        let top = Op::TopK {
            axis: -1,
            largest: true,
            sorted: true,
        };
        let picked = add(g, "top_k", top, &[best, k], 2);
        let indices = ValueRef::new(picked.node, 1);
        // Sorting the kept indices back into box order keeps ties breaking as before.
        let as_float = add(g, "index_f32", Op::Cast { to: DType::F32 }, &[indices], 1);
        let ascending = Op::TopK {
            axis: -1,
            largest: false,
            sorted: true,
        };
        let ordered = add(g, "in_order", ascending, &[as_float, k], 2);
        let kept = add(g, "kept", Op::Cast { to: DType::I64 }, &[ordered], 1);
        let box_axis = ints(g, "box_axis", &[2]);
        let per_box = add(g, "box_index", Op::Unsqueeze, &[kept, box_axis], 1);
        let four = ints(g, "four", &[1, 1, 4]);
        let box_index = add(g, "box_index4", Op::Expand, &[per_box, four], 1);
        let gather_boxes = Op::GatherElements { axis: 1 };
        let new_boxes = add(g, "boxes", gather_boxes, &[boxes, box_index], 1);
        let class_axis = ints(g, "score_axis", &[1]);
        let per_score = add(g, "score_index", Op::Unsqueeze, &[kept, class_axis], 1);
        let c = g.value_type(scores).shape.dims()[1].known().unwrap_or(1) as i64;
        let all_classes = ints(g, "classes", &[1, c, 1]);
        let score_index = add(g, "score_index_c", Op::Expand, &[per_score, all_classes], 1);
        let gather_scores = Op::GatherElements { axis: 2 };
        let new_scores = add(g, "scores", gather_scores, &[scores, score_index], 1);
        g.disconnect_input(nms, 0);
        g.disconnect_input(nms, 1);
        g.connect(new_boxes, nms, 0);
        g.connect(new_scores, nms, 1);
        g.node_mut(nms).provenance = prov;
    }
}
