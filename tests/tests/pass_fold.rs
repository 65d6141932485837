//! The affine fold and the hard-swish recognition on small hand-built graphs, each pinned before
//! and after as views (insta) and checked numerically against the unrewritten graph.

use temblor_ir::{validate, BinaryOp, ConvAttrs, Graph, GraphOutput, Layout, Op, ValueRef};
use temblor_passes::{DeadNodes, Driver, FoldConvAffine, Pass, RecognizeHardSwish};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor};
use temblor_tests::builder::{act, Builder};
use temblor_tests::{rel_l2, Rng};
use temblor_visualize::{render, View};

fn optimize(g: &Graph, pass: Box<dyn Pass>) -> Graph {
    let mut out = g.clone();
    Driver::new(vec![pass, Box::new(DeadNodes)])
        .run(&mut out)
        .expect("passes");
    out
}

fn assert_same_function(a: &Graph, b: &Graph, channels: usize) {
    let x = Rng(21).values(channels * 8 * 8);
    let run = |g: &Graph| {
        prepare(g, &Device::Cpu, &PrepareOptions::default())
            .expect("plan")
            .run_once(&[("x".into(), Tensor::f32(vec![1, channels, 8, 8], x.clone()))])
            .expect("run")
    };
    for ((_, p), (_, q)) in run(a).iter().zip(&run(b)) {
        assert_eq!(p.shape, q.shape);
        let err = rel_l2(p.as_f32().unwrap(), q.as_f32().unwrap());
        assert!(err < 1e-6, "relative L2 {err:e}");
    }
}

fn finish(mut b: Builder, y: ValueRef) -> Graph {
    b.g.outputs = vec![GraphOutput {
        name: "y".into(),
        value: y,
    }];
    validate(&b.g).expect("valid");
    b.g
}

fn scalar(b: &mut Builder, name: &str, v: f32) -> ValueRef {
    b.constant(name, &[], vec![v], Layout::Any)
}

/// conv -> * s[O,1,1] -> + t[O,1,1]: both fold into the conv's weight and bias, as
/// paddle2onnx's BatchNorm written out as Mul and Add does.
#[test]
fn per_channel_scale_and_shift_fold_into_the_conv() {
    let mut b = Builder::new("affine", 31);
    let x = b.node("x", Op::Input { index: 0 }, act(3), &[]);
    b.g.inputs.push(x.node);
    let w = b.random("conv.w", &[4, 3, 3, 3], Layout::OIHW);
    let attrs = ConvAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        kernel: [3, 3],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [1, 1, 1, 1],
        group: 1,
        activation: None,
        affine: None,
    };
    let conv = b.node("conv", Op::Conv(attrs), act(4), &[x, w]);
    let s = b.random("scale", &[4, 1, 1], Layout::Any);
    let scaled = b.node("mul", Op::Binary(BinaryOp::Mul), act(4), &[conv, s]);
    let t = b.random("shift", &[4, 1, 1], Layout::Any);
    let y = b.node("add", Op::Binary(BinaryOp::Add), act(4), &[scaled, t]);
    let parse = finish(b, y);
    let opt = optimize(&parse, Box::new(FoldConvAffine));
    assert_eq!(opt.layer_count(), 1);
    insta::assert_snapshot!("fold_conv_affine_parse", render(&parse, View::Parse));
    insta::assert_snapshot!("fold_conv_affine_optimize", render(&opt, View::Optimize));
    assert_same_function(&parse, &opt, 3);
}

/// `x * clip(x + 3, 0, 6) / 6` becomes one HardSwish; the same pattern whose clip is also a
/// graph output stays.
#[test]
fn written_out_hard_swish_is_recognized() {
    let build = |expose_clip: bool| {
        let mut b = Builder::new("hard_swish", 32);
        let x = b.node("x", Op::Input { index: 0 }, act(4), &[]);
        b.g.inputs.push(x.node);
        let three = scalar(&mut b, "three", 3.0);
        let shifted = b.node("add", Op::Binary(BinaryOp::Add), act(4), &[x, three]);
        let clip = b.node("clip", Op::Clip { min: 0.0, max: 6.0 }, act(4), &[shifted]);
        let product = b.node("mul", Op::Binary(BinaryOp::Mul), act(4), &[x, clip]);
        let six = scalar(&mut b, "six", 6.0);
        let y = b.node("div", Op::Binary(BinaryOp::Div), act(4), &[product, six]);
        let mut g = finish(b, y);
        if expose_clip {
            g.outputs.push(GraphOutput {
                name: "clip".into(),
                value: clip,
            });
        }
        g
    };
    let parse = build(false);
    let opt = optimize(&parse, Box::new(RecognizeHardSwish));
    assert_eq!(opt.layer_count(), 1);
    insta::assert_snapshot!("recognize_hard_swish_parse", render(&parse, View::Parse));
    insta::assert_snapshot!(
        "recognize_hard_swish_optimize",
        render(&opt, View::Optimize)
    );
    assert_same_function(&parse, &opt, 4);

    let shared = build(true);
    let kept = optimize(&shared, Box::new(RecognizeHardSwish));
    assert_eq!(kept.layer_count(), shared.layer_count());
}
