//! IR op -> ONNX nodes. Most ops are one ONNX op of the same meaning with their attributes
//! spelled out; the fused and composite ones are decomposed in `fused.rs`, deformable sampling
//! in `deform.rs`, the ops_lib ops in `library/`.

use super::attrs::{deform_conv, flag, float, int, ints, padding, sizes, string, window};
use super::emit::Emitter;
use super::lower::Lower;
use super::model::dtype_code;
use super::{deform, fused, library};
use temblor_frontend::onnx_proto::AttributeProto;
use temblor_ir::{
    BinaryOp, ConvTransposeAttrs, DType, GridSampleMode, GridSamplePadding, Op, PadMode, PoolAttrs,
    ReduceOp, ResizeAspect, ResizeAttrs, ResizeCoordinate, ResizeMode, ResizeNearest,
    RoiAlignAttrs, ScatterReduction, SplitSizes,
};

pub(super) fn lower(em: &mut Emitter, cx: &Lower) -> Result<(), String> {
    match &cx.node.op {
        Op::Input { .. } | Op::Constant { .. } => {
            return Err("graph inputs and constants are not nodes".into())
        }
        Op::Conv(a) => fused::conv(em, cx, a)?,
        Op::ConvTranspose(a) => fused::conv_transpose(em, cx, a, conv_transpose(a)),
        Op::BatchNorm { epsilon } => {
            cx.same(em, "BatchNormalization", vec![float("epsilon", *epsilon)])
        }
        Op::Resize(a) => resize(em, cx, a),
        Op::Unary(u) => cx.same(em, u.name(), vec![]),
        Op::LeakyRelu { alpha } => cx.same(em, "LeakyRelu", vec![float("alpha", *alpha)]),
        Op::HardSigmoid { alpha, beta } => cx.same(
            em,
            "HardSigmoid",
            vec![float("alpha", *alpha), float("beta", *beta)],
        ),
        Op::Clip { min, max } => {
            let dtype = cx.dtype(cx.in_type(0)?.dtype);
            fused::clip(em, cx.name(), &cx.ins[0], dtype, *min, *max, &cx.outs[0]);
        }
        Op::Gelu { tanh } => cx.same(
            em,
            "Gelu",
            vec![string("approximate", if *tanh { "tanh" } else { "none" })],
        ),
        Op::Binary(b) => binary(em, cx, *b),
        Op::Where => cx.same(em, "Where", vec![]),
        Op::Cast { to } => {
            let to = dtype_code(cx.dtype(*to)) as i64;
            cx.same(em, "Cast", vec![int("to", to)])
        }
        // The target type is static in the IR, so a plain Cast says it to every consumer.
        Op::CastLike => {
            let to = dtype_code(cx.dtype(cx.in_type(1)?.dtype)) as i64;
            em.node(
                "Cast",
                cx.name(),
                vec![cx.ins[0].clone()],
                cx.outs.clone(),
                vec![int("to", to)],
            );
        }
        Op::Concat { axis } => cx.same(em, "Concat", vec![int("axis", *axis)]),
        Op::Reshape { allowzero } => cx.same(em, "Reshape", vec![flag("allowzero", *allowzero)]),
        Op::Transpose { perm } if perm.is_empty() => cx.same(em, "Transpose", vec![]),
        Op::Transpose { perm } => cx.same(em, "Transpose", vec![sizes("perm", perm)]),
        Op::Split { axis, sizes } => split(em, cx, *axis, sizes),
        Op::Slice => cx.same(em, "Slice", vec![]),
        Op::Flatten { axis } => cx.same(em, "Flatten", vec![int("axis", *axis)]),
        Op::Squeeze => cx.same(em, "Squeeze", vec![]),
        Op::Unsqueeze => cx.same(em, "Unsqueeze", vec![]),
        Op::Expand => cx.same(em, "Expand", vec![]),
        Op::Tile => cx.same(em, "Tile", vec![]),
        Op::Gather { axis } => cx.same(em, "Gather", vec![int("axis", *axis)]),
        Op::GatherElements { axis } => cx.same(em, "GatherElements", vec![int("axis", *axis)]),
        Op::GatherNd { batch_dims } => {
            let ins = int64_indices(em, cx)?;
            em.node(
                "GatherND",
                cx.name(),
                ins,
                cx.outs.clone(),
                vec![int("batch_dims", *batch_dims as i64)],
            )
        }
        Op::ScatterNd { reduction } => {
            let ins = int64_indices(em, cx)?;
            em.node(
                "ScatterND",
                cx.name(),
                ins,
                cx.outs.clone(),
                vec![string("reduction", scatter_reduction(*reduction))],
            )
        }
        Op::Shape { start, end } => {
            let mut a = vec![int("start", *start)];
            a.extend(end.map(|e| int("end", e)));
            cx.same(em, "Shape", a)
        }
        Op::Size => cx.same(em, "Size", vec![]),
        Op::ConstantOfShape { value } => cx.same(
            em,
            "ConstantOfShape",
            vec![Emitter::tensor_attr(
                "value",
                cx.dtype(value.dtype),
                value.value,
            )],
        ),
        Op::Range => cx.same(em, "Range", vec![]),
        Op::Pad { mode } => cx.same(em, "Pad", vec![string("mode", pad_mode(*mode))]),
        Op::NonZero => cx.same(em, "NonZero", vec![]),
        Op::MaxPool(a) => em.node(
            "MaxPool",
            cx.name(),
            cx.ins.clone(),
            cx.optional_outs(),
            pool(a, false),
        ),
        Op::AveragePool(a) => cx.same(em, "AveragePool", pool(a, true)),
        Op::GlobalAveragePool => cx.same(em, "GlobalAveragePool", vec![]),
        Op::GlobalMaxPool => cx.same(em, "GlobalMaxPool", vec![]),
        Op::Reduce {
            op,
            keepdims,
            noop_with_empty_axes,
        } => cx.same(
            em,
            reduce(*op),
            vec![
                flag("keepdims", *keepdims),
                flag("noop_with_empty_axes", *noop_with_empty_axes),
            ],
        ),
        Op::ArgExtreme {
            min,
            axis,
            keepdims,
            select_last_index,
        } => cx.same(
            em,
            if *min { "ArgMin" } else { "ArgMax" },
            vec![
                int("axis", *axis),
                flag("keepdims", *keepdims),
                flag("select_last_index", *select_last_index),
            ],
        ),
        Op::TopK {
            axis,
            largest,
            sorted,
        } => cx.same(
            em,
            "TopK",
            vec![
                int("axis", *axis),
                flag("largest", *largest),
                flag("sorted", *sorted),
            ],
        ),
        Op::MatMul => cx.same(em, "MatMul", vec![]),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => cx.same(
            em,
            "Gemm",
            vec![
                float("alpha", *alpha),
                float("beta", *beta),
                flag("transA", *trans_a),
                flag("transB", *trans_b),
            ],
        ),
        Op::Einsum { equation } => cx.same(em, "Einsum", vec![string("equation", equation)]),
        Op::Softmax { axis, log, flatten } => fused::softmax(em, cx, *axis, *log, *flatten)?,
        Op::LayerNorm { axis, epsilon } => em.node(
            "LayerNormalization",
            cx.name(),
            cx.ins.clone(),
            cx.optional_outs(),
            vec![int("axis", *axis), float("epsilon", *epsilon)],
        ),
        Op::NonMaxSuppression { center_point_box } => cx.same(
            em,
            "NonMaxSuppression",
            vec![flag("center_point_box", *center_point_box)],
        ),
        Op::RoiAlign(a) => cx.same(em, "RoiAlign", roi_align(a)),
        Op::DeformConv(a) => cx.same(em, "DeformConv", deform_conv(a, a.group)),
        Op::DeformSample(a) => deform::deform_sample(em, cx, a)?,
        Op::GridSample {
            mode,
            padding,
            align_corners,
        } => cx.same(
            em,
            "GridSample",
            grid_sample(*mode, *padding, *align_corners),
        ),
        Op::QuantizeLinear { axis, .. } => cx.same(em, "QuantizeLinear", vec![int("axis", *axis)]),
        Op::DequantizeLinear { axis } => cx.same(em, "DequantizeLinear", vec![int("axis", *axis)]),
        Op::Lib(op) => library::lower(em, cx, op)?,
        Op::Custom { domain, name, .. } => {
            return Err(format!(
                "op '{name}' of domain '{domain}' is not an ops_lib operator and has no ONNX form"
            ))
        }
        Op::Opaque { op_type, .. } => return Err(format!("{op_type} is an op temblor cannot map")),
        // Written with their bodies by the graph writer (lib.rs), which holds the bodies.
        Op::Loop(_) | Op::If { .. } => {
            return Err(format!("{} is written with its bodies", cx.node.op.name()))
        }
    }
    Ok(())
}

fn conv_transpose(a: &ConvTransposeAttrs) -> Vec<AttributeProto> {
    let mut v = window(&a.kernel, &a.strides, &a.dilations, &a.pads, a.group);
    v.push(sizes("output_padding", &a.output_padding));
    v
}

fn resize(em: &mut Emitter, cx: &Lower, a: &ResizeAttrs) {
    let mode = match a.mode {
        ResizeMode::Nearest => "nearest",
        ResizeMode::Linear => "linear",
        ResizeMode::Cubic => "cubic",
    };
    let coordinate = match a.coordinate {
        ResizeCoordinate::HalfPixel => "half_pixel",
        ResizeCoordinate::HalfPixelSymmetric => "half_pixel_symmetric",
        ResizeCoordinate::PytorchHalfPixel => "pytorch_half_pixel",
        ResizeCoordinate::AlignCorners => "align_corners",
        ResizeCoordinate::Asymmetric => "asymmetric",
        ResizeCoordinate::TfCropAndResize => "tf_crop_and_resize",
    };
    let nearest = match a.nearest {
        ResizeNearest::RoundPreferFloor => "round_prefer_floor",
        ResizeNearest::RoundPreferCeil => "round_prefer_ceil",
        ResizeNearest::Floor => "floor",
        ResizeNearest::Ceil => "ceil",
    };
    let aspect = match a.aspect {
        ResizeAspect::Stretch => "stretch",
        ResizeAspect::NotLarger => "not_larger",
        ResizeAspect::NotSmaller => "not_smaller",
    };
    let mut attrs = vec![
        string("mode", mode),
        string("coordinate_transformation_mode", coordinate),
        string("nearest_mode", nearest),
        float("cubic_coeff_a", a.cubic_coeff_a),
        flag("exclude_outside", a.exclude_outside),
        float("extrapolation_value", a.extrapolation_value),
        flag("antialias", a.antialias),
        string("keep_aspect_ratio_policy", aspect),
    ];
    if let Some(axes) = &a.axes {
        attrs.push(ints("axes", axes.iter().copied()));
    }
    em.node("Resize", cx.name(), cx.ins.clone(), cx.outs.clone(), attrs);
}

fn binary(em: &mut Emitter, cx: &Lower, b: BinaryOp) {
    match b {
        BinaryOp::Mod => cx.same(em, "Mod", vec![int("fmod", 0)]),
        BinaryOp::Fmod => cx.same(em, "Mod", vec![int("fmod", 1)]),
        other => cx.same(em, other.name(), vec![]),
    }
}

/// Opset 18's Split: explicit sizes as the `split` input, equal parts as `num_outputs`.
fn split(em: &mut Emitter, cx: &Lower, axis: i64, parts: &SplitSizes) {
    let mut ins = vec![cx.ins[0].clone()];
    let mut attrs = vec![int("axis", axis)];
    match parts {
        SplitSizes::Explicit(s) => {
            let s: Vec<i64> = s.iter().map(|&v| v as i64).collect();
            ins.push(em.int64s(&format!("{}.split", cx.name()), &s));
        }
        SplitSizes::Equal(n) => attrs.push(int("num_outputs", *n as i64)),
        SplitSizes::Operand(_) => ins.extend(cx.ins.get(1).cloned()),
    }
    em.node("Split", cx.name(), ins, cx.outs.clone(), attrs);
}

/// The inputs with the indices (input 1) as int64: ONNX's GatherND and ScatterND take no
/// other index type, where Paddle's gather_nd and scatter_nd_add also take int32.
fn int64_indices(em: &mut Emitter, cx: &Lower) -> Result<Vec<String>, String> {
    let mut ins = cx.ins.clone();
    if cx.in_type(1)?.dtype != DType::I64 {
        let wide = em.value(&format!("{}.indices_i64", cx.name()));
        em.node(
            "Cast",
            &format!("{}.indices_i64", cx.name()),
            vec![ins[1].clone()],
            vec![wide.clone()],
            vec![int("to", i64::from(dtype_code(DType::I64)))],
        );
        ins[1] = wide;
    }
    Ok(ins)
}

fn scatter_reduction(r: ScatterReduction) -> &'static str {
    match r {
        ScatterReduction::None => "none",
        ScatterReduction::Add => "add",
        ScatterReduction::Mul => "mul",
        ScatterReduction::Max => "max",
        ScatterReduction::Min => "min",
    }
}

fn pad_mode(m: PadMode) -> &'static str {
    match m {
        PadMode::Constant => "constant",
        PadMode::Reflect => "reflect",
        PadMode::Edge => "edge",
        PadMode::Wrap => "wrap",
    }
}

/// Dilations are written only where they are not all 1: AveragePool has them only from opset
/// 19, and TensorRT rejects them on pooling.
fn pool(a: &PoolAttrs, average: bool) -> Vec<AttributeProto> {
    let mut v = vec![
        sizes("kernel_shape", &a.kernel),
        sizes("strides", &a.strides),
        padding(&a.pads, a.auto_pad),
        flag("ceil_mode", a.ceil_mode),
    ];
    if a.dilations.iter().any(|&d| d != 1) {
        v.push(sizes("dilations", &a.dilations));
    }
    if average {
        v.push(flag("count_include_pad", a.count_include_pad));
    }
    v
}

fn reduce(op: ReduceOp) -> &'static str {
    match op {
        ReduceOp::Mean => "ReduceMean",
        ReduceOp::Sum => "ReduceSum",
        ReduceOp::Max => "ReduceMax",
        ReduceOp::Min => "ReduceMin",
        ReduceOp::Prod => "ReduceProd",
    }
}

fn roi_align(a: &RoiAlignAttrs) -> Vec<AttributeProto> {
    vec![
        string(
            "coordinate_transformation_mode",
            if a.half_pixel {
                "half_pixel"
            } else {
                "output_half_pixel"
            },
        ),
        string("mode", if a.max { "max" } else { "avg" }),
        int("output_height", a.output_height as i64),
        int("output_width", a.output_width as i64),
        int("sampling_ratio", a.sampling_ratio as i64),
        float("spatial_scale", a.spatial_scale),
    ]
}

fn grid_sample(
    mode: GridSampleMode,
    padding: GridSamplePadding,
    align_corners: bool,
) -> Vec<AttributeProto> {
    // Bilinear is the default of every opset and the one spelling TensorRT's parser reads
    // right: it samples opset 20's `linear` as nearest. It does not know `cubic` either (its
    // `bicubic` is opset 16's), which `temblor check-trt` reports.
    let mode = match mode {
        GridSampleMode::Linear => None,
        GridSampleMode::Nearest => Some("nearest"),
        GridSampleMode::Cubic => Some("cubic"),
    };
    let padding = match padding {
        GridSamplePadding::Zeros => "zeros",
        GridSamplePadding::Border => "border",
        GridSamplePadding::Reflection => "reflection",
    };
    let mut attrs = vec![
        string("padding_mode", padding),
        flag("align_corners", align_corners),
    ];
    attrs.extend(mode.map(|m| string("mode", m)));
    attrs
}
