//! How each PIR operator becomes the legacy operator the Paddle importer maps. PIR renamed
//! operands and attributes (`x` for `X`, `transpose_x` for `trans_x`) and turned many attributes
//! into operands fed by constant ops (`reshape(x, shape)`, `mean(x, axis)`); a rule undoes both,
//! so a Paddle 3 model imports through the same mappings, with the same semantics, as its legacy
//! twin. Ops with structure of their own (inputs, outputs, constants, combine/split, loops,
//! tensor arrays) are translated in `translate.rs`.

/// Where one PIR operand goes in the legacy op.
#[derive(Clone, Copy)]
pub(super) enum In {
    /// The legacy input parameter.
    P(&'static str),
    /// Legacy parameters for a single tensor and for a `builtin.combine` list of them
    /// (`StartsTensor` / `StartsTensorList`).
    Either(&'static str, &'static str),
    /// A constant operand folded into a list-of-integers attribute of that name.
    Ints(&'static str),
    /// A constant operand folded into a scalar number attribute of that name.
    Number(&'static str),
    /// An operand legacy Paddle does not have (a seed, an in-place destination).
    Drop,
}

use In::{Drop, Either, Ints, Number, P};

pub(super) struct Rule {
    pub pir: &'static str,
    pub legacy: &'static str,
    pub ins: &'static [In],
    /// The legacy output parameter of each result ("" when legacy has none).
    pub outs: &'static [&'static str],
    /// Attributes whose legacy name differs: (PIR, legacy).
    pub renames: &'static [(&'static str, &'static str)],
}

const fn r(
    pir: &'static str,
    legacy: &'static str,
    ins: &'static [In],
    outs: &'static [&'static str],
) -> Rule {
    Rule {
        pir,
        legacy,
        ins,
        outs,
        renames: &[],
    }
}

const fn rn(
    pir: &'static str,
    legacy: &'static str,
    ins: &'static [In],
    outs: &'static [&'static str],
    renames: &'static [(&'static str, &'static str)],
) -> Rule {
    Rule {
        pir,
        legacy,
        ins,
        outs,
        renames,
    }
}

const XY: &[In] = &[P("X"), P("Y")];
const X: &[In] = &[P("X")];
const OUT: &[&str] = &["Out"];

/// Every `pd_op` the translation maps by rule, by PIR name (without `pd_op.`).
pub(super) const RULES: &[Rule] = &[
    // Elementwise arithmetic and comparisons: numpy broadcasting is legacy axis -1.
    r("add", "elementwise_add", XY, OUT),
    r("subtract", "elementwise_sub", XY, OUT),
    r("multiply", "elementwise_mul", XY, OUT),
    r("divide", "elementwise_div", XY, OUT),
    r("elementwise_pow", "elementwise_pow", XY, OUT),
    r("maximum", "elementwise_max", XY, OUT),
    r("minimum", "elementwise_min", XY, OUT),
    r("less_than", "less_than", XY, OUT),
    r("less_equal", "less_equal", XY, OUT),
    r("greater_than", "greater_than", XY, OUT),
    r("greater_equal", "greater_equal", XY, OUT),
    r("equal", "equal", XY, OUT),
    r("not_equal", "not_equal", XY, OUT),
    r("logical_and", "logical_and", XY, OUT),
    r("logical_or", "logical_or", XY, OUT),
    r("logical_not", "logical_not", X, OUT),
    // Activations and other unary math.
    r("relu", "relu", X, OUT),
    r("relu6", "relu6", X, OUT),
    rn(
        "leaky_relu",
        "leaky_relu",
        X,
        OUT,
        &[("negative_slope", "alpha")],
    ),
    r("sigmoid", "sigmoid", X, OUT),
    r("tanh", "tanh", X, OUT),
    r("exp", "exp", X, OUT),
    r("log", "log", X, OUT),
    r("sqrt", "sqrt", X, OUT),
    r("rsqrt", "rsqrt", X, OUT),
    r("abs", "abs", X, OUT),
    r("floor", "floor", X, OUT),
    r("ceil", "ceil", X, OUT),
    r("round", "round", X, OUT),
    r("sign", "sign", X, OUT),
    r("erf", "erf", X, OUT),
    r("softplus", "softplus", X, OUT),
    r("mish", "mish", X, OUT),
    r("swish", "swish", X, OUT),
    r("silu", "silu", X, OUT),
    r("hardswish", "hard_swish", X, OUT),
    r("hardsigmoid", "hard_sigmoid", X, OUT),
    r("gelu", "gelu", X, OUT),
    r("scale", "scale", &[P("X"), Number("scale")], OUT),
    r("clip", "clip", &[P("X"), Number("min"), Number("max")], OUT),
    r("where", "where", &[P("Condition"), P("X"), P("Y")], OUT),
    rn("cast", "cast", X, OUT, &[("dtype", "out_dtype")]),
    // Linear algebra, normalization, reductions.
    rn(
        "matmul",
        "matmul_v2",
        XY,
        OUT,
        &[("transpose_x", "trans_x"), ("transpose_y", "trans_y")],
    ),
    r("softmax", "softmax", X, OUT),
    r(
        "layer_norm",
        "layer_norm",
        &[P("X"), P("Scale"), P("Bias")],
        &["Y", "Mean", "Variance"],
    ),
    rn(
        "mean",
        "reduce_mean",
        &[P("X"), Ints("dim")],
        OUT,
        &[("keepdim", "keep_dim")],
    ),
    rn(
        "max",
        "reduce_max",
        &[P("X"), Ints("dim")],
        OUT,
        &[("keepdim", "keep_dim")],
    ),
    rn(
        "min",
        "reduce_min",
        &[P("X"), Ints("dim")],
        OUT,
        &[("keepdim", "keep_dim")],
    ),
    rn(
        "sum",
        "reduce_sum",
        &[P("X"), Ints("dim")],
        OUT,
        &[("keepdim", "keep_dim")],
    ),
    r("topk", "top_k_v2", &[P("X"), P("K")], &["Out", "Indices"]),
    r("argsort", "argsort", X, &["Out", "Indices"]),
    rn(
        "dropout",
        "dropout",
        &[P("X"), Drop, Number("dropout_prob")],
        &["Out", "Mask"],
        &[("mode", "dropout_implementation")],
    ),
    // Movement.
    r(
        "reshape",
        "reshape2",
        &[P("X"), Either("Shape", "ShapeTensor")],
        OUT,
    ),
    rn("transpose", "transpose2", X, OUT, &[("perm", "axis")]),
    r("concat", "concat", &[P("X"), P("AxisTensor")], OUT),
    r(
        "split",
        "split",
        &[P("X"), Ints("sections"), P("AxisTensor")],
        OUT,
    ),
    r("split_with_num", "split", &[P("X"), P("AxisTensor")], OUT),
    r(
        "slice",
        "slice",
        &[
            P("Input"),
            Either("StartsTensor", "StartsTensorList"),
            Either("EndsTensor", "EndsTensorList"),
        ],
        OUT,
    ),
    r(
        "strided_slice",
        "strided_slice",
        &[
            P("Input"),
            Either("StartsTensor", "StartsTensorList"),
            Either("EndsTensor", "EndsTensorList"),
            Either("StridesTensor", "StridesTensorList"),
        ],
        OUT,
    ),
    r("squeeze", "squeeze2", &[P("X"), Ints("axes")], OUT),
    r(
        "unsqueeze",
        "unsqueeze2",
        &[P("X"), Either("AxesTensor", "AxesTensorList")],
        OUT,
    ),
    r("flatten", "flatten_contiguous_range", X, OUT),
    r("stack", "stack", X, &["Y"]),
    r(
        "expand",
        "expand_v2",
        &[P("X"), Either("Shape", "expand_shapes_tensor")],
        OUT,
    ),
    r("gather", "gather", &[P("X"), P("Index"), P("Axis")], OUT),
    r("gather_nd", "gather_nd", &[P("X"), P("Index")], OUT),
    r("meshgrid", "meshgrid", X, OUT),
    r("broadcast_tensors", "broadcast_tensors", X, OUT),
    // Creation.
    r("shape", "shape", &[P("Input")], OUT),
    r("arange", "range", &[P("Start"), P("End"), P("Step")], OUT),
    r(
        "full_like",
        "fill_any_like",
        &[P("X"), Number("value")],
        OUT,
    ),
    r(
        "full_batch_size_like",
        "fill_constant_batch_size_like",
        &[P("Input")],
        OUT,
    ),
    r("assign", "assign", X, OUT),
    r("assign_out_", "assign", &[P("X"), Drop], OUT),
    // Convolution, normalization, pooling, interpolation.
    r("conv2d", "conv2d", &[P("Input"), P("Filter")], &["Output"]),
    r(
        "depthwise_conv2d",
        "depthwise_conv2d",
        &[P("Input"), P("Filter")],
        &["Output"],
    ),
    r(
        "conv2d_transpose",
        "conv2d_transpose",
        &[P("Input"), P("Filter"), Ints("output_size")],
        &["Output"],
    ),
    r(
        "deformable_conv",
        "deformable_conv",
        &[P("Input"), P("Offset"), P("Filter"), P("Mask")],
        &["Output"],
    ),
    rn(
        "batch_norm",
        "batch_norm",
        &[P("X"), P("Mean"), P("Variance"), P("Scale"), P("Bias")],
        &[
            "Y",
            "MeanOut",
            "VarianceOut",
            "SavedMean",
            "SavedVariance",
            "ReserveSpace",
        ],
        &[("data_format", "data_layout")],
    ),
    r("pool2d", "pool2d", &[P("X"), Ints("ksize")], OUT),
    r(
        "nearest_interp",
        "nearest_interp_v2",
        &[P("X"), P("OutSize"), P("SizeTensor"), P("Scale")],
        OUT,
    ),
    r(
        "bilinear_interp",
        "bilinear_interp_v2",
        &[P("X"), P("OutSize"), P("SizeTensor"), P("Scale")],
        OUT,
    ),
    // Detection: the ops_lib operators and the samplers.
    r(
        "roi_align",
        "roi_align",
        &[P("X"), P("ROIs"), P("RoisNum")],
        OUT,
    ),
    r(
        "grid_sample",
        "grid_sampler",
        &[P("X"), P("Grid")],
        &["Output"],
    ),
    rn(
        "nms",
        "nms",
        &[P("Boxes")],
        &["KeepBoxesIdxs"],
        &[("threshold", "iou_threshold")],
    ),
    r(
        "yolo_box",
        "yolo_box",
        &[P("X"), P("ImgSize")],
        &["Boxes", "Scores"],
    ),
    r(
        "multiclass_nms3",
        "multiclass_nms3",
        &[P("BBoxes"), P("Scores"), P("RoisNum")],
        &["Out", "Index", "NmsRoisNum"],
    ),
    r(
        "matrix_nms",
        "matrix_nms",
        &[P("BBoxes"), P("Scores")],
        &["Out", "Index", "RoisNum"],
    ),
    rn(
        "generate_proposals",
        "generate_proposals_v2",
        &[
            P("Scores"),
            P("BboxDeltas"),
            P("ImShape"),
            P("Anchors"),
            P("Variances"),
        ],
        &["RpnRois", "RpnRoiProbs", "RpnRoisNum"],
        &[
            ("pre_nms_top_n", "pre_nms_topN"),
            ("post_nms_top_n", "post_nms_topN"),
        ],
    ),
    r(
        "distribute_fpn_proposals",
        "distribute_fpn_proposals",
        &[P("FpnRois"), P("RoisNum")],
        &["MultiFpnRois", "MultiLevelRoIsNum", "RestoreIndex"],
    ),
    // Tensor arrays (create_array and array_write_ are structural).
    r("array_length", "lod_array_length", X, OUT),
    r(
        "array_to_tensor",
        "tensor_array_to_tensor",
        X,
        &["Out", "OutIndex"],
    ),
];

/// The rule of a `pd_op` (an in-place variant `batch_norm_` has its base op's rule).
pub(super) fn find(pir: &str) -> Option<&'static Rule> {
    let base = pir.strip_suffix('_').unwrap_or(pir);
    RULES
        .iter()
        .find(|r| r.pir == pir)
        .or_else(|| RULES.iter().find(|r| r.pir == base))
}
