//! The ONNX form of ops_lib ops. Each op that has one is written as standard ONNX ops
//! (NonMaxSuppression, TopK, GatherND, ...) in both files, which TensorRT's parser and
//! onnxruntime both run. An op that has none, or whose attributes its decomposition does not
//! cover, stays one plugin node for TensorRT: op type = the plugin name, with `plugin_version`
//! and `plugin_namespace` attributes beside the op's own, which is how TensorRT's ONNX parser
//! finds a plugin creator for an op it does not know; onnxruntime has no such plugins, so the
//! onnxruntime file is not written. The table of plugin names, versions and the namespace is
//! here and nowhere else.

mod matrix_nms;
mod multiclass_nms;
mod proposals;
mod rois_batch_index;
mod yolo_box;

use super::attrs::{self, string};
use super::emit::Emitter;
use super::lower::Lower;
use super::sub::Sub;
use super::Target;
use temblor_ir::{DType, LibOp};

/// The plugin creators' namespace in TensorRT's registry.
pub const NAMESPACE: &str = "temblor";
/// The ONNX domain of plugin nodes.
pub const DOMAIN: &str = "temblor.plugins";
/// The plugin library that registers the creators (built from ops_lib's plugin sources).
pub const LIBRARY: &str = "libtemblor_plugins.so";

/// A plugin's name and version in TensorRT's registry.
pub struct Plugin {
    pub name: &'static str,
    pub version: &'static str,
}

/// The plugin of each ops_lib op.
pub fn plugin(op: &LibOp) -> Plugin {
    let (name, version) = match op {
        LibOp::YoloBox(_) => ("TemblorYoloBox", "1"),
        LibOp::MulticlassNms(_) => ("TemblorMulticlassNms", "1"),
        LibOp::MatrixNms(_) => ("TemblorMatrixNms", "1"),
        LibOp::GenerateProposals(_) => ("TemblorGenerateProposals", "1"),
        LibOp::DistributeFpnProposals(_) => ("TemblorDistributeFpnProposals", "1"),
        LibOp::RoisBatchIndex => ("TemblorRoisBatchIndex", "1"),
    };
    Plugin { name, version }
}

pub(super) fn lower(em: &mut Emitter, cx: &Lower, op: &LibOp) -> Result<(), String> {
    let Err(why) = em.attempt(|em| standard(&mut Sub::new(em, cx.name()), cx, op)) else {
        return Ok(());
    };
    match cx.target {
        Target::TensorRt => {
            let p = plugin(op);
            let mut list = vec![
                string("plugin_version", p.version),
                string("plugin_namespace", NAMESPACE),
            ];
            for (k, v) in op.attributes(&cx.node.source_attrs) {
                list.push(attrs::source(&k, &v)?);
            }
            em.domain_node(
                DOMAIN,
                p.name,
                cx.name(),
                cx.ins.clone(),
                cx.outs.clone(),
                list,
            );
            em.plugins.insert(p.name.to_string());
            Ok(())
        }
        Target::OnnxRuntime => Err(format!(
            "ops_lib op '{}' has no form in standard ONNX ops here: {why}",
            op.name()
        )),
    }
}

/// The three outputs multiclass_nms3 and matrix_nms share (ops_lib's `detection_outputs`):
/// `Out [R, 6]` from each row's `label` (int64), `score` and `boxes` (`[R, 4]`), `Index
/// [R, 1]` int32 from the flat box index `index` (int64 `[R]`), and the per-image count `[N]`
/// int32 from `kept`, a `[N, W]` float table of 1s at the rows kept.
fn detection_outputs(
    s: &mut Sub,
    cx: &Lower,
    [label, score, boxes]: [&str; 3],
    index: &str,
    kept: &str,
) {
    let label = s.cast("label_f32", label, DType::F32);
    let label = s.unsqueeze("label_column", &label, &[1]);
    let score = s.unsqueeze("score_column", score, &[1]);
    s.op_into(
        "Concat",
        "out",
        &[&label, &score, boxes],
        &[&cx.outs[0]],
        vec![attrs::int("axis", 1)],
    );
    let index = s.unsqueeze("index_column", index, &[1]);
    s.cast_into("index", &index, DType::I32, &cx.outs[1]);
    let axes = s.i64s("count_axes", &[1]);
    let count = s.op(
        "ReduceSum",
        "count_f32",
        &[kept, &axes],
        vec![attrs::int("keepdims", 0)],
    );
    s.cast_into("rois_num", &count, DType::I32, &cx.outs[2]);
}

/// The op in standard ONNX ops, or why it cannot be.
fn standard(sub: &mut Sub, cx: &Lower, op: &LibOp) -> Result<(), String> {
    match op {
        LibOp::YoloBox(a) => yolo_box::lower(sub, cx, a),
        LibOp::MulticlassNms(a) => multiclass_nms::lower(sub, cx, a),
        LibOp::RoisBatchIndex => rois_batch_index::lower(sub, cx),
        LibOp::MatrixNms(a) => matrix_nms::lower(sub, cx, a),
        LibOp::GenerateProposals(a) => proposals::generate(sub, cx, a),
        LibOp::DistributeFpnProposals(a) => proposals::distribute(sub, cx, a),
    }
}
