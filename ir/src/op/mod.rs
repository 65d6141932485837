//! The canonical op set: the framework-neutral meaning of each node.
//!
//! Input order follows ONNX where an ONNX op exists, and so do operands: values that real models
//! may compute at run time (a Reshape's shape, Slice bounds, Squeeze axes, a TopK's k) stay
//! inputs, read by shape inference when they are constants and by the kernels always. The
//! exceptions are operands every supported model gives as constants and that decide the op's
//! structure (Clip bounds, Split sizes, Resize scales or sizes): those are attributes here,
//! resolved by the frontend. Ops are grouped by family, and each family has one file in the
//! frontend, in shape inference and in the CPU runtime.

mod attrs;

pub use attrs::*;

use crate::{AttrValue, DType, WeightId};
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

    /// An ops_lib operator, or any op kept opaque.
    Custom {
        domain: String,
        name: String,
        attrs: Vec<(String, AttrValue)>,
    },
}

/// Elementwise functions of one tensor. `Not` is on bool; the others on numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnaryOp {
    Identity,
    Relu,
    Sigmoid,
    Tanh,
    Erf,
    Sqrt,
    Exp,
    Log,
    Neg,
    Abs,
    Reciprocal,
    Floor,
    Ceil,
    Round,
    Sign,
    Not,
    Softplus,
    Mish,
    /// `x * relu6(x + 3) / 6`.
    HardSwish,
}

impl UnaryOp {
    pub const ALL: [UnaryOp; 19] = [
        UnaryOp::Identity,
        UnaryOp::Relu,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
        UnaryOp::Erf,
        UnaryOp::Sqrt,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Reciprocal,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
        UnaryOp::Sign,
        UnaryOp::Not,
        UnaryOp::Softplus,
        UnaryOp::Mish,
        UnaryOp::HardSwish,
    ];

    /// The ONNX op type of the same meaning.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Identity => "Identity",
            UnaryOp::Relu => "Relu",
            UnaryOp::Sigmoid => "Sigmoid",
            UnaryOp::Tanh => "Tanh",
            UnaryOp::Erf => "Erf",
            UnaryOp::Sqrt => "Sqrt",
            UnaryOp::Exp => "Exp",
            UnaryOp::Log => "Log",
            UnaryOp::Neg => "Neg",
            UnaryOp::Abs => "Abs",
            UnaryOp::Reciprocal => "Reciprocal",
            UnaryOp::Floor => "Floor",
            UnaryOp::Ceil => "Ceil",
            UnaryOp::Round => "Round",
            UnaryOp::Sign => "Sign",
            UnaryOp::Not => "Not",
            UnaryOp::Softplus => "Softplus",
            UnaryOp::Mish => "Mish",
            UnaryOp::HardSwish => "HardSwish",
        }
    }
}

/// How a Split divides its axis. Shape inference turns `Equal` into `Explicit` when the axis
/// extent is known; the runtime resolves what is left from the actual extent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitSizes {
    /// That many equal parts; the extent must divide evenly.
    Equal(usize),
    Explicit(Vec<usize>),
}

impl SplitSizes {
    /// The number of outputs.
    pub fn count(&self) -> usize {
        match self {
            SplitSizes::Equal(n) => *n,
            SplitSizes::Explicit(sizes) => sizes.len(),
        }
    }

    /// The part sizes for an axis of `extent`; `None` when they do not add up to it.
    pub fn resolve(&self, extent: usize) -> Option<Vec<usize>> {
        let sizes = match self {
            SplitSizes::Equal(n) if *n > 0 && extent.is_multiple_of(*n) => vec![extent / n; *n],
            SplitSizes::Equal(_) => return None,
            SplitSizes::Explicit(sizes) => sizes.clone(),
        };
        (sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s)) == Some(extent)).then_some(sizes)
    }
}

/// Elementwise functions of two broadcast tensors. Comparisons give bool; `And`/`Or`/`Xor`
/// take bool; `PRelu` is `a` where positive, else `a * b` (b is the slope).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Min,
    Max,
    /// Integer remainder with the divisor's sign (ONNX Mod, fmod 0).
    Mod,
    /// C `fmod`: the dividend's sign (ONNX Mod, fmod 1).
    Fmod,
    Equal,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    And,
    Or,
    Xor,
    PRelu,
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 18] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Min,
        BinaryOp::Max,
        BinaryOp::Mod,
        BinaryOp::Fmod,
        BinaryOp::Equal,
        BinaryOp::Greater,
        BinaryOp::GreaterOrEqual,
        BinaryOp::Less,
        BinaryOp::LessOrEqual,
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Xor,
        BinaryOp::PRelu,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "Add",
            BinaryOp::Sub => "Sub",
            BinaryOp::Mul => "Mul",
            BinaryOp::Div => "Div",
            BinaryOp::Pow => "Pow",
            BinaryOp::Min => "Min",
            BinaryOp::Max => "Max",
            BinaryOp::Mod => "Mod",
            BinaryOp::Fmod => "Fmod",
            BinaryOp::Equal => "Equal",
            BinaryOp::Greater => "Greater",
            BinaryOp::GreaterOrEqual => "GreaterOrEqual",
            BinaryOp::Less => "Less",
            BinaryOp::LessOrEqual => "LessOrEqual",
            BinaryOp::And => "And",
            BinaryOp::Or => "Or",
            BinaryOp::Xor => "Xor",
            BinaryOp::PRelu => "PRelu",
        }
    }

    /// The result is bool whatever the operands are.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Equal
                | BinaryOp::Greater
                | BinaryOp::GreaterOrEqual
                | BinaryOp::Less
                | BinaryOp::LessOrEqual
        )
    }
}

impl Op {
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
            Op::GridSample { .. } => "GridSample",
            Op::QuantizeLinear { .. } => "QuantizeLinear",
            Op::DequantizeLinear { .. } => "DequantizeLinear",
            Op::Custom { name, .. } => name,
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
            Op::Custom { .. } => (0, usize::MAX),
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
            | Op::GridSample { .. } => (2, 2),
            Op::Squeeze | Op::Reduce { .. } => (1, 2),
            Op::Where | Op::ScatterNd { .. } | Op::Range | Op::RoiAlign(_) => (3, 3),
            Op::Slice => (3, 5),
            Op::Pad { .. } => (2, 4),
            Op::Gemm { .. } | Op::LayerNorm { .. } => (2, 3),
            Op::QuantizeLinear { .. } | Op::DequantizeLinear { .. } => (2, 3),
            Op::NonMaxSuppression { .. } => (2, 5),
            Op::DeformConv(_) => (3, 5),
            Op::Resize(_)
            | Op::Unary(_)
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
            Op::Custom { .. } => usize::MAX,
            _ => 1,
        }
    }

    /// Human-readable canonical attributes, in a fixed order, for views and snapshots.
    pub fn attributes(&self) -> Vec<(String, AttrValue)> {
        use AttrValue::{Float, Int, Ints, String as Str};
        let ints = |v: &[usize]| Ints(v.iter().map(|&x| x as i64).collect());
        let flag = |b: bool| Int(b as i64);
        let name = |v: &dyn std::fmt::Debug| Str(format!("{v:?}").to_lowercase());
        let named: Vec<(&str, AttrValue)> = match self {
            Op::Input { index } => vec![("index", Int(*index as i64))],
            Op::Constant { weight } => vec![("weight", Int(weight.0 as i64))],
            Op::Conv(a) => {
                let mut v = vec![
                    ("kernel", ints(&a.kernel)),
                    ("strides", ints(&a.strides)),
                    ("dilations", ints(&a.dilations)),
                    ("pads", ints(&a.pads)),
                    ("group", Int(a.group as i64)),
                ];
                if let Some(act) = &a.activation {
                    v.push(("activation", Str(act.name().to_string())));
                    v.extend(activation_params(act));
                }
                v
            }
            Op::ConvTranspose(a) => vec![
                ("kernel", ints(&a.kernel)),
                ("strides", ints(&a.strides)),
                ("dilations", ints(&a.dilations)),
                ("pads", ints(&a.pads)),
                ("output_padding", ints(&a.output_padding)),
                ("group", Int(a.group as i64)),
            ],
            Op::DeformConv(a) => vec![
                ("kernel", ints(&a.kernel)),
                ("strides", ints(&a.strides)),
                ("dilations", ints(&a.dilations)),
                ("pads", ints(&a.pads)),
                ("group", Int(a.group as i64)),
                ("offset_group", Int(a.offset_group as i64)),
            ],
            Op::BatchNorm { epsilon } => vec![("epsilon", Float(*epsilon))],
            Op::LeakyRelu { alpha } => vec![("alpha", Float(*alpha))],
            Op::HardSigmoid { alpha, beta } => {
                vec![("alpha", Float(*alpha)), ("beta", Float(*beta))]
            }
            Op::Clip { min, max } => vec![("min", Float(*min)), ("max", Float(*max))],
            Op::Gelu { tanh } => vec![("tanh", flag(*tanh))],
            Op::Cast { to } => vec![("to", Str(to.name().to_string()))],
            Op::Resize(a) => {
                let mut v = vec![
                    ("mode", name(&a.mode)),
                    ("coordinate", name(&a.coordinate)),
                    ("nearest", name(&a.nearest)),
                ];
                if let Some(s) = &a.scales {
                    v.push(("scales", AttrValue::Floats(s.clone())));
                }
                if let Some(s) = &a.sizes {
                    v.push(("sizes", ints(s)));
                }
                v
            }
            Op::Concat { axis } => vec![("axis", Int(*axis))],
            Op::Reshape { allowzero } => vec![("allowzero", flag(*allowzero))],
            Op::Transpose { perm } => vec![("perm", ints(perm))],
            Op::Split { axis, sizes } => match sizes {
                SplitSizes::Equal(n) => vec![("axis", Int(*axis)), ("equal_parts", Int(*n as i64))],
                SplitSizes::Explicit(s) => vec![("axis", Int(*axis)), ("sizes", ints(s))],
            },
            Op::Flatten { axis }
            | Op::Gather { axis }
            | Op::GatherElements { axis }
            | Op::DequantizeLinear { axis } => vec![("axis", Int(*axis))],
            Op::GatherNd { batch_dims } => vec![("batch_dims", Int(*batch_dims as i64))],
            Op::ScatterNd { reduction } => vec![("reduction", name(reduction))],
            Op::Shape { start, end } => {
                let mut v = vec![("start", Int(*start))];
                if let Some(e) = end {
                    v.push(("end", Int(*e)));
                }
                v
            }
            Op::ConstantOfShape { value } => vec![
                ("dtype", Str(value.dtype.name().to_string())),
                ("value", Float(value.value as f32)),
            ],
            Op::Pad { mode } => vec![("mode", name(mode))],
            Op::MaxPool(a) | Op::AveragePool(a) => {
                let mut v = vec![
                    ("kernel", ints(&a.kernel)),
                    ("strides", ints(&a.strides)),
                    ("dilations", ints(&a.dilations)),
                    ("pads", ints(&a.pads)),
                    ("ceil_mode", flag(a.ceil_mode)),
                ];
                if matches!(self, Op::AveragePool(_)) {
                    v.push(("count_include_pad", flag(a.count_include_pad)));
                }
                v
            }
            Op::Reduce {
                keepdims,
                noop_with_empty_axes,
                ..
            } => vec![
                ("keepdims", flag(*keepdims)),
                ("noop_with_empty_axes", flag(*noop_with_empty_axes)),
            ],
            Op::ArgExtreme {
                axis,
                keepdims,
                select_last_index,
                ..
            } => vec![
                ("axis", Int(*axis)),
                ("keepdims", flag(*keepdims)),
                ("select_last_index", flag(*select_last_index)),
            ],
            Op::TopK {
                axis,
                largest,
                sorted,
            } => vec![
                ("axis", Int(*axis)),
                ("largest", flag(*largest)),
                ("sorted", flag(*sorted)),
            ],
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => vec![
                ("alpha", Float(*alpha)),
                ("beta", Float(*beta)),
                ("trans_a", flag(*trans_a)),
                ("trans_b", flag(*trans_b)),
            ],
            Op::Einsum { equation } => vec![("equation", Str(equation.clone()))],
            Op::Softmax { axis, flatten, .. } => {
                vec![("axis", Int(*axis)), ("flatten", flag(*flatten))]
            }
            Op::LayerNorm { axis, epsilon } => {
                vec![("axis", Int(*axis)), ("epsilon", Float(*epsilon))]
            }
            Op::NonMaxSuppression { center_point_box } => {
                vec![("center_point_box", flag(*center_point_box))]
            }
            Op::RoiAlign(a) => vec![
                ("mode", Str(if a.max { "max" } else { "avg" }.to_string())),
                ("output_height", Int(a.output_height as i64)),
                ("output_width", Int(a.output_width as i64)),
                ("sampling_ratio", Int(a.sampling_ratio as i64)),
                ("spatial_scale", Float(a.spatial_scale)),
                ("half_pixel", flag(a.half_pixel)),
            ],
            Op::GridSample {
                mode,
                padding,
                align_corners,
            } => vec![
                ("mode", name(mode)),
                ("padding", name(padding)),
                ("align_corners", flag(*align_corners)),
            ],
            Op::QuantizeLinear { axis, saturate } => {
                vec![("axis", Int(*axis)), ("saturate", flag(*saturate))]
            }
            Op::Custom { domain, attrs, .. } => {
                let mut v = vec![("domain".to_string(), Str(domain.clone()))];
                v.extend(attrs.iter().cloned());
                return v;
            }
            Op::Unary(_)
            | Op::Binary(_)
            | Op::Where
            | Op::Slice
            | Op::Squeeze
            | Op::Unsqueeze
            | Op::Expand
            | Op::Tile
            | Op::Size
            | Op::Range
            | Op::NonZero
            | Op::GlobalAveragePool
            | Op::GlobalMaxPool
            | Op::MatMul => vec![],
        };
        named.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

fn activation_params(act: &Activation) -> Vec<(&'static str, AttrValue)> {
    match *act {
        Activation::LeakyRelu { alpha } => vec![("alpha", AttrValue::Float(alpha))],
        Activation::HardSigmoid { alpha, beta } => vec![
            ("alpha", AttrValue::Float(alpha)),
            ("beta", AttrValue::Float(beta)),
        ],
        Activation::Clip { min, max } => {
            vec![
                ("min", AttrValue::Float(min)),
                ("max", AttrValue::Float(max)),
            ]
        }
        Activation::Relu
        | Activation::Sigmoid
        | Activation::HardSwish
        | Activation::Silu
        | Activation::Mish => vec![],
    }
}
