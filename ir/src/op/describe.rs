//! The canonical attributes of each node's op as name/value pairs, for views and snapshots.

use super::{
    Activation, AutoPad, LibOp, Op, ResizeAspect, ResizeCoordinate, ResizeMode, SplitSizes,
};
use crate::AttrValue;
use crate::Node;

impl Node {
    /// Human-readable canonical attributes, in a fixed order, for views and snapshots. An ops_lib
    /// op's come in the order of the node's source attributes (see [`LibOp::attributes`]).
    pub fn attributes(&self) -> Vec<(String, AttrValue)> {
        use AttrValue::{Float, Int, Ints, String as Str};
        let ints = |v: &[usize]| Ints(v.iter().map(|&x| x as i64).collect());
        let flag = |b: bool| Int(b as i64);
        let name = |v: &dyn std::fmt::Debug| Str(format!("{v:?}").to_lowercase());
        let named: Vec<(&str, AttrValue)> = match &self.op {
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
                if a.auto_pad != AutoPad::NotSet {
                    v.push(("auto_pad", name(&a.auto_pad)));
                }
                if let Some(act) = &a.activation {
                    v.push(("activation", Str(act.name().to_string())));
                    v.extend(activation_params(act));
                }
                if let Some(affine) = &a.affine {
                    v.push(("affine_scale", Float(affine.scale)));
                    v.push(("affine_shift", Float(affine.shift)));
                }
                v
            }
            Op::ConvTranspose(a) => {
                let mut v = vec![
                    ("kernel", ints(&a.kernel)),
                    ("strides", ints(&a.strides)),
                    ("dilations", ints(&a.dilations)),
                    ("pads", ints(&a.pads)),
                    ("output_padding", ints(&a.output_padding)),
                    ("group", Int(a.group as i64)),
                ];
                if let Some(act) = &a.activation {
                    v.push(("activation", Str(act.name().to_string())));
                    v.extend(activation_params(act));
                }
                v
            }
            Op::DeformConv(a) => vec![
                ("kernel", ints(&a.kernel)),
                ("strides", ints(&a.strides)),
                ("dilations", ints(&a.dilations)),
                ("pads", ints(&a.pads)),
                ("group", Int(a.group as i64)),
                ("offset_group", Int(a.offset_group as i64)),
            ],
            Op::DeformSample(a) => vec![
                ("kernel", ints(&a.kernel)),
                ("strides", ints(&a.strides)),
                ("dilations", ints(&a.dilations)),
                ("pads", ints(&a.pads)),
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
                if a.mode == ResizeMode::Cubic {
                    v.push(("cubic_coeff_a", Float(a.cubic_coeff_a)));
                    v.push(("exclude_outside", flag(a.exclude_outside)));
                }
                if a.coordinate == ResizeCoordinate::TfCropAndResize {
                    v.push(("extrapolation_value", Float(a.extrapolation_value)));
                }
                if a.antialias {
                    v.push(("antialias", flag(true)));
                }
                if let Some(axes) = &a.axes {
                    v.push(("axes", Ints(axes.clone())));
                }
                if a.aspect != ResizeAspect::Stretch {
                    v.push(("keep_aspect_ratio_policy", name(&a.aspect)));
                }
                v
            }
            Op::Concat { axis } => vec![("axis", Int(*axis))],
            Op::Reshape { allowzero } => vec![("allowzero", flag(*allowzero))],
            Op::Transpose { perm } => vec![("perm", ints(perm))],
            Op::Split { axis, sizes } => match sizes {
                SplitSizes::Equal(n) => vec![("axis", Int(*axis)), ("equal_parts", Int(*n as i64))],
                SplitSizes::Explicit(s) => vec![("axis", Int(*axis)), ("sizes", ints(s))],
                SplitSizes::Operand(n) => {
                    vec![("axis", Int(*axis)), ("operand_parts", Int(*n as i64))]
                }
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
                if a.auto_pad != AutoPad::NotSet {
                    v.push(("auto_pad", name(&a.auto_pad)));
                }
                if matches!(self.op, Op::AveragePool(_)) {
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
            Op::Loop(a) => vec![
                ("body", Int(a.body.0 as i64)),
                ("carried", Int(a.carried as i64)),
            ],
            Op::If {
                then_branch,
                else_branch,
            } => vec![
                ("then_branch", Int(then_branch.0 as i64)),
                ("else_branch", Int(else_branch.0 as i64)),
            ],
            Op::Lib(op) => {
                let mut v = vec![("domain".to_string(), Str(LibOp::DOMAIN.to_string()))];
                v.extend(op.attributes(&self.source_attrs));
                return v;
            }
            Op::Custom { domain, attrs, .. } => {
                let mut v = vec![("domain".to_string(), Str(domain.clone()))];
                v.extend(attrs.iter().cloned());
                return v;
            }
            Op::Opaque { domain, .. } if !domain.is_empty() => {
                vec![("domain", Str(domain.clone()))]
            }
            Op::Opaque { .. } => vec![],
            Op::Unary(_)
            | Op::Binary(_)
            | Op::Where
            | Op::CastLike
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
