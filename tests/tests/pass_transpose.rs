//! Layout and conv-tail rewrites of detection models on small hand-built graphs, each pinned as
//! parse/optimize views (insta) and checked numerically against the unrewritten graph on the
//! CPU runtime: transposes sunk below the Concat of a detection head's levels, per-channel
//! Mul/Add folded into DeformConv and ConvTranspose, and the residual Add and Relu of ResNet-vd
//! blocks with a deformable conv fused by the full optimizer; then yolov3_r18vd_dcn, whose
//! optimized graph must hold none of those layers.

use temblor_ir::{
    validate, Activation, BinaryOp, ConvTransposeAttrs, DType, DeformConvAttrs, Graph, GraphOutput,
    Layout, Op, PoolAttrs, Shape, TensorType, UnaryOp, ValueRef,
};
use temblor_passes::{
    optimize_passes, CommuteConstants, DeadNodes, Driver, FoldConvAffine, Pass, SinkTransposes,
};
use temblor_pipeline::{Options, VerifyMode};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor};
use temblor_tests::builder::{act, count, shape_only, Builder};
use temblor_tests::{rel_l2, shared, Rng};
use temblor_visualize::{render, View};

/// A type for shape inference to fill in.
fn any() -> TensorType {
    TensorType::new(DType::F32, Shape::default())
}

/// Graph input `x` of `[1, 4, 8, 8]`.
fn input(b: &mut Builder) -> ValueRef {
    let x = b.node("x", Op::Input { index: 0 }, act(4), &[]);
    b.g.inputs.push(x.node);
    x
}

fn finish(mut b: Builder, outputs: &[(&str, ValueRef)]) -> Graph {
    b.g.outputs = outputs
        .iter()
        .map(|&(name, value)| GraphOutput {
            name: name.into(),
            value,
        })
        .collect();
    temblor_infer::infer(&mut b.g).expect("types");
    validate(&b.g).expect("valid");
    b.g
}

fn optimize(g: &Graph, passes: Vec<Box<dyn Pass>>) -> Graph {
    let mut out = g.clone();
    Driver::new(passes).run(&mut out).expect("passes");
    validate(&out).expect("optimized graph is valid");
    out
}

/// Runs both graphs on the same input and compares every output.
fn assert_same_outputs(before: &Graph, after: &Graph) {
    let x = Rng(7).values(4 * 8 * 8);
    let run = |g: &Graph| {
        let feed = [("x".to_string(), Tensor::f32(vec![1, 4, 8, 8], x.clone()))];
        prepare(g, &Device::Cpu, &PrepareOptions::default())
            .expect("plan")
            .run_once(&feed)
            .expect("run")
    };
    let (expected, actual) = (run(before), run(after));
    assert_eq!(expected.len(), actual.len());
    for ((name, e), (name_a, a)) in expected.iter().zip(&actual) {
        assert_eq!(name, name_a);
        assert_eq!(e.shape, a.shape, "{name}");
        let err = rel_l2(a.as_f32().unwrap(), e.as_f32().unwrap());
        assert!(err < 1e-5, "{name}: relative L2 {err:e}");
    }
}

fn transpose(b: &mut Builder, name: &str, x: ValueRef, perm: &[usize]) -> ValueRef {
    let perm = perm.to_vec();
    b.node(name, Op::Transpose { perm }, any(), &[x])
}

fn unary(b: &mut Builder, name: &str, op: UnaryOp, x: ValueRef) -> ValueRef {
    b.node(name, Op::Unary(op), any(), &[x])
}

fn max_pool(b: &mut Builder, name: &str, x: ValueRef) -> ValueRef {
    let attrs = PoolAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        kernel: vec![2, 2],
        strides: vec![2, 2],
        dilations: vec![1, 1],
        pads: vec![0; 4],
        ceil_mode: false,
        count_include_pad: false,
    };
    b.node(name, Op::MaxPool(attrs), any(), &[x])
}

/// Three heads joined by Concat:
///  * `boxes`: three levels (8x8, 4x4, 2x2) flattened to `[1, 4, HW]` and transposed to
///    `[1, HW, 4]`, one of them through a Sigmoid after its Transpose, joined along the anchors;
///  * `maps`: two NCHW maps transposed to NHWC and joined along the channels, `axis = -1`;
///  * `kept`: like `maps`, but one Transpose is also a graph output, so nothing sinks.
fn heads() -> Graph {
    let mut b = Builder::new("heads", 0x853C49E6748FEA9B);
    let x = input(&mut b);
    let mid = max_pool(&mut b, "down1", x);
    let low = max_pool(&mut b, "down2", mid);
    let mut levels = Vec::new();
    for (i, level) in [x, mid, low].into_iter().enumerate() {
        let shape = b.ints(&format!("flat{i}.shape"), &[1, 4, -1]);
        let flat = b.node(
            &format!("flat{i}"),
            Op::Reshape { allowzero: false },
            any(),
            &[level, shape],
        );
        let t = transpose(&mut b, &format!("anchors{i}"), flat, &[0, 2, 1]);
        levels.push(match i {
            1 => unary(&mut b, "score1", UnaryOp::Sigmoid, t),
            _ => t,
        });
    }
    let boxes = b.node("boxes", Op::Concat { axis: 1 }, any(), &levels);

    let nhwc = [0, 2, 3, 1];
    let a = transpose(&mut b, "maps.a", x, &nhwc);
    let neg = unary(&mut b, "maps.neg", UnaryOp::Neg, x);
    let c = transpose(&mut b, "maps.b", neg, &nhwc);
    let maps = b.node("maps", Op::Concat { axis: -1 }, any(), &[a, c]);

    let a = transpose(&mut b, "kept.a", x, &nhwc);
    let kept_part = transpose(&mut b, "kept.b", neg, &nhwc);
    let kept = b.node("kept", Op::Concat { axis: 2 }, any(), &[a, kept_part]);
    finish(
        b,
        &[
            ("boxes", boxes),
            ("maps", maps),
            ("kept", kept),
            ("kept_part", kept_part),
        ],
    )
}

#[test]
fn transposes_sink_below_the_concat_of_a_heads_levels() {
    let parse = heads();
    let opt = optimize(&parse, vec![Box::new(SinkTransposes), Box::new(DeadNodes)]);
    // boxes: 3 -> 1, maps: 2 -> 1, kept: 2 stay.
    assert_eq!(
        (count(&parse, "Transpose"), count(&opt, "Transpose")),
        (7, 4)
    );
    insta::assert_snapshot!("sink_transposes_parse", render(&parse, View::Parse));
    insta::assert_snapshot!("sink_transposes_optimize", render(&opt, View::Optimize));
    assert_same_outputs(&parse, &opt);
}

fn per_channel(b: &mut Builder, name: &str, dims: &[usize]) -> ValueRef {
    b.random(name, dims, Layout::NCHW)
}

/// A ConvTranspose (group 2, stride 2, bias) and a DeformConv (group 2, a mask, no bias), each
/// followed by a per-channel Mul and Add in the forms paddle2onnx writes a BatchNorm in.
fn affine_tails() -> Graph {
    let mut b = Builder::new("affine_tails", 0xC2B2AE3D27D4EB4F);
    let x = input(&mut b);
    let w = b.random("up.w", &[4, 3, 2, 2], Layout::IOHW);
    let bias = b.random("up.b", &[6], Layout::C);
    let attrs = ConvTransposeAttrs {
        kernel: [2, 2],
        strides: [2, 2],
        dilations: [1, 1],
        pads: [0; 4],
        output_padding: [0, 0],
        group: 2,
        activation: None,
    };
    let up = b.node("up", Op::ConvTranspose(attrs), any(), &[x, w, bias]);
    let scale = per_channel(&mut b, "up.scale", &[1, 6, 1, 1]);
    let up = b.node("up.mul", Op::Binary(BinaryOp::Mul), any(), &[up, scale]);
    let shift = per_channel(&mut b, "up.shift", &[6, 1, 1]);
    let up = b.node("up.add", Op::Binary(BinaryOp::Add), any(), &[shift, up]);

    let w = b.random("dcn.w", &[6, 2, 3, 3], Layout::OIHW);
    let offset = b.random("dcn.offset", &[1, 18, 8, 8], Layout::NCHW);
    let mask = b.random("dcn.mask", &[1, 9, 8, 8], Layout::NCHW);
    let attrs = DeformConvAttrs {
        kernel: [3, 3],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [1, 1, 1, 1],
        group: 2,
        offset_group: 1,
    };
    let dcn = b.node("dcn", Op::DeformConv(attrs), any(), &[x, w, offset]);
    b.g.connect(mask, dcn.node, 4);
    let scale = per_channel(&mut b, "dcn.scale", &[6, 1, 1]);
    let dcn = b.node("dcn.mul", Op::Binary(BinaryOp::Mul), any(), &[scale, dcn]);
    let shift = b.constant("dcn.shift", &[1], vec![0.25], Layout::Any);
    let dcn = b.node("dcn.add", Op::Binary(BinaryOp::Add), any(), &[dcn, shift]);
    finish(b, &[("up", up), ("dcn", dcn)])
}

#[test]
fn affine_folds_into_deform_conv_and_conv_transpose() {
    let parse = affine_tails();
    let passes = || -> Vec<Box<dyn Pass>> {
        vec![
            Box::new(CommuteConstants),
            Box::new(FoldConvAffine),
            Box::new(DeadNodes),
        ]
    };
    let opt = optimize(&parse, passes());
    assert_eq!((parse.layer_count(), opt.layer_count()), (6, 2));
    let dcn = opt
        .node_ids()
        .find(|&id| matches!(opt.node(id).op, Op::DeformConv(_)))
        .expect("DeformConv kept");
    let port = |p: usize| opt.input(dcn, p).map(|v| opt.node(v.node).name.clone());
    assert_eq!(port(3).as_deref(), Some("dcn_bias"), "bias on port 3");
    assert_eq!(port(4).as_deref(), Some("dcn.mask"), "mask stays on port 4");
    insta::assert_snapshot!("affine_tails_optimize", render(&opt, View::Optimize));
    assert_same_outputs(&parse, &opt);

    let bare = optimize(&shape_only(&parse), passes());
    assert_eq!(bare.op_counts(), opt.op_counts());
    for id in bare.node_ids() {
        if let Op::Constant { weight } = bare.node(id).op {
            let w = bare.weights.get(weight).unwrap();
            assert!(w.is_shape_only(), "{} has values", bare.node(id).name);
        }
    }
}

/// Two ResNet-vd basic blocks whose second conv is deformable, as in the last stage of
/// yolov3_r18vd_dcn: the first with a pooled, convolved shortcut, the second with the block's
/// input itself as the shortcut (read by the next block's first conv too).
fn dcn_blocks() -> Graph {
    let mut b = Builder::new("dcn_blocks", 0x9FB21C651E98DF25);
    let x = input(&mut b);
    let pool = PoolAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        kernel: vec![3, 3],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads: vec![1; 4],
        ceil_mode: false,
        count_include_pad: false,
    };
    let mut h = x;
    for block in 0..2 {
        let p = |s: &str| format!("b{block}.{s}");
        let a = b.conv_bn(&p("a"), h, 4, 4, false);
        let a = unary(&mut b, &p("a.relu"), UnaryOp::Relu, a);
        let w = b.random(&p("dcn.w"), &[4, 4, 3, 3], Layout::OIHW);
        let offset = b.random(&p("dcn.offset"), &[1, 18, 8, 8], Layout::NCHW);
        let mask = b.random(&p("dcn.mask"), &[1, 9, 8, 8], Layout::NCHW);
        let attrs = DeformConvAttrs {
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [1, 1, 1, 1],
            group: 1,
            offset_group: 1,
        };
        let dcn = b.node(&p("dcn"), Op::DeformConv(attrs), any(), &[a, w, offset]);
        b.g.connect(mask, dcn.node, 4);
        let branch = batchnorm(&mut b, &p("dcn"), dcn);
        let shortcut = match block {
            0 => {
                let pooled = b.node(&p("pool"), Op::AveragePool(pool.clone()), any(), &[h]);
                b.conv_bn(&p("short"), pooled, 4, 4, false)
            }
            _ => h,
        };
        let sum = b.node(
            &p("add"),
            Op::Binary(BinaryOp::Add),
            any(),
            &[branch, shortcut],
        );
        h = unary(&mut b, &p("relu"), UnaryOp::Relu, sum);
    }
    finish(b, &[("y", h)])
}

/// An inference BatchNorm of the `[1, 4, 8, 8]` value `x`, with a positive variance.
fn batchnorm(b: &mut Builder, prefix: &str, x: ValueRef) -> ValueRef {
    let mut ins = vec![x];
    for p in ["gamma", "beta", "mean"] {
        ins.push(b.random(&format!("{prefix}.{p}"), &[4], Layout::C));
    }
    let var = b.rng.values(4).iter().map(|v| v.abs() + 0.5).collect();
    ins.push(b.constant(&format!("{prefix}.var"), &[4], var, Layout::C));
    b.node(
        &format!("{prefix}.bn"),
        Op::BatchNorm { epsilon: 1e-5 },
        any(),
        &ins,
    )
}

#[test]
fn deformable_resnet_blocks_fuse_their_residual_and_relu() {
    let parse = dcn_blocks();
    let opt = optimize(&parse, optimize_passes());
    for op in ["Add", "Relu", "BatchNorm", "DeformConv"] {
        assert_eq!(count(&opt, op), 0, "{op} left");
    }
    let residual_relu = opt
        .node_ids()
        .filter(|&id| match &opt.node(id).op {
            Op::Conv(a) => a.activation == Some(Activation::Relu) && opt.input(id, 3).is_some(),
            _ => false,
        })
        .count();
    assert_eq!(
        residual_relu, 2,
        "one conv per block takes the residual and the Relu"
    );
    insta::assert_snapshot!("dcn_blocks_parse", render(&parse, View::Parse));
    insta::assert_snapshot!("dcn_blocks_optimize", render(&opt, View::Optimize));
    assert_same_outputs(&parse, &opt);
}

/// The real model behind the fixes: every residual Add and Relu of its backbone fuses into a
/// conv, and its three heads' score transposes become one.
#[test]
fn yolov3_r18vd_dcn_optimizes_without_residual_layers() {
    let model = shared().join("models/paddle/yolov3_r18vd_dcn/model.pdmodel");
    let options = Options {
        input_dims: vec![
            ("image".into(), vec![1, 3, 320, 320]),
            ("im_shape".into(), vec![1, 2]),
            ("scale_factor".into(), vec![1, 2]),
        ],
        verify: VerifyMode::On,
        ..Options::default()
    };
    let compiled = temblor_pipeline::compile(&model, &options).expect("compile");
    let opt = &compiled.optimize;
    assert_eq!(count(&compiled.parse, "Transpose"), 3);
    let counts = ["Add", "Relu", "Transpose"].map(|op| count(opt, op));
    assert_eq!(counts, [0, 0, 1], "Add, Relu, Transpose after optimize");
    let verification = compiled.verification.expect("verified");
    assert_eq!(
        verification.status,
        temblor_ir::VerifyStatus::Passed,
        "{:?}",
        verification.reason
    );
}
