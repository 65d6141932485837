//! The canonicalization passes on small hand-built graphs: constant and shape folding, no-op
//! removal and reshape merging, each pinned before and after as views (insta) and checked
//! numerically against the unrewritten graph on the CPU runtime.

use temblor_ir::{
    validate, DType, Graph, GraphOutput, Layout, Op, Shape, TensorType, UnaryOp, ValueRef,
};
use temblor_passes::{DeadNodes, Driver, FoldConstants, MergeReshapes, Pass, RemoveNoOps};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor};
use temblor_tests::builder::{act, Builder};
use temblor_tests::{rel_l2, Rng};
use temblor_visualize::{render, View};

fn any() -> TensorType {
    TensorType::new(DType::F32, Shape::default())
}

/// Graph input `x` of `[1, 4, 8, 8]`.
fn input(b: &mut Builder) -> ValueRef {
    let x = b.node("x", Op::Input { index: 0 }, act(4), &[]);
    b.g.inputs.push(x.node);
    x
}

fn finish(mut b: Builder, y: ValueRef) -> Graph {
    b.g.outputs = vec![GraphOutput {
        name: "y".into(),
        value: y,
    }];
    temblor_infer::infer(&mut b.g).expect("types");
    validate(&b.g).expect("valid");
    b.g
}

fn optimize(g: &Graph, passes: Vec<Box<dyn Pass>>) -> Graph {
    let mut out = g.clone();
    Driver::new(passes).run(&mut out).expect("passes");
    out
}

fn assert_same_function(a: &Graph, b: &Graph) {
    let x = Rng(11).values(4 * 8 * 8);
    let run = |g: &Graph| {
        prepare(g, &Device::Cpu, &PrepareOptions::default())
            .expect("plan")
            .run_once(&[("x".into(), Tensor::f32(vec![1, 4, 8, 8], x.clone()))])
            .expect("run")
    };
    for ((_, p), (_, q)) in run(a).iter().zip(&run(b)) {
        assert_eq!(p.shape, q.shape);
        assert!(rel_l2(p.as_f32().unwrap(), q.as_f32().unwrap()) < 1e-6);
    }
}

/// `reshape(x, concat(shape(x)[0], [-1]))`, as exporters write a flatten: the whole shape
/// computation folds, leaving a Reshape to a constant shape.
fn shape_computation() -> Graph {
    let mut b = Builder::new("shape_computation", 1);
    let x = input(&mut b);
    let s = b.node(
        "shape",
        Op::Shape {
            start: 0,
            end: None,
        },
        any(),
        &[x],
    );
    let zero = b.ints("zero", &[0]);
    let n = b.node("batch", Op::Gather { axis: 0 }, any(), &[s, zero]);
    let rest = b.ints("rest", &[-1]);
    let target = b.node("target", Op::Concat { axis: 0 }, any(), &[n, rest]);
    let y = b.node(
        "flat",
        Op::Reshape { allowzero: false },
        any(),
        &[x, target],
    );
    finish(b, y)
}

#[test]
fn shape_computations_fold_to_a_static_reshape() {
    let parse = shape_computation();
    let opt = optimize(&parse, vec![Box::new(FoldConstants), Box::new(DeadNodes)]);
    assert_eq!(opt.layer_count(), 1, "only the reshape is left");
    assert_eq!(
        opt.value_type(opt.outputs[0].value).shape,
        Shape::from_known(&[1, 256])
    );
    insta::assert_snapshot!("fold_constants_parse", render(&parse, View::Parse));
    insta::assert_snapshot!("fold_constants_optimize", render(&opt, View::Optimize));
    assert_same_function(&parse, &opt);
}

/// Folding stops at the size cap: an Expand of a scalar to a large static shape stays a node.
#[test]
fn folding_never_blows_up_a_model() {
    let mut b = Builder::new("expand", 2);
    let x = input(&mut b);
    let one = b.constant("one", &[1], vec![1.0], Layout::Any);
    let shape = b.ints("big", &[1, 4, 256, 256]);
    let big = b.node("expand", Op::Expand, any(), &[one, shape]);
    let eight = b.ints("eight", &[1, 4, 8, 8]);
    let small = b.node("expand_small", Op::Expand, any(), &[one, eight]);
    let sum = b.node(
        "add",
        Op::Binary(temblor_ir::BinaryOp::Add),
        any(),
        &[x, small],
    );
    let g = finish(b, sum);
    let mut with_big = g.clone();
    with_big.outputs.push(GraphOutput {
        name: "big".into(),
        value: big,
    });
    let opt = optimize(
        &with_big,
        vec![Box::new(FoldConstants), Box::new(DeadNodes)],
    );
    let ops: Vec<String> = opt.op_counts().into_iter().map(|(op, _)| op).collect();
    assert!(ops.contains(&"Expand".to_string()), "{ops:?}");
    assert_eq!(
        opt.op_counts()
            .iter()
            .find(|(op, _)| op == "Expand")
            .unwrap()
            .1,
        1
    );
}

/// Identity, a Cast to the same dtype, an identity Transpose and a same-shape Reshape go.
#[test]
fn no_ops_are_removed() {
    let mut b = Builder::new("no_ops", 3);
    let x = input(&mut b);
    let id = b.node("identity", Op::Unary(UnaryOp::Identity), any(), &[x]);
    let cast = b.node("cast", Op::Cast { to: DType::F32 }, any(), &[id]);
    let t = b.node(
        "transpose",
        Op::Transpose {
            perm: vec![0, 1, 2, 3],
        },
        any(),
        &[cast],
    );
    let same = b.ints("same", &[1, 4, 8, 8]);
    let r = b.node(
        "reshape",
        Op::Reshape { allowzero: false },
        any(),
        &[t, same],
    );
    let y = b.node("relu", Op::Unary(UnaryOp::Relu), any(), &[r]);
    let parse = finish(b, y);
    let opt = optimize(&parse, vec![Box::new(RemoveNoOps), Box::new(DeadNodes)]);
    assert_eq!(opt.layer_count(), 1);
    insta::assert_snapshot!("remove_no_ops_optimize", render(&opt, View::Optimize));
    assert_same_function(&parse, &opt);
}

/// Two transposes that compose to the identity vanish; a reshape chain becomes one Reshape.
#[test]
fn reshape_and_transpose_chains_merge() {
    let mut b = Builder::new("chains", 4);
    let x = input(&mut b);
    let nhwc = b.node(
        "to_nhwc",
        Op::Transpose {
            perm: vec![0, 2, 3, 1],
        },
        any(),
        &[x],
    );
    let nchw = b.node(
        "to_nchw",
        Op::Transpose {
            perm: vec![0, 3, 1, 2],
        },
        any(),
        &[nhwc],
    );
    let s = b.ints("rows", &[1, 4, 64]);
    let rows = b.node("rows", Op::Reshape { allowzero: false }, any(), &[nchw, s]);
    let axes = b.ints("axes", &[0]);
    let y = b.node("unsqueeze", Op::Unsqueeze, any(), &[rows, axes]);
    let parse = finish(b, y);
    let opt = optimize(
        &parse,
        vec![
            Box::new(MergeReshapes),
            Box::new(RemoveNoOps),
            Box::new(DeadNodes),
        ],
    );
    assert_eq!(opt.layer_count(), 1, "one Reshape to [1, 1, 4, 64]");
    insta::assert_snapshot!("merge_reshapes_parse", render(&parse, View::Parse));
    insta::assert_snapshot!("merge_reshapes_optimize", render(&opt, View::Optimize));
    assert_same_function(&parse, &opt);
}
