//! The deformable convolution split on small hand-built graphs: DeformConv into DeformSample and
//! a grouped 1x1 Conv, pinned as parse/optimize views (insta) and checked numerically against the
//! unsplit graph on the CPU runtime, with and without a mask and a bias, for one and several
//! groups and offset groups; on a model known by weight shapes alone; and in the full optimizer,
//! where the 1x1 Conv takes the BatchNorm folded into the DeformConv and the activation after it.

use temblor_ir::{
    validate, ConvAttrs, DType, DeformConvAttrs, Graph, GraphOutput, Layout, Op, Shape, TensorType,
    UnaryOp, ValueRef,
};
use temblor_passes::{optimize_passes, DeadNodes, Driver, SplitDeformConv};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor};
use temblor_tests::builder::{count, shape_only, Builder};
use temblor_tests::{rel_l2, Rng};
use temblor_visualize::{render, View};

const INPUT: [usize; 4] = [1, 4, 9, 9];

fn ty(dims: &[usize]) -> TensorType {
    TensorType {
        dtype: DType::F32,
        shape: Shape::from_known(dims),
        layout: Layout::NCHW,
    }
}

/// The DeformConv's variations.
struct Case {
    name: &'static str,
    group: usize,
    offset_group: usize,
    stride: usize,
    dilation: usize,
    mask: bool,
    bias: bool,
}

impl Case {
    fn attrs(&self) -> DeformConvAttrs {
        DeformConvAttrs {
            kernel: [3, 3],
            strides: [self.stride; 2],
            dilations: [self.dilation; 2],
            pads: [self.dilation; 4],
            group: self.group,
            offset_group: self.offset_group,
        }
    }

    /// Output extent of one spatial axis.
    fn extent(&self) -> usize {
        (INPUT[2] - 1) / self.stride + 1
    }
}

/// A 3x3 Conv of `x` to `channels`, as models predict offsets and masks.
fn predictor(b: &mut Builder, name: &str, x: ValueRef, channels: usize, stride: usize) -> ValueRef {
    let w = b.random(
        &format!("{name}.w"),
        &[channels, INPUT[1], 3, 3],
        Layout::OIHW,
    );
    let attrs = ConvAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        kernel: [3, 3],
        strides: [stride; 2],
        dilations: [1, 1],
        pads: [1; 4],
        group: 1,
        activation: None,
        affine: None,
    };
    let out = (INPUT[2] - 1) / stride + 1;
    b.node(name, Op::Conv(attrs), ty(&[1, channels, out, out]), &[x, w])
}

/// x -> DeformConv (offsets, and the mask through a Sigmoid, predicted from x) -> y, with eight
/// output channels.
fn deform_graph(case: &Case) -> Graph {
    let mut b = Builder::new(case.name, 0x2545F4914F6CDD1D);
    let x = b.node("x", Op::Input { index: 0 }, ty(&INPUT), &[]);
    b.g.inputs.push(x.node);
    let (og, e) = (case.offset_group, case.extent());
    let offset = predictor(&mut b, "offset", x, og * 18, case.stride);
    let cg = INPUT[1] / case.group;
    let w = b.random("dcn.w", &[8, cg, 3, 3], Layout::OIHW);
    let out = ty(&[1, 8, e, e]);
    let dcn = b.node("dcn", Op::DeformConv(case.attrs()), out, &[x, w, offset]);
    if case.bias {
        let bias = b.random("dcn.b", &[8], Layout::C);
        b.g.connect(bias, dcn.node, 3);
    }
    if case.mask {
        let logits = predictor(&mut b, "mask", x, og * 9, case.stride);
        let op = Op::Unary(UnaryOp::Sigmoid);
        let mask = b.node("mask.sigmoid", op, ty(&[1, og * 9, e, e]), &[logits]);
        b.g.connect(mask, dcn.node, 4);
    }
    b.g.outputs = vec![GraphOutput {
        name: "y".into(),
        value: dcn,
    }];
    validate(&b.g).expect("hand-built graph is valid");
    b.g
}

fn split(g: &Graph) -> Graph {
    let mut g = g.clone();
    Driver::new(vec![Box::new(SplitDeformConv), Box::new(DeadNodes)])
        .run(&mut g)
        .expect("passes run");
    g
}

/// Runs both graphs on the same input and compares every output.
fn assert_same_outputs(before: &Graph, after: &Graph) {
    let x = Rng(11).values(INPUT.iter().product());
    let run = |g: &Graph| {
        let feed = [("x".to_string(), Tensor::f32(INPUT.to_vec(), x.clone()))];
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

const GROUPED: Case = Case {
    name: "deform_split",
    group: 2,
    offset_group: 2,
    stride: 1,
    dilation: 1,
    mask: true,
    bias: true,
};

#[test]
fn deform_conv_splits_into_sampling_and_a_pointwise_conv() {
    let parse = deform_graph(&GROUPED);
    let after = split(&parse);
    assert_eq!(count(&after, "DeformConv"), 0);
    assert_eq!(count(&after, "DeformSample"), 1);
    assert_eq!(count(&after, "Conv"), count(&parse, "Conv") + 1);
    insta::assert_snapshot!("deform_split_parse", render(&parse, View::Parse));
    insta::assert_snapshot!("deform_split_optimize", render(&after, View::Optimize));
    assert_same_outputs(&parse, &after);
}

#[test]
fn split_computes_the_deform_conv_with_and_without_mask_and_bias() {
    for (group, offset_group, stride, dilation) in [(1, 1, 1, 1), (2, 1, 2, 1), (4, 2, 1, 2)] {
        for (mask, bias) in [(false, false), (true, false), (false, true), (true, true)] {
            let case = Case {
                name: "deform_variants",
                group,
                offset_group,
                stride,
                dilation,
                mask,
                bias,
            };
            let parse = deform_graph(&case);
            let after = split(&parse);
            assert_eq!(count(&after, "DeformConv"), 0, "group {group}");
            assert_same_outputs(&parse, &after);
        }
    }
}

#[test]
fn graph_only_model_splits_like_the_full_one() {
    let full = deform_graph(&GROUPED);
    let (full_after, bare_after) = (split(&full), split(&shape_only(&full)));
    assert_eq!(full_after.op_counts(), bare_after.op_counts());
    let pointwise = bare_after
        .node_ids()
        .find(|&id| bare_after.node(id).name == "dcn.pointwise_weight")
        .expect("the reshaped weight");
    let Op::Constant { weight } = bare_after.node(pointwise).op else {
        panic!("the reshaped weight is a constant");
    };
    let w = bare_after.weights.get(weight).unwrap();
    assert!(w.is_shape_only());
    assert_eq!(w.dims, [8, 18, 1, 1]);
}

#[test]
fn weight_computed_at_run_time_is_not_split() {
    let g = deform_graph(&GROUPED);
    let dcn = g
        .node_ids()
        .find(|&id| matches!(g.node(id).op, Op::DeformConv(_)))
        .unwrap();
    let w_ty = g.value_type(g.input(dcn, 1).unwrap()).clone();
    let mut b = Builder { g, rng: Rng(5) };
    let w = b.node("w", Op::Input { index: 1 }, w_ty, &[]);
    b.g.inputs.push(w.node);
    b.g.disconnect_input(dcn, 1);
    b.g.connect(w, dcn, 1);
    let after = split(&b.g);
    assert_eq!(count(&after, "DeformConv"), 1);
    assert_eq!(count(&after, "DeformSample"), 0);
}

/// x -> DeformConv -> BatchNorm -> Relu -> y through every optimize pass: the BatchNorm folds
/// into the DeformConv, which splits, and its 1x1 Conv takes the Relu.
#[test]
fn optimizer_folds_batchnorm_then_splits_then_fuses_the_activation() {
    let g = deform_graph(&Case {
        bias: false,
        ..GROUPED
    });
    let y = g.outputs[0].value;
    let dims = [1, 8, 9, 9];
    let mut b = Builder { g, rng: Rng(9) };
    let mut ins = vec![y];
    for p in ["gamma", "beta", "mean"] {
        ins.push(b.random(&format!("bn.{p}"), &[8], Layout::C));
    }
    let var = b.rng.values(8).iter().map(|v| v.abs() + 0.5).collect();
    ins.push(b.constant("bn.var", &[8], var, Layout::C));
    let bn = b.node("bn", Op::BatchNorm { epsilon: 1e-5 }, ty(&dims), &ins);
    let relu = b.node("relu", Op::Unary(UnaryOp::Relu), ty(&dims), &[bn]);
    b.g.outputs[0].value = relu;
    let parse = b.g;
    validate(&parse).expect("hand-built graph is valid");

    let mut after = parse.clone();
    Driver::new(optimize_passes()).run(&mut after).unwrap();
    for op in ["BatchNorm", "DeformConv", "Relu"] {
        assert_eq!(count(&after, op), 0, "{op}");
    }
    assert_eq!(count(&after, "DeformSample"), 1);
    let conv = after.outputs[0].value.node;
    let Op::Conv(attrs) = &after.node(conv).op else {
        panic!("y comes from {}", after.describe(conv));
    };
    assert_eq!((attrs.kernel, attrs.group), ([1, 1], 2));
    assert!(attrs.activation.is_some(), "{}", after.describe(conv));
    assert_same_outputs(&parse, &after);
}
