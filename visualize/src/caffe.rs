//! Layer type names and input roles.
//!
//! Netron colours a Caffe layer by the category its `caffe-metadata.json` gives the type name
//! (Layer, Normalization, Activation, Pool, Tensor, Shape). A canonical op whose Caffe
//! counterpart has a category takes that name; every other op keeps its canonical name
//! (`Op::name()`), which Netron draws uncoloured. `Eltwise`, `Interp` and `Upsample` have no
//! category there, so Add/Sub/Mul/Div and Resize keep their own, more telling names. Every
//! layer also carries its canonical op name as the `op` node attribute.

use temblor_ir::{Op, SplitSizes, UnaryOp};

pub(crate) fn layer_type(op: &Op) -> &str {
    match op {
        Op::Conv(_) => "Convolution",
        Op::ConvTranspose(_) => "Deconvolution",
        Op::BatchNorm { .. } => "BatchNorm",
        Op::Unary(UnaryOp::Relu) => "ReLU",
        Op::Unary(UnaryOp::Sigmoid) => "Sigmoid",
        Op::GlobalAveragePool => "Pooling",
        Op::Concat { .. } => "Concat",
        Op::Reshape { .. } => "Reshape",
        Op::Transpose { .. } => "Permute",
        Op::Split { .. } => "Slice",
        _ => op.name(),
    }
}

/// What input `port` of `op` is, for ops whose inputs have fixed meanings (ONNX order).
pub(crate) fn input_role(op: &Op, port: usize) -> Option<&'static str> {
    let roles: &[&str] = match op {
        Op::Conv(_) | Op::ConvTranspose(_) => &["x", "weight", "bias"],
        Op::BatchNorm { .. } => &["x", "scale", "bias", "mean", "var"],
        Op::Binary(_) => &["a", "b"],
        _ => return operand_role(op, port),
    };
    roles.get(port).copied()
}

/// The role of an input that is a value the op needs to know rather than data it computes on
/// (a shape, sizes, axes, bounds): such a value is either known when the graph is compiled
/// (a constant, folded from a shape computation where it was one) or computed at run time,
/// and the views say which.
pub(crate) fn operand_role(op: &Op, port: usize) -> Option<&'static str> {
    let roles: &[&str] = match op {
        Op::Reshape { .. } | Op::Expand => &["data", "shape"],
        Op::Resize(_) => &["x", "roi", "scales", "sizes"],
        Op::Slice => &["data", "starts", "ends", "axes", "steps"],
        Op::Squeeze | Op::Unsqueeze | Op::Reduce { .. } => &["data", "axes"],
        Op::Tile => &["data", "repeats"],
        Op::Pad { .. } => &["data", "pads", "constant_value", "axes"],
        Op::TopK { .. } => &["x", "k"],
        Op::Split {
            sizes: SplitSizes::Operand(_),
            ..
        } => &["data", "split"],
        Op::ConstantOfShape { .. } => &["shape"],
        Op::Range => &["start", "limit", "delta"],
        Op::NonMaxSuppression { .. } => &[
            "boxes",
            "scores",
            "max_output_boxes_per_class",
            "iou_threshold",
            "score_threshold",
        ],
        _ => &[],
    };
    // Port 0 is data everywhere but in the ops that compute from operands alone.
    let first = usize::from(!matches!(op, Op::ConstantOfShape { .. } | Op::Range));
    (port >= first).then(|| roles.get(port).copied()).flatten()
}
