//! The convolution folds on small hand-built graphs: BatchNorm into ConvTranspose and into
//! DeformConv, a zero Pad into the pads of the layers reading it (and an edge Pad into
//! MaxPools), and the BatchNorm and affine folds on a model known by weight shapes alone. Each
//! is pinned as parse/optimize views (insta) and, where the weights exist, checked numerically
//! against the unoptimized graph on the CPU runtime.

use temblor_ir::{
    validate, Activation, BinaryOp, ConvAttrs, ConvTransposeAttrs, DType, DeformConvAttrs, Graph,
    GraphOutput, Layout, Op, PadMode, PoolAttrs, Shape, TensorType, ValueRef,
};
use temblor_passes::{
    CommuteConstants, DeadNodes, Driver, FoldBatchNorm, FoldConvAffine, FusePad, Pass,
};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor};
use temblor_tests::builder::{count, shape_only, Builder};
use temblor_tests::{rel_l2, Rng};
use temblor_visualize::{render, View};

fn ty(dims: &[usize]) -> TensorType {
    TensorType {
        dtype: DType::F32,
        shape: Shape::from_known(dims),
        layout: Layout::NCHW,
    }
}

fn input(b: &mut Builder, dims: &[usize]) -> ValueRef {
    let x = b.node("x", Op::Input { index: 0 }, ty(dims), &[]);
    b.g.inputs.push(x.node);
    x
}

/// An inference BatchNorm of `x` (of `dims`), with a positive variance.
fn batchnorm(b: &mut Builder, prefix: &str, x: ValueRef, dims: &[usize]) -> ValueRef {
    let c = dims[1];
    let mut ins = vec![x];
    for p in ["gamma", "beta", "mean"] {
        ins.push(b.random(&format!("{prefix}.{p}"), &[c], Layout::C));
    }
    let var = b.rng.values(c).iter().map(|v| v.abs() + 0.5).collect();
    ins.push(b.constant(&format!("{prefix}.var"), &[c], var, Layout::C));
    let op = Op::BatchNorm { epsilon: 1e-5 };
    b.node(&format!("{prefix}.bn"), op, ty(dims), &ins)
}

fn conv_attrs(kernel: usize, pads: [usize; 4], group: usize) -> ConvAttrs {
    ConvAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        kernel: [kernel; 2],
        strides: [1, 1],
        dilations: [1, 1],
        pads,
        group,
        activation: None,
        affine: None,
    }
}

fn outputs(g: &mut Graph, values: &[(&str, ValueRef)]) {
    g.outputs = values
        .iter()
        .map(|&(name, value)| GraphOutput {
            name: name.into(),
            value,
        })
        .collect();
    validate(g).expect("hand-built graph is valid");
}

/// x `[1,4,8,8]` -> ConvTranspose (group 2, stride 2, bias) -> BatchNorm -> y `[1,6,16,16]`.
fn conv_transpose_bn() -> Graph {
    let mut b = Builder::new("conv_transpose_bn", 0x5DEECE66D);
    let x = input(&mut b, &[1, 4, 8, 8]);
    let w = b.random("up.w", &[4, 3, 2, 2], Layout::IOHW);
    let bias = b.random("up.b", &[6], Layout::C);
    let attrs = ConvTransposeAttrs {
        kernel: [2, 2],
        strides: [2, 2],
        dilations: [1, 1],
        pads: [0, 0, 0, 0],
        output_padding: [0, 0],
        group: 2,
        activation: None,
    };
    let dims = [1, 6, 16, 16];
    let up = b.node("up", Op::ConvTranspose(attrs), ty(&dims), &[x, w, bias]);
    let y = batchnorm(&mut b, "up", up, &dims);
    outputs(&mut b.g, &[("y", y)]);
    b.g
}

/// x `[1,4,8,8]` -> DeformConv (3x3, group 2, constant offsets, a mask, no bias) -> BatchNorm.
/// The fold must put the bias on port 3 and keep the mask on port 4.
fn deform_conv_bn() -> Graph {
    let mut b = Builder::new("deform_conv_bn", 0x27BB2EE687B0B0FD);
    let x = input(&mut b, &[1, 4, 8, 8]);
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
    let dims = [1, 6, 8, 8];
    let dcn = b.node("dcn", Op::DeformConv(attrs), ty(&dims), &[x, w, offset]);
    b.g.connect(mask, dcn.node, 4);
    let y = batchnorm(&mut b, "dcn", dcn, &dims);
    outputs(&mut b.g, &[("y", y)]);
    b.g
}

/// Pads of x `[1,4,8,8]` read by a Conv, an AveragePool and a DeformConv, which fuse, and by a
/// MaxPool, a Conv with a non-zero fill value and a Conv beside a Relu, which do not.
fn pads() -> Graph {
    let mut b = Builder::new("pads", 0x9E3779B97F4A7C15);
    let x = input(&mut b, &[1, 4, 8, 8]);
    let pad = |b: &mut Builder, name: &str, amounts: &[i64], extra: &[ValueRef]| {
        let p = b.ints(&format!("{name}.pads"), amounts);
        let dims: Vec<usize> = if amounts.len() == 8 {
            (0..4)
                .map(|a| [1, 4, 8, 8][a] + (amounts[a] + amounts[a + 4]) as usize)
                .collect()
        } else {
            vec![
                1,
                4,
                8 + (amounts[0] + amounts[2]) as usize,
                8 + (amounts[1] + amounts[3]) as usize,
            ]
        };
        let mut ins = vec![x, p];
        ins.extend_from_slice(extra);
        let op = Op::Pad {
            mode: PadMode::Constant,
        };
        (b.node(name, op, ty(&dims), &ins), dims)
    };
    let conv = |b: &mut Builder, name: &str, x: ValueRef, pads: [usize; 4], out: [usize; 2]| {
        let w = b.random(&format!("{name}.w"), &[4, 4, 3, 3], Layout::OIHW);
        let op = Op::Conv(conv_attrs(3, pads, 1));
        b.node(name, op, ty(&[1, 4, out[0], out[1]]), &[x, w])
    };

    // Asymmetric pads, added to the conv's own.
    let (p, _) = pad(&mut b, "conv_pad", &[0, 0, 1, 2, 0, 0, 2, 1], &[]);
    let conv_y = conv(&mut b, "conv", p, [1, 0, 0, 1], [10, 10]);

    // Pads given for the spatial axes only, with an explicit zero fill.
    let zero = b.constant("zero", &[], vec![0.0], Layout::Any);
    let axes = b.ints("avg_pad.axes", &[2, 3]);
    let (p, _) = pad(&mut b, "avg_pad", &[1, 1, 1, 1], &[zero, axes]);
    let pool = PoolAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        kernel: vec![3, 3],
        strides: vec![1, 1],
        dilations: vec![1, 1],
        pads: vec![0, 0, 0, 0],
        ceil_mode: false,
        count_include_pad: true,
    };
    let avg_y = b.node(
        "avg",
        Op::AveragePool(pool.clone()),
        ty(&[1, 4, 8, 8]),
        &[p],
    );

    let (p, _) = pad(&mut b, "dcn_pad", &[0, 0, 1, 1, 0, 0, 1, 1], &[]);
    let w = b.random("dcn.w", &[4, 4, 3, 3], Layout::OIHW);
    let offset = b.random("dcn.offset", &[1, 18, 8, 8], Layout::NCHW);
    let attrs = DeformConvAttrs {
        kernel: [3, 3],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [0, 0, 0, 0],
        group: 1,
        offset_group: 1,
    };
    let dcn_y = b.node(
        "dcn",
        Op::DeformConv(attrs),
        ty(&[1, 4, 8, 8]),
        &[p, w, offset],
    );

    let (p, _) = pad(&mut b, "max_pad", &[0, 0, 1, 1, 0, 0, 1, 1], &[]);
    let max_y = b.node("max", Op::MaxPool(pool), ty(&[1, 4, 8, 8]), &[p]);

    let half = b.constant("half", &[], vec![0.5], Layout::Any);
    let (p, _) = pad(&mut b, "half_pad", &[0, 0, 1, 1, 0, 0, 1, 1], &[half]);
    let half_y = conv(&mut b, "half_conv", p, [0, 0, 0, 0], [8, 8]);

    let (p, dims) = pad(&mut b, "shared_pad", &[0, 0, 1, 1, 0, 0, 1, 1], &[]);
    let shared_y = conv(&mut b, "shared_conv", p, [0, 0, 0, 0], [8, 8]);
    let relu = b.node(
        "shared_relu",
        Op::Unary(temblor_ir::UnaryOp::Relu),
        ty(&dims),
        &[p],
    );

    outputs(
        &mut b.g,
        &[
            ("conv", conv_y),
            ("avg", avg_y),
            ("dcn", dcn_y),
            ("max", max_y),
            ("half", half_y),
            ("shared", shared_y),
            ("shared_relu", relu),
        ],
    );
    b.g
}

/// BatchNorms after a Conv, a ConvTranspose and a DeformConv, and a per-channel Mul and Add
/// after another Conv: every fold the optimizer can make on a model given without weights.
fn folds() -> Graph {
    let mut b = Builder::new("folds", 0xD1B54A32D192ED03);
    let x = input(&mut b, &[1, 4, 8, 8]);
    let bn = b.conv_bn("conv", x, 4, 4, false);
    let relu = b.node(
        "relu",
        Op::Unary(temblor_ir::UnaryOp::Relu),
        ty(&[1, 4, 8, 8]),
        &[bn],
    );

    let w = b.random("up.w", &[4, 4, 3, 3], Layout::IOHW);
    let attrs = ConvTransposeAttrs {
        kernel: [3, 3],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [1, 1, 1, 1],
        output_padding: [0, 0],
        group: 1,
        activation: None,
    };
    let up = b.node(
        "up",
        Op::ConvTranspose(attrs),
        ty(&[1, 4, 8, 8]),
        &[relu, w],
    );
    let up = batchnorm(&mut b, "up", up, &[1, 4, 8, 8]);

    let w = b.random("dcn.w", &[4, 4, 3, 3], Layout::OIHW);
    let offset = b.random("dcn.offset", &[1, 18, 8, 8], Layout::NCHW);
    let bias = b.random("dcn.b", &[4], Layout::C);
    let attrs = DeformConvAttrs {
        kernel: [3, 3],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [1, 1, 1, 1],
        group: 1,
        offset_group: 1,
    };
    let ins = [up, w, offset, bias];
    let dcn = b.node("dcn", Op::DeformConv(attrs), ty(&[1, 4, 8, 8]), &ins);
    let dcn = batchnorm(&mut b, "dcn", dcn, &[1, 4, 8, 8]);

    let w = b.random("head.w", &[4, 4, 1, 1], Layout::OIHW);
    let head = b.node(
        "head",
        Op::Conv(conv_attrs(1, [0; 4], 1)),
        ty(&[1, 4, 8, 8]),
        &[dcn, w],
    );
    let scale = b.random("head.scale", &[1, 4, 1, 1], Layout::NCHW);
    let mul = Op::Binary(BinaryOp::Mul);
    let head = b.node("head.mul", mul, ty(&[1, 4, 8, 8]), &[head, scale]);
    let shift = b.random("head.shift", &[4, 1, 1], Layout::NCHW);
    let add = Op::Binary(BinaryOp::Add);
    let y = b.node("head.add", add, ty(&[1, 4, 8, 8]), &[shift, head]);
    outputs(&mut b.g, &[("y", y)]);
    b.g
}

fn optimized(g: &Graph, pass: Box<dyn Pass>) -> Graph {
    let mut g = g.clone();
    Driver::new(vec![pass, Box::new(DeadNodes)])
        .run(&mut g)
        .expect("passes run");
    g
}

/// Runs both graphs on the same input and compares every output.
fn assert_same_outputs(before: &Graph, after: &Graph, input: &[usize]) {
    let x = Rng(7).values(input.iter().product());
    let run = |g: &Graph| {
        let feed = [("x".to_string(), Tensor::f32(input.to_vec(), x.clone()))];
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

#[test]
fn batchnorm_folds_into_conv_transpose() {
    let parse = conv_transpose_bn();
    let after = optimized(&parse, Box::new(FoldBatchNorm));
    assert_eq!((count(&after, "BatchNorm"), after.layer_count()), (0, 1));
    insta::assert_snapshot!("conv_transpose_bn_parse", render(&parse, View::Parse));
    insta::assert_snapshot!("conv_transpose_bn_optimize", render(&after, View::Optimize));
    assert_same_outputs(&parse, &after, &[1, 4, 8, 8]);
}

#[test]
fn batchnorm_folds_into_deform_conv() {
    let parse = deform_conv_bn();
    let after = optimized(&parse, Box::new(FoldBatchNorm));
    assert_eq!((count(&after, "BatchNorm"), after.layer_count()), (0, 1));
    insta::assert_snapshot!("deform_conv_bn_parse", render(&parse, View::Parse));
    insta::assert_snapshot!("deform_conv_bn_optimize", render(&after, View::Optimize));
    assert_same_outputs(&parse, &after, &[1, 4, 8, 8]);
}

/// `bn(relu(conv(x)))` is not `conv'(x)` for any folded conv: the BatchNorm must stay.
#[test]
fn batchnorm_stays_after_a_conv_with_an_activation() {
    let mut b = Builder::new("activated", 3);
    let x = input(&mut b, &[1, 4, 8, 8]);
    let w = b.random("c.w", &[4, 4, 1, 1], Layout::OIHW);
    let mut attrs = conv_attrs(1, [0; 4], 1);
    attrs.activation = Some(Activation::Relu);
    let c = b.node("c", Op::Conv(attrs), ty(&[1, 4, 8, 8]), &[x, w]);
    let y = batchnorm(&mut b, "c", c, &[1, 4, 8, 8]);
    outputs(&mut b.g, &[("y", y)]);
    let after = optimized(&b.g, Box::new(FoldBatchNorm));
    assert_eq!(count(&after, "BatchNorm"), 1);
}

#[test]
fn zero_pads_fuse_into_their_readers() {
    let parse = pads();
    let after = optimized(&parse, Box::new(FusePad));
    assert_eq!(count(&parse, "Pad"), 6);
    // The MaxPool's, the non-zero fill's and the one shared with a Relu stay.
    assert_eq!(count(&after, "Pad"), 3);
    insta::assert_snapshot!("pads_parse", render(&parse, View::Parse));
    insta::assert_snapshot!("pads_optimize", render(&after, View::Optimize));
    assert_same_outputs(&parse, &after, &[1, 4, 8, 8]);
}

/// Edge Pads of x `[1,4,9,9]` read by MaxPools: on both sides and on the ends alone (as a
/// Keras export pads before its first pool), which fold; pads as long as the window, and an
/// AveragePool's, which do not.
fn edge_pads() -> Graph {
    let mut b = Builder::new("edge_pads", 0x51ED270B);
    let x = input(&mut b, &[1, 4, 9, 9]);
    let pool = |k: usize, s: usize| PoolAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        kernel: vec![k, k],
        strides: vec![s, s],
        dilations: vec![1, 1],
        pads: vec![0, 0, 0, 0],
        ceil_mode: false,
        count_include_pad: true,
    };
    let mut ys = Vec::new();
    for (name, amounts, op, out) in [
        ("both", [1, 1, 1, 1], Op::MaxPool(pool(3, 2)), 5),
        ("ends", [0, 0, 1, 1], Op::MaxPool(pool(3, 2)), 4),
        ("long", [2, 2, 2, 2], Op::MaxPool(pool(2, 2)), 6),
        ("average", [1, 1, 1, 1], Op::AveragePool(pool(3, 1)), 9),
    ] {
        let [t, l, bo, r] = amounts;
        let pads = b.ints(&format!("{name}.pads"), &[0, 0, t, l, 0, 0, bo, r]);
        let dims = [1, 4, 9 + (t + bo) as usize, 9 + (l + r) as usize];
        let mode = PadMode::Edge;
        let p = b.node(
            &format!("{name}_pad"),
            Op::Pad { mode },
            ty(&dims),
            &[x, pads],
        );
        ys.push((name, b.node(name, op, ty(&[1, 4, out, out]), &[p])));
    }
    outputs(&mut b.g, &ys);
    b.g
}

#[test]
fn edge_pads_fold_into_max_pools_whose_windows_hold_the_border() {
    let parse = edge_pads();
    let after = optimized(&parse, Box::new(FusePad));
    assert_eq!((count(&parse, "Pad"), count(&after, "Pad")), (4, 2));
    assert_same_outputs(&parse, &after, &[1, 4, 9, 9]);
}

#[test]
fn graph_only_model_folds_like_the_full_one() {
    let full = folds();
    let bare = shape_only(&full);
    let passes = || -> Vec<Box<dyn Pass>> {
        vec![
            Box::new(FoldBatchNorm),
            Box::new(CommuteConstants),
            Box::new(FoldConvAffine),
            Box::new(DeadNodes),
        ]
    };
    let run = |g: &Graph| {
        let mut g = g.clone();
        Driver::new(passes()).run(&mut g).expect("passes run");
        g
    };
    let (full_after, bare_after) = (run(&full), run(&bare));
    assert_eq!(full_after.op_counts(), bare_after.op_counts());
    assert_eq!(count(&bare_after, "BatchNorm"), 0);
    assert_eq!(bare_after.layer_count(), full.layer_count() - 5);
    for id in bare_after.node_ids() {
        if let Op::Constant { weight } = bare_after.node(id).op {
            let w = bare_after.weights.get(weight).unwrap();
            assert!(w.is_shape_only(), "{} has values", bare_after.node(id).name);
        }
    }
    insta::assert_snapshot!("shape_only_parse", render(&bare, View::Parse));
    insta::assert_snapshot!("shape_only_optimize", render(&bare_after, View::Optimize));
    assert_same_outputs(&full, &full_after, &[1, 4, 8, 8]);
}
