//! Layer type names and input roles.
//!
//! Netron colours a Caffe layer by the category its `caffe-metadata.json` gives the type name
//! (Layer, Normalization, Activation, Pool, Tensor, Shape). A canonical op whose Caffe
//! counterpart has a category takes that name; every other op keeps its canonical name
//! (`Op::name()`), which Netron draws uncoloured. `Eltwise`, `Interp` and `Upsample` have no
//! category there, so Add/Sub/Mul/Div and Resize keep their own, more telling names. Every
//! layer also carries its canonical op name as the `op` node attribute.

use temblor_ir::{Op, UnaryOp};

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
        Op::Reshape { .. } => &["data", "shape"],
        _ => &[],
    };
    roles.get(port).copied()
}
