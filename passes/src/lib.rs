//! Graph rewrites. Each pass is one small named rewrite in its own file; it proposes rewrites
//! and the [`Rewriter`] applies and counts them (`rewrite.rs`). [`Driver`] runs an ordered list
//! of passes to a fixed point, validating the graph after every pass, and records what each
//! changed.

#![forbid(unsafe_code)]

mod commute_constants;
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
mod push_transposes;
mod raw_masks;
mod recognize_gelu;
mod recognize_hard_swish;
mod recognize_layer_norm;
mod remove_no_ops;
mod resolve_cast_like;
mod rewrite;
mod sink_transposes;
mod split_deform_conv;

pub use commute_constants::CommuteConstants;
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
pub use push_transposes::PushTransposes;
pub use raw_masks::RawMasks;
pub use recognize_gelu::RecognizeGelu;
pub use recognize_hard_swish::RecognizeHardSwish;
pub use recognize_layer_norm::RecognizeLayerNorm;
pub use remove_no_ops::RemoveNoOps;
pub use resolve_cast_like::ResolveCastLike;
pub use rewrite::Rewriter;
pub use sink_transposes::SinkTransposes;
pub use split_deform_conv::SplitDeformConv;

use temblor_ir::{Graph, Layout, Node, Op, Provenance, TensorInfo, TensorType, ValueRef, Weight};

/// One kind of rewrite. `run` proposes it wherever it matches and applies each through the
/// rewriter, which counts what applied and stops the pass when the step budget is spent. A run
/// that applied nothing left the graph untouched, which is what the fixed point is judged by
/// (never a node count, which a rewrite can leave equal while changing the graph).
pub trait Pass {
    fn name(&self) -> &'static str;
    fn run(&self, rw: &mut Rewriter<'_>) -> Result<(), PassError>;
}

/// The optimize stage's passes, in order, each beside the reason for its place:
pub fn optimize_passes() -> Vec<Box<dyn Pass>> {
    vec![
        // Canonicalization first, so the patterns later passes look for are not hidden behind
        // shape computations, identities or operand order: shape computations fold to
        // constants (which the next pass then moves), ...
        Box::new(FoldConstants),
        // ... constants go to the right of Add and Mul, so patterns look on one side only, ...
        Box::new(CommuteConstants),
        // ... a CastLike names its dtype, so that it is a Cast the rest know, ...
        Box::new(ResolveCastLike),
        // ... identities go, ...
        Box::new(RemoveNoOps),
        // ... chains of layout changes become one, ...
        Box::new(MergeReshapes),
        // ... the transposes detection heads put before their Concat sink below it, ...
        Box::new(SinkTransposes),
        // ... and those NHWC models wrap convolutions in move down through the elementwise
        // layers after them, to meet their inverse and leave the conv its affine layers.
        Box::new(PushTransposes),
        // Folds into convolutions, BatchNorm first, which leaves a conv directly in front of
        // the affine layers and activations the later fusions look for. A DeformConv folds its
        // BatchNorm like any conv, then splits, so the 1x1 conv the split leaves takes the
        // affine layers and epilogue after it like any other conv.
        Box::new(FoldBatchNorm),
        Box::new(SplitDeformConv),
        Box::new(FoldConvAffine),
        Box::new(FusePad),
        // What exporters write out as several layers (HardSwish, GELU, LayerNorm, a Gemm's
        // bias) becomes one, before the epilogue fusion, which takes a conv's activation only
        // as one layer.
        Box::new(RecognizeHardSwish),
        Box::new(RecognizeGelu),
        Box::new(RecognizeLayerNorm),
        Box::new(FuseMatMulAdd),
        Box::new(FuseConvEpilogue),
        // Touches nothing the others match; anywhere before the sweep would do.
        Box::new(ExplicitAnchors),
        // Last, so the constants and layers the rewrites above left unread go in the same round.
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
