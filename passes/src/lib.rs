//! Graph rewrites. Each pass is one small named rewrite in its own file that reports how many
//! times it applied; [`Driver`] runs an ordered list of them to a fixed point, validating the
//! graph after every pass, and records what each changed.

#![forbid(unsafe_code)]

mod conv_weights;
mod dead_nodes;
mod driver;
mod explicit_anchors;
mod fold_batchnorm;
mod fold_constants;
mod fold_conv_affine;
mod fuse_conv_epilogue;
mod fuse_matmul_add;
mod fuse_pad;
mod merge_reshapes;
mod pattern;
mod placement;
mod prefilter_nms;
mod recognize_gelu;
mod recognize_hard_swish;
mod recognize_layer_norm;
mod remove_no_ops;
mod sink_transposes;
mod split_deform_conv;

pub use dead_nodes::DeadNodes;
pub use driver::{Driver, PassError, PassRecord};
pub use explicit_anchors::ExplicitAnchors;
pub use fold_batchnorm::FoldBatchNorm;
pub use fold_constants::FoldConstants;
pub use fold_conv_affine::FoldConvAffine;
pub use fuse_conv_epilogue::FuseConvEpilogue;
pub use fuse_matmul_add::FuseMatMulAdd;
pub use fuse_pad::FusePad;
pub use merge_reshapes::MergeReshapes;
pub use placement::place;
pub use prefilter_nms::PrefilterNms;
pub use recognize_gelu::RecognizeGelu;
pub use recognize_hard_swish::RecognizeHardSwish;
pub use recognize_layer_norm::RecognizeLayerNorm;
pub use remove_no_ops::RemoveNoOps;
pub use sink_transposes::SinkTransposes;
pub use split_deform_conv::SplitDeformConv;

use temblor_ir::{Graph, Layout, Node, Op, Provenance, TensorInfo, TensorType, ValueRef, Weight};

/// One rewrite. `run` applies it everywhere it matches in the current graph and returns how many
/// times it did; 0 means the graph is untouched, which is what the fixed point is judged by
/// (never a node count, which a rewrite can leave equal while changing the graph).
pub trait Pass {
    fn name(&self) -> &'static str;
    fn run(&self, graph: &mut Graph) -> Result<usize, PassError>;
}

/// The optimize stage's passes, in order. Canonicalization comes first (constant and shape
/// folding, no-op removal, reshape merging, transposes sunk below the Concat joining them), so
/// the patterns later passes look for are not hidden behind shape computations or identities.
/// Folds come before dead-node removal so the constants they replace are swept in the same round; the epilogue fusion follows the BatchNorm fold,
/// which is what leaves a conv directly in front of its activation, and follows the recognition
/// of activations that exporters write out as several layers.
pub fn optimize_passes() -> Vec<Box<dyn Pass>> {
    vec![
        Box::new(FoldConstants),
        Box::new(RemoveNoOps),
        Box::new(MergeReshapes),
        Box::new(SinkTransposes),
        Box::new(FoldBatchNorm),
        Box::new(SplitDeformConv),
        Box::new(FoldConvAffine),
        Box::new(FusePad),
        Box::new(RecognizeHardSwish),
        Box::new(RecognizeGelu),
        Box::new(RecognizeLayerNorm),
        Box::new(FuseMatMulAdd),
        Box::new(FuseConvEpilogue),
        Box::new(ExplicitAnchors),
        Box::new(DeadNodes),
    ]
}

/// Adds a Constant node holding `weight`, made by the pass that `prov` names.
pub(crate) fn add_constant(
    g: &mut Graph,
    name: String,
    weight: Weight,
    layout: Layout,
    prov: &Provenance,
) -> ValueRef {
    let ty = TensorType {
        dtype: weight.dtype,
        shape: weight.shape(),
        layout,
    };
    let id = g.weights.add(weight);
    let mut node = Node::new(
        name.clone(),
        Op::Constant { weight: id },
        vec![TensorInfo { name, ty }],
    );
    node.provenance = prov.clone();
    ValueRef::new(g.add_node(node), 0)
}
