//! The canonical op set: the framework-neutral meaning of each node.
//!
//! Input order follows ONNX where an ONNX op exists, and so do operands: values that real models
//! may compute at run time (a Reshape's shape, Slice bounds, Squeeze axes, a TopK's k) stay
//! inputs, read by shape inference when they are constants and by the kernels always. The
//! exceptions are operands every supported model gives as constants and that decide the op's
//! structure (Clip bounds, Split sizes): those are attributes here, resolved by the frontend. Ops are grouped by family, and each family has one file in the
//! frontend, in shape inference and in the CPU runtime.

mod attrs;
mod describe;
mod elementwise;
mod library;
mod resize;

pub use attrs::*;
pub use elementwise::{BinaryOp, UnaryOp};
pub use library::{
    DistributeFpnAttrs, GenerateProposalsAttrs, LibOp, MatrixNmsAttrs, MulticlassNmsAttrs,
    YoloBoxAttrs,
};
pub use resize::ResizeAxis;

use crate::AttrValue;
use crate::DType;
use crate::TensorType;
use crate::WeightId;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Graph input number `index` (position in [`crate::Graph::inputs`]).
    Input {
        index: usize,
    },
    /// A constant tensor held in the weight store.
    Constant {
        weight: WeightId,
    },

    // Convolution family.
    /// Inputs: x `[N,C,H,W]`, w `[O,C/g,kH,kW]`, optional bias `[O]`, optional residual (the
    /// output's shape, added before the fused activation).
    Conv(ConvAttrs),
    /// Inputs: x `[N,C,H,W]`, w `[C,O/g,kH,kW]`, optional bias `[O]`.
    ConvTranspose(ConvTransposeAttrs),
    /// Inference batch normalization. Inputs: x, scale, bias, mean, variance (all per channel).
    BatchNorm {
        epsilon: f32,
    },
    /// Inputs: x, optional roi, optional scales (f32), optional sizes (int64); see
    /// [`ResizeAttrs`].
    Resize(ResizeAttrs),

    // Elementwise family.
    Unary(UnaryOp),
    /// `x` if positive, else `alpha * x`.
    LeakyRelu {
        alpha: f32,
    },
    /// `max(0, min(1, alpha * x + beta))`.
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// `min(max(x, min), max)`. An absent bound is `f32::MIN` / `f32::MAX`, as ONNX defines it
    /// (finite, so attributes survive JSON).
    Clip {
        min: f32,
        max: f32,
    },
    /// Exact (erf) or, with `tanh`, the tanh approximation.
    Gelu {
        tanh: bool,
    },
    /// Elementwise with numpy broadcasting. Inputs: a, b.
    Binary(BinaryOp),
    /// Inputs: condition (bool), x, y; broadcast.
    Where,
    Cast {
        to: DType,
    },
    /// Cast to the dtype of input 1 (ONNX CastLike), for a target whose dtype only shape
    /// inference knows; only that input's type is read, never its data. Inputs: x, like.
    CastLike,

    // Data movement and indexing family.
    /// Inputs: one or more tensors of equal rank.
    Concat {
        axis: i64,
    },
    /// Inputs: data, shape (int64, `0` copies a dimension unless `allowzero`, `-1` infers one).
    Reshape {
        allowzero: bool,
    },
    /// An empty perm is resolved to "reverse" by shape inference.
    Transpose {
        perm: Vec<usize>,
    },
    /// Splits along `axis` into `sizes.count()` outputs.
    Split {
        axis: i64,
        sizes: SplitSizes,
    },
    /// Inputs: data, starts, ends, optional axes, optional steps.
    Slice,
    /// To 2-D: axes before `axis` become the rows.
    Flatten {
        axis: i64,
    },
    /// Inputs: data, optional axes (absent: every axis of extent 1).
    Squeeze,
    /// Inputs: data, axes.
    Unsqueeze,
    /// Inputs: data, shape (broadcast to it).
    Expand,
    /// Inputs: data, repeats.
    Tile,
    /// Inputs: data, indices (negative counts from the end).
    Gather {
        axis: i64,
    },
    /// Inputs: data, indices of the output's shape.
    GatherElements {
        axis: i64,
    },
    /// Inputs: data, indices whose last axis indexes the leading data axes.
    GatherNd {
        batch_dims: usize,
    },
    /// Inputs: data, indices, updates.
    ScatterNd {
        reduction: ScatterReduction,
    },
    /// The input's shape as int64, axes `start..end` (negative counts from the end).
    Shape {
        start: i64,
        end: Option<i64>,
    },
    /// The element count as an int64 scalar.
    Size,
    /// Input: shape (int64); output filled with `value`.
    ConstantOfShape {
        value: Scalar,
    },
    /// Inputs: start, limit, delta (scalars of one dtype).
    Range,
    /// Inputs: data, pads (begins then ends), optional constant value, optional axes.
    Pad {
        mode: PadMode,
    },
    /// Indices of the non-zero elements, `[rank, count]` int64.
    NonZero,

    // Pooling, reduction and linear algebra family.
    MaxPool(PoolAttrs),
    AveragePool(PoolAttrs),
    /// Mean over every axis after the second; keeps them as size 1.
    GlobalAveragePool,
    GlobalMaxPool,
    /// Inputs: data, optional axes (int64). Absent or empty axes reduce everything, unless
    /// `noop_with_empty_axes`.
    Reduce {
        op: ReduceOp,
        keepdims: bool,
        noop_with_empty_axes: bool,
    },
    /// Index of the largest (or, with `min`, smallest) element along `axis`, as int64.
    ArgExtreme {
        min: bool,
        axis: i64,
        keepdims: bool,
        select_last_index: bool,
    },
    /// Inputs: x, k (int64 `[1]`). Outputs: values, indices.
    TopK {
        axis: i64,
        largest: bool,
        sorted: bool,
    },
    /// numpy matmul semantics. Inputs: a, b.
    MatMul,
    /// `alpha * A' B' + beta * C`. Inputs: a, b, optional c.
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    Einsum {
        equation: String,
    },
    /// Softmax (or, with `log`, log-softmax) along `axis`. With `flatten` (opsets before 13)
    /// the axes from `axis` on are treated as one.
    Softmax {
        axis: i64,
        log: bool,
        flatten: bool,
    },
    /// Normalizes over the axes from `axis` on. Inputs: x, scale, optional bias. Outputs: y,
    /// optional mean, optional inverse standard deviation.
    LayerNorm {
        axis: i64,
        epsilon: f32,
    },

    // Detection family.
    /// Inputs: boxes `[N,B,4]`, scores `[N,C,B]`, optional max_output_boxes_per_class, iou
    /// threshold, score threshold. Output: `[K,3]` int64 (batch, class, box).
    NonMaxSuppression {
        center_point_box: bool,
    },
    /// Inputs: x `[N,C,H,W]`, rois `[R,4]`, batch_indices `[R]`.
    RoiAlign(RoiAlignAttrs),
    /// Inputs: x, w, offset, optional bias, optional mask.
    DeformConv(DeformConvAttrs),
    /// DeformConv's sampling alone, its deformable im2col: inputs x `[N,C,H,W]`, offset,
    /// optional mask; output `[N, C*kH*kW, oH, oW]`, channel `c*kH*kW + ki*kW + kj` holding
    /// input channel `c` read at kernel tap `(ki, kj)`. A grouped 1x1 Conv of it with the
    /// weight `[O, C/g*kH*kW, 1, 1]` is the DeformConv. `group` is ignored (no weight here).
    DeformSample(DeformConvAttrs),
    /// Inputs: x `[N,C,H,W]`, grid `[N,Ho,Wo,2]`.
    GridSample {
        mode: GridSampleMode,
        padding: GridSamplePadding,
        align_corners: bool,
    },

    // Quantization family.
    /// Inputs: x, scale, optional zero point (its dtype is the output's; uint8 when absent).
    QuantizeLinear {
        axis: i64,
        saturate: bool,
    },
    /// Inputs: x, scale, optional zero point.
    DequantizeLinear {
        axis: i64,
    },

    // Control family: loops and conditionals whose control is known only at run time (the
    // frontends unroll those known at import). Each body is a graph of its own
    // ([`crate::Graph::body`]) that reads nothing of the enclosing graph except its inputs, so
    // every stage handles it as it handles a model.
    /// ONNX Loop, with the enclosing values the body reads made explicit. Inputs: optional trip
    /// count (int64, one element), optional condition (bool, one element), the `carried`
    /// loop-carried values, then the captured values. The body's inputs: iteration number
    /// (int64 0-D), condition (bool 0-D), the carried values, the captured values; its
    /// outputs: the next condition (ignored when the loop has no condition input: a `for`
    /// loop), the next carried values, then the scan outputs. Outputs: the last carried values,
    /// then each scan output's per-iteration values stacked on a new axis 0.
    Loop(LoopAttrs),
    /// Inputs: the condition (bool, one element), then the captured values, which are each
    /// branch's inputs. Outputs: those of the branch the condition takes.
    If {
        then_branch: BodyId,
        else_branch: BodyId,
    },

    /// An ops_lib operator. Inputs and outputs: Paddle's parameters in [`LibOp::inputs`] and
    /// [`LibOp::outputs`] order.
    Lib(LibOp),
    /// An op kept opaque: no shape rule, no kernel, viewable only.
    Custom {
        domain: String,
        name: String,
        attrs: Vec<(String, AttrValue)>,
    },

    /// An op the frontend cannot map. It is kept so that a model with unsupported ops can still
    /// be inspected and viewed; every later stage refuses it through
    /// [`crate::check_supported`], which lists all of them at once. Its source attributes stay
    /// on the node, as for every op.
    Opaque {
        /// Empty for the framework's default domain.
        domain: String,
        op_type: String,
        /// Where the source model has it, for that error: `node 'x'` in ONNX; Paddle ops have
        /// no names, so `block 0, op 12` there.
        at: String,
        /// Per output, the type the source declares for it, where it declares one: shape
        /// inference takes the dtype and rank from it (the IR has no unknown rank).
        declared: Vec<Option<TensorType>>,
    },
}

/// How a Split divides its axis. Shape inference turns `Equal` into `Explicit` when the axis
/// extent is known; the runtime resolves what is left from the actual extent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitSizes {
    /// That many equal parts; the extent must divide evenly.
    Equal(usize),
    Explicit(Vec<usize>),
    /// That many parts whose sizes input 1 holds, a value computed at run time: shape inference
    /// reads it where it is static, and the kernel reads it where it is not.
    Operand(usize),
}

impl SplitSizes {
    /// The number of outputs.
    pub fn count(&self) -> usize {
        match self {
            SplitSizes::Equal(n) | SplitSizes::Operand(n) => *n,
            SplitSizes::Explicit(sizes) => sizes.len(),
        }
    }

    /// The part sizes for an axis of `extent`; `None` when they do not add up to it, or when
    /// they are an operand's.
    pub fn resolve(&self, extent: usize) -> Option<Vec<usize>> {
        let sizes = match self {
            SplitSizes::Equal(n) if *n > 0 && extent.is_multiple_of(*n) => vec![extent / n; *n],
            SplitSizes::Equal(_) | SplitSizes::Operand(_) => return None,
            SplitSizes::Explicit(sizes) => sizes.clone(),
        };
        (sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s)) == Some(extent)).then_some(sizes)
    }
}

/// The families the op set is grouped in. Each has one file per layer: its ONNX mapping, its
/// shape rules and its CPU kernels, and [`Op::family`] is the one place that says which family
/// an op belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpFamily {
    /// Graph inputs and constants: values, not computation.
    Value,
    /// Convolution, batch normalization and resampling of images.
    Convolution,
    Elementwise,
    /// Data movement and indexing.
    Movement,
    /// Pooling, reductions, linear algebra, Softmax and LayerNorm.
    Reduction,
    Detection,
    Quantization,
    /// Loops and conditionals with bodies of their own.
    Control,
    /// ops_lib operators and opaque ops: host-side, outside the canonical set.
    Custom,
    /// Ops no stage after import handles ([`Op::Opaque`]).
    Opaque,
}

/// The axes a `Shape { start, end }` reports of a value of rank `rank`: negative bounds count
/// from the end and both are clamped to the rank, as ONNX defines it. Shape inference, the CPU
/// kernel and compile-time folding all read the bounds through this one function.
pub fn shape_axes(rank: usize, start: i64, end: Option<i64>) -> std::ops::Range<usize> {
    let r = rank as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let (s, e) = (clamp(start), clamp(end.unwrap_or(r)));
    s..e.max(s)
}

impl Op {
    pub fn family(&self) -> OpFamily {
        match self {
            Op::Input { .. } | Op::Constant { .. } => OpFamily::Value,
            Op::Conv(_) | Op::ConvTranspose(_) | Op::BatchNorm { .. } | Op::Resize(_) => {
                OpFamily::Convolution
            }
            Op::Unary(_)
            | Op::LeakyRelu { .. }
            | Op::HardSigmoid { .. }
            | Op::Clip { .. }
            | Op::Gelu { .. }
            | Op::Binary(_)
            | Op::Where
            | Op::Cast { .. }
            | Op::CastLike => OpFamily::Elementwise,
            Op::Concat { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Split { .. }
            | Op::Slice
            | Op::Flatten { .. }
            | Op::Squeeze
            | Op::Unsqueeze
            | Op::Expand
            | Op::Tile
            | Op::Gather { .. }
            | Op::GatherElements { .. }
            | Op::GatherNd { .. }
            | Op::ScatterNd { .. }
            | Op::Shape { .. }
            | Op::Size
            | Op::ConstantOfShape { .. }
            | Op::Range
            | Op::Pad { .. }
            | Op::NonZero => OpFamily::Movement,
            Op::MaxPool(_)
            | Op::AveragePool(_)
            | Op::GlobalAveragePool
            | Op::GlobalMaxPool
            | Op::Reduce { .. }
            | Op::ArgExtreme { .. }
            | Op::TopK { .. }
            | Op::MatMul
            | Op::Gemm { .. }
            | Op::Einsum { .. }
            | Op::Softmax { .. }
            | Op::LayerNorm { .. } => OpFamily::Reduction,
            Op::NonMaxSuppression { .. }
            | Op::RoiAlign(_)
            | Op::DeformConv(_)
            | Op::DeformSample(_)
            | Op::GridSample { .. } => OpFamily::Detection,
            Op::QuantizeLinear { .. } | Op::DequantizeLinear { .. } => OpFamily::Quantization,
            Op::Loop(_) | Op::If { .. } => OpFamily::Control,
            Op::Lib(_) | Op::Custom { .. } => OpFamily::Custom,
            Op::Opaque { .. } => OpFamily::Opaque,
        }
    }

    /// The canonical op name, used in views, reports and op counts.
    pub fn name(&self) -> &str {
        match self {
            Op::Input { .. } => "Input",
            Op::Constant { .. } => "Constant",
            Op::Conv(_) => "Conv",
            Op::ConvTranspose(_) => "ConvTranspose",
            Op::BatchNorm { .. } => "BatchNorm",
            Op::Resize(_) => "Resize",
            Op::Unary(u) => u.name(),
            Op::LeakyRelu { .. } => "LeakyRelu",
            Op::HardSigmoid { .. } => "HardSigmoid",
            Op::Clip { .. } => "Clip",
            Op::Gelu { .. } => "Gelu",
            Op::Binary(b) => b.name(),
            Op::Where => "Where",
            Op::Cast { .. } => "Cast",
            Op::CastLike => "CastLike",
            Op::Concat { .. } => "Concat",
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Split { .. } => "Split",
            Op::Slice => "Slice",
            Op::Flatten { .. } => "Flatten",
            Op::Squeeze => "Squeeze",
            Op::Unsqueeze => "Unsqueeze",
            Op::Expand => "Expand",
            Op::Tile => "Tile",
            Op::Gather { .. } => "Gather",
            Op::GatherElements { .. } => "GatherElements",
            Op::GatherNd { .. } => "GatherND",
            Op::ScatterNd { .. } => "ScatterND",
            Op::Shape { .. } => "Shape",
            Op::Size => "Size",
            Op::ConstantOfShape { .. } => "ConstantOfShape",
            Op::Range => "Range",
            Op::Pad { .. } => "Pad",
            Op::NonZero => "NonZero",
            Op::MaxPool(_) => "MaxPool",
            Op::AveragePool(_) => "AveragePool",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::GlobalMaxPool => "GlobalMaxPool",
            Op::Reduce { op, .. } => match op {
                ReduceOp::Mean => "ReduceMean",
                ReduceOp::Sum => "ReduceSum",
                ReduceOp::Max => "ReduceMax",
                ReduceOp::Min => "ReduceMin",
                ReduceOp::Prod => "ReduceProd",
            },
            Op::ArgExtreme { min: false, .. } => "ArgMax",
            Op::ArgExtreme { min: true, .. } => "ArgMin",
            Op::TopK { .. } => "TopK",
            Op::MatMul => "MatMul",
            Op::Gemm { .. } => "Gemm",
            Op::Einsum { .. } => "Einsum",
            Op::Softmax { log: false, .. } => "Softmax",
            Op::Softmax { log: true, .. } => "LogSoftmax",
            Op::LayerNorm { .. } => "LayerNorm",
            Op::NonMaxSuppression { .. } => "NonMaxSuppression",
            Op::RoiAlign(_) => "RoiAlign",
            Op::DeformConv(_) => "DeformConv",
            Op::DeformSample(_) => "DeformSample",
            Op::GridSample { .. } => "GridSample",
            Op::QuantizeLinear { .. } => "QuantizeLinear",
            Op::DequantizeLinear { .. } => "DequantizeLinear",
            Op::Loop(_) => "Loop",
            Op::If { .. } => "If",
            Op::Lib(op) => op.name(),
            Op::Custom { name, .. } => name,
            Op::Opaque { op_type, .. } => op_type,
        }
    }

    /// Graph inputs and constants are values, not computation: the views show them as graph
    /// inputs and weights rather than layers, and layer counts leave them out.
    pub fn is_layer(&self) -> bool {
        !matches!(self, Op::Input { .. } | Op::Constant { .. })
    }

    /// Smallest and largest number of input ports the op accepts.
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Input { .. } | Op::Constant { .. } => (0, 0),
            Op::Conv(_) => (2, 4),
            Op::ConvTranspose(_) => (2, 3),
            Op::BatchNorm { .. } => (5, 5),
            Op::Concat { .. } | Op::Einsum { .. } => (1, usize::MAX),
            Op::Lib(op) => op.arity(),
            Op::Custom { .. } | Op::Opaque { .. } => (0, usize::MAX),
            // Both the trip count and the condition are optional.
            Op::Loop(_) => (0, usize::MAX),
            Op::If { .. } => (1, usize::MAX),
            Op::Binary(_)
            | Op::Reshape { .. }
            | Op::Unsqueeze
            | Op::Expand
            | Op::Tile
            | Op::Gather { .. }
            | Op::GatherElements { .. }
            | Op::GatherNd { .. }
            | Op::TopK { .. }
            | Op::MatMul
            | Op::CastLike
            | Op::GridSample { .. } => (2, 2),
            Op::Squeeze | Op::Reduce { .. } => (1, 2),
            // Sizes known at import are the op's own; only run-time sizes stay an operand.
            Op::Split {
                sizes: SplitSizes::Operand(_),
                ..
            } => (2, 2),
            Op::Where | Op::ScatterNd { .. } | Op::Range | Op::RoiAlign(_) => (3, 3),
            Op::Slice => (3, 5),
            Op::Pad { .. } => (2, 4),
            Op::Gemm { .. } | Op::LayerNorm { .. } => (2, 3),
            Op::QuantizeLinear { .. } | Op::DequantizeLinear { .. } => (2, 3),
            Op::NonMaxSuppression { .. } => (2, 5),
            Op::DeformConv(_) => (3, 5),
            Op::DeformSample(_) => (2, 3),
            Op::Resize(_) => (1, 4),
            Op::Unary(_)
            | Op::LeakyRelu { .. }
            | Op::HardSigmoid { .. }
            | Op::Clip { .. }
            | Op::Gelu { .. }
            | Op::Cast { .. }
            | Op::Transpose { .. }
            | Op::Split { .. }
            | Op::Flatten { .. }
            | Op::Shape { .. }
            | Op::Size
            | Op::ConstantOfShape { .. }
            | Op::NonZero
            | Op::MaxPool(_)
            | Op::AveragePool(_)
            | Op::GlobalAveragePool
            | Op::GlobalMaxPool
            | Op::ArgExtreme { .. }
            | Op::Softmax { .. } => (1, 1),
        }
    }

    /// The most outputs the op can have; a node may use fewer when the trailing ones are
    /// optional.
    pub fn max_outputs(&self) -> usize {
        match self {
            Op::Split { sizes, .. } => sizes.count(),
            Op::TopK { .. } | Op::MaxPool(_) => 2,
            Op::LayerNorm { .. } => 3,
            Op::Lib(op) => op.output_count(),
            Op::Custom { .. } | Op::Opaque { .. } | Op::Loop(_) | Op::If { .. } => usize::MAX,
            _ => 1,
        }
    }
}
