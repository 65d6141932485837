//! The canonical op set: the framework-neutral meaning of each node.
//!
//! Input order follows ONNX where an ONNX op exists. Auxiliary operands that every supported
//! model gives as constants (Clip bounds, Split sizes, Resize scales or sizes) are attributes here,
//! resolved by the frontend; operands that real models compute at run time (a Reshape's target
//! shape) stay inputs.

use crate::{AttrValue, WeightId};
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
    /// Inputs: x `[N,C,H,W]`, w `[O,C/g,kH,kW]`, optional bias `[O]`.
    Conv(ConvAttrs),
    /// Inputs: x `[N,C,H,W]`, w `[C,O/g,kH,kW]`, optional bias `[O]`.
    ConvTranspose(ConvTransposeAttrs),
    /// Inference batch normalization. Inputs: x, scale, bias, mean, variance (all per channel).
    BatchNorm {
        epsilon: f32,
    },
    Unary(UnaryOp),
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
    /// Elementwise with numpy broadcasting. Inputs: a, b.
    Binary(BinaryOp),
    /// Mean over every axis after the second; keeps them as size 1.
    GlobalAveragePool,
    Resize(ResizeAttrs),
    /// Inputs: one or more tensors of equal rank.
    Concat {
        axis: i64,
    },
    /// Inputs: data, shape (int64, `0` copies a dimension unless `allowzero`, `-1` infers one).
    Reshape {
        allowzero: bool,
    },
    Transpose {
        perm: Vec<usize>,
    },
    /// Splits along `axis` into `sizes.count()` outputs.
    Split {
        axis: i64,
        sizes: SplitSizes,
    },
    /// An ops_lib operator, or any op kept opaque.
    Custom {
        domain: String,
        name: String,
        attrs: Vec<(String, AttrValue)>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnaryOp {
    Identity,
    Relu,
    Sigmoid,
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
            SplitSizes::Equal(n) if *n > 0 && extent % n == 0 => vec![extent / n; *n],
            SplitSizes::Equal(_) => return None,
            SplitSizes::Explicit(sizes) => sizes.clone(),
        };
        (sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s)) == Some(extent)).then_some(sizes)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvAttrs {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    /// top, left, bottom, right (ONNX order: begins then ends).
    pub pads: [usize; 4],
    pub group: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvTransposeAttrs {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    /// top, left, bottom, right.
    pub pads: [usize; 4],
    pub output_padding: [usize; 2],
    pub group: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    Nearest,
    Linear,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeCoordinate {
    HalfPixel,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeNearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

/// Resize of the trailing spatial axes. Exactly one of `scales` and `sizes` is set, one entry
/// per input axis (ONNX semantics; leading entries are 1 / the input extent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResizeAttrs {
    pub mode: ResizeMode,
    pub coordinate: ResizeCoordinate,
    pub nearest: ResizeNearest,
    pub scales: Option<Vec<f32>>,
    pub sizes: Option<Vec<usize>>,
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
            Op::Unary(UnaryOp::Identity) => "Identity",
            Op::Unary(UnaryOp::Relu) => "Relu",
            Op::Unary(UnaryOp::Sigmoid) => "Sigmoid",
            Op::HardSigmoid { .. } => "HardSigmoid",
            Op::Clip { .. } => "Clip",
            Op::Binary(BinaryOp::Add) => "Add",
            Op::Binary(BinaryOp::Sub) => "Sub",
            Op::Binary(BinaryOp::Mul) => "Mul",
            Op::Binary(BinaryOp::Div) => "Div",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::Resize(_) => "Resize",
            Op::Concat { .. } => "Concat",
            Op::Reshape { .. } => "Reshape",
            Op::Transpose { .. } => "Transpose",
            Op::Split { .. } => "Split",
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
            Op::Conv(_) | Op::ConvTranspose(_) => (2, 3),
            Op::BatchNorm { .. } => (5, 5),
            Op::Binary(_) | Op::Reshape { .. } => (2, 2),
            Op::Concat { .. } => (1, usize::MAX),
            Op::Custom { .. } => (0, usize::MAX),
            Op::Unary(_)
            | Op::HardSigmoid { .. }
            | Op::Clip { .. }
            | Op::GlobalAveragePool
            | Op::Resize(_)
            | Op::Transpose { .. }
            | Op::Split { .. } => (1, 1),
        }
    }

    /// Human-readable canonical attributes, in a fixed order, for views and snapshots.
    pub fn attributes(&self) -> Vec<(String, AttrValue)> {
        use AttrValue::{Float, Int, Ints, String as Str};
        let ints = |v: &[usize]| Ints(v.iter().map(|&x| x as i64).collect());
        let named: Vec<(&str, AttrValue)> = match self {
            Op::Input { index } => vec![("index", Int(*index as i64))],
            Op::Constant { weight } => vec![("weight", Int(weight.0 as i64))],
            Op::Conv(a) => vec![
                ("kernel", ints(&a.kernel)),
                ("strides", ints(&a.strides)),
                ("dilations", ints(&a.dilations)),
                ("pads", ints(&a.pads)),
                ("group", Int(a.group as i64)),
            ],
            Op::ConvTranspose(a) => vec![
                ("kernel", ints(&a.kernel)),
                ("strides", ints(&a.strides)),
                ("dilations", ints(&a.dilations)),
                ("pads", ints(&a.pads)),
                ("output_padding", ints(&a.output_padding)),
                ("group", Int(a.group as i64)),
            ],
            Op::BatchNorm { epsilon } => vec![("epsilon", Float(*epsilon))],
            Op::HardSigmoid { alpha, beta } => {
                vec![("alpha", Float(*alpha)), ("beta", Float(*beta))]
            }
            Op::Clip { min, max } => vec![("min", Float(*min)), ("max", Float(*max))],
            Op::Resize(a) => {
                let mut v = vec![
                    ("mode", Str(format!("{:?}", a.mode).to_lowercase())),
                    (
                        "coordinate",
                        Str(format!("{:?}", a.coordinate).to_lowercase()),
                    ),
                    ("nearest", Str(format!("{:?}", a.nearest).to_lowercase())),
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
            Op::Reshape { allowzero } => vec![("allowzero", Int(*allowzero as i64))],
            Op::Transpose { perm } => vec![("perm", ints(perm))],
            Op::Split { axis, sizes } => match sizes {
                SplitSizes::Equal(n) => vec![("axis", Int(*axis)), ("equal_parts", Int(*n as i64))],
                SplitSizes::Explicit(s) => vec![("axis", Int(*axis)), ("sizes", ints(s))],
            },
            Op::Custom { domain, attrs, .. } => {
                let mut v = vec![("domain".to_string(), Str(domain.clone()))];
                v.extend(attrs.iter().cloned());
                return v;
            }
            Op::Unary(_) | Op::Binary(_) | Op::GlobalAveragePool => vec![],
        };
        named.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}
