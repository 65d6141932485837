//! The recognition passes on small hand-built graphs: GELU and LayerNorm written out as the
//! exporters write them, and MatMul + bias. Each pass runs alone (with dead-node removal); its
//! sample graph is pinned as parse and optimize views (insta), every rewritten graph is checked
//! on the CPU runtime against the graph as built, and the cases where a rewrite would change
//! what the graph computes or lose a value it exposes are checked to stay as they are.

use temblor_ir::{
    validate, BinaryOp, DType, Graph, GraphOutput, Layout, Op, ReduceOp, Shape, TensorType,
    UnaryOp, ValueRef, Weight,
};
use temblor_passes::{
    CommuteConstants, DeadNodes, Driver, FuseMatMulAdd, Pass, RecognizeGelu, RecognizeLayerNorm,
};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor};
use temblor_tests::builder::Builder;
use temblor_tests::{rel_l2, Rng};
use temblor_visualize::{render, View};

fn f32s(dims: &[usize]) -> TensorType {
    TensorType::new(DType::F32, Shape::from_known(dims))
}

/// Adds graph input `x` of `dims`.
fn input(b: &mut Builder, dims: &[usize]) -> ValueRef {
    let x = b.node("x", Op::Input { index: 0 }, f32s(dims), &[]);
    b.g.inputs.push(x.node);
    x
}

fn scalar(b: &mut Builder, name: &str, value: f32) -> ValueRef {
    b.constant(name, &[], vec![value], Layout::Any)
}

/// An elementwise op of two operands, its output of their broadcast shape.
fn binary(b: &mut Builder, name: &str, op: BinaryOp, x: ValueRef, y: ValueRef) -> ValueRef {
    let dims = |v: ValueRef| b.g.value_type(v).shape.known().expect("static shapes");
    let (mut dx, mut dy) = (dims(x), dims(y));
    let rank = dx.len().max(dy.len());
    for d in [&mut dx, &mut dy] {
        d.splice(0..0, std::iter::repeat_n(1, rank - d.len()));
    }
    let ty = f32s(
        &dx.iter()
            .zip(&dy)
            .map(|(a, c)| *a.max(c))
            .collect::<Vec<_>>(),
    );
    b.node(name, Op::Binary(op), ty, &[x, y])
}

fn unary(b: &mut Builder, name: &str, op: UnaryOp, x: ValueRef) -> ValueRef {
    let ty = b.g.value_type(x).clone();
    b.node(name, Op::Unary(op), ty, &[x])
}

fn finish(mut b: Builder, outputs: &[(&str, ValueRef)]) -> Graph {
    b.g.outputs = outputs
        .iter()
        .map(|&(name, value)| GraphOutput {
            name: name.into(),
            value,
        })
        .collect();
    validate(&b.g).expect("hand-built graph is valid");
    b.g
}

/// `pass` alone (after the operand order patterns rely on), then dead-node removal, to a fixed
/// point.
fn optimized(g: &Graph, pass: impl Pass + 'static) -> Graph {
    let mut g = g.clone();
    Driver::new(vec![
        Box::new(CommuteConstants),
        Box::new(pass),
        Box::new(DeadNodes),
    ])
    .run(&mut g)
    .expect("optimize");
    g
}

fn count(g: &Graph, op: &str) -> usize {
    g.op_counts()
        .into_iter()
        .find(|(name, _)| name == op)
        .map_or(0, |(_, n)| n)
}

/// Runs both graphs on the same random input `x` (values in [-scale, scale) plus `shift`) and
/// checks that every output agrees to a relative L2 error below 1e-5.
fn assert_same_outputs(before: &Graph, after: &Graph, dims: &[usize], scale: f32, shift: f32) {
    let n = dims.iter().product();
    let values = Rng(0x5DEECE66D).values(n);
    let x = Tensor::f32(
        dims.to_vec(),
        values.iter().map(|v| v * scale + shift).collect(),
    );
    let run = |g: &Graph| {
        prepare(g, &Device::Cpu, &PrepareOptions::default())
            .and_then(|p| p.run_once(&[("x".into(), x.clone())]))
            .expect("run")
    };
    let (a, b) = (run(after), run(before));
    assert_eq!(a.len(), b.len());
    for ((name_a, a), (name_b, b)) in a.iter().zip(&b) {
        assert_eq!(name_a, name_b);
        assert_eq!(a.shape, b.shape, "{name_a}");
        let err = rel_l2(a.as_f32().unwrap(), b.as_f32().unwrap());
        assert!(err < 1e-5, "{name_a}: relative L2 {err:e}");
    }
}

/// The origins (source node names) a rewritten node of op `op` carries, and the pass named.
fn provenance(g: &Graph, op: &str) -> (Option<String>, Vec<String>) {
    let id = g
        .node_ids()
        .find(|&id| g.node(id).op.name() == op)
        .expect("rewritten node");
    let p = &g.node(id).provenance;
    let names = p
        .origins
        .iter()
        .map(|&o| g.origin(o).unwrap().node_name.clone())
        .collect();
    (p.made_by.clone(), names)
}

// GELU.

/// Where exporters put the halving and how they write the argument; the last two are the tanh
/// approximation.
#[derive(Clone, Copy, Debug)]
enum GeluForm {
    /// PyTorch: `(x * 0.5) * (1 + erf(x / 1.4142135))`.
    HalfFirst,
    /// `x * (0.5 * (erf(0.70710677 * x) + 1))`.
    HalfOnGate,
    /// `(gate * x) * 0.5`, gate `1 + erf(x * 0.70710677)`.
    HalfLast,
    /// `(0.5 * x) * (1 + tanh((x + 0.044715 * Pow(x, 3)) * 0.7978846))`.
    TanhPow,
    /// The same with the cube as `(x * x) * x` and the operands swapped.
    TanhProducts,
}

const GELU_FORMS: [GeluForm; 5] = [
    GeluForm::HalfFirst,
    GeluForm::HalfOnGate,
    GeluForm::HalfLast,
    GeluForm::TanhPow,
    GeluForm::TanhProducts,
];

/// The constants are the f32 values exporters write (`1.4142135`, `0.70710677`, `0.7978846`).
fn gelu(b: &mut Builder, p: &str, x: ValueRef, form: GeluForm) -> ValueRef {
    use std::f32::consts::{FRAC_1_SQRT_2, SQRT_2};
    let n = |s: &str| format!("{p}.{s}");
    use BinaryOp::{Add, Div, Mul, Pow};
    let one = scalar(b, &n("one"), 1.0);
    let half = scalar(b, &n("half"), 0.5);
    let gate = match form {
        GeluForm::HalfFirst | GeluForm::HalfOnGate | GeluForm::HalfLast => {
            let arg = match form {
                GeluForm::HalfFirst => {
                    let c = scalar(b, &n("sqrt2"), SQRT_2);
                    binary(b, &n("div"), Div, x, c)
                }
                GeluForm::HalfOnGate => {
                    let c = scalar(b, &n("rsqrt2"), FRAC_1_SQRT_2);
                    binary(b, &n("scale"), Mul, c, x)
                }
                _ => {
                    let c = scalar(b, &n("rsqrt2"), FRAC_1_SQRT_2);
                    binary(b, &n("scale"), Mul, x, c)
                }
            };
            let erf = unary(b, &n("erf"), UnaryOp::Erf, arg);
            match form {
                GeluForm::HalfOnGate => binary(b, &n("gate"), Add, erf, one),
                _ => binary(b, &n("gate"), Add, one, erf),
            }
        }
        GeluForm::TanhPow | GeluForm::TanhProducts => {
            let k = scalar(b, &n("k"), 0.044715);
            let c = scalar(b, &n("sqrt_2_over_pi"), 0.7978846);
            let s = if matches!(form, GeluForm::TanhPow) {
                let three = scalar(b, &n("three"), 3.0);
                let cube = binary(b, &n("cube"), Pow, x, three);
                let t = binary(b, &n("term"), Mul, k, cube);
                let poly = binary(b, &n("poly"), Add, x, t);
                binary(b, &n("scale"), Mul, poly, c)
            } else {
                let sq = binary(b, &n("square"), Mul, x, x);
                let cube = binary(b, &n("cube"), Mul, sq, x);
                let t = binary(b, &n("term"), Mul, cube, k);
                let poly = binary(b, &n("poly"), Add, t, x);
                binary(b, &n("scale"), Mul, c, poly)
            };
            let th = unary(b, &n("tanh"), UnaryOp::Tanh, s);
            binary(b, &n("gate"), Add, one, th)
        }
    };
    match form {
        GeluForm::HalfFirst | GeluForm::TanhPow => {
            let h = binary(b, &n("half_x"), Mul, x, half);
            binary(b, &n("mul"), Mul, h, gate)
        }
        GeluForm::HalfOnGate => {
            let hg = binary(b, &n("half_gate"), Mul, half, gate);
            binary(b, &n("mul"), Mul, x, hg)
        }
        GeluForm::HalfLast => {
            let prod = binary(b, &n("prod"), Mul, gate, x);
            binary(b, &n("mul"), Mul, prod, half)
        }
        GeluForm::TanhProducts => {
            let h = binary(b, &n("half_x"), Mul, half, x);
            binary(b, &n("mul"), Mul, gate, h)
        }
    }
}

const GELU_X: [usize; 2] = [2, 8];

/// x -> GELU (erf, PyTorch's form) -> GELU (tanh, with Pow) -> y.
fn gelu_graph() -> Graph {
    let mut b = Builder::new("gelu", 0x243F6A8885A308D3);
    let x = input(&mut b, &GELU_X);
    let h = gelu(&mut b, "erf_gelu", x, GeluForm::HalfFirst);
    let y = gelu(&mut b, "tanh_gelu", h, GeluForm::TanhPow);
    finish(b, &[("y", y)])
}

#[test]
fn gelu_views() {
    let parse = gelu_graph();
    let g = optimized(&parse, RecognizeGelu);
    insta::assert_snapshot!("gelu_parse", render(&parse, View::Parse));
    insta::assert_snapshot!("gelu_optimize", render(&g, View::Optimize));
}

#[test]
fn every_gelu_form_becomes_one_layer() {
    for form in GELU_FORMS {
        let mut b = Builder::new("gelu_form", 7);
        let x = input(&mut b, &GELU_X);
        let y = gelu(&mut b, "g", x, form);
        let parse = finish(b, &[("y", y)]);
        let g = optimized(&parse, RecognizeGelu);
        let tanh = matches!(form, GeluForm::TanhPow | GeluForm::TanhProducts);
        assert_eq!(g.op_counts(), [("Gelu".to_string(), 1)], "{form:?}");
        let id = g.node_ids().find(|&id| g.node(id).op.is_layer()).unwrap();
        assert_eq!(g.node(id).op, Op::Gelu { tanh }, "{form:?}");
        // Every layer of the pattern is recorded, in the order it was built.
        let (made_by, origins) = provenance(&g, "Gelu");
        assert_eq!(made_by.as_deref(), Some("recognize_gelu"));
        assert_eq!(origins.len(), parse.layer_count(), "{form:?}");
        assert_eq!(origins.last().map(String::as_str), Some("g.mul"));
        assert_same_outputs(&parse, &g, &GELU_X, 4.0, 0.0);
    }
}

#[test]
fn gelu_with_an_exposed_or_different_part_stays() {
    // The erf is also a graph output: absorbing it would lose the value.
    let mut b = Builder::new("gelu_exposed", 7);
    let x = input(&mut b, &GELU_X);
    let y = gelu(&mut b, "g", x, GeluForm::HalfFirst);
    let erf = b.g.node_ids().find(|&id| b.g.node(id).name == "g.erf");
    let erf = ValueRef::new(erf.unwrap(), 0);
    let parse = finish(b, &[("y", y), ("erf", erf)]);
    let g = optimized(&parse, RecognizeGelu);
    assert_eq!(count(&g, "Gelu"), 0);
    assert_eq!(g.layer_count(), parse.layer_count());

    // Dividing by 2 instead of sqrt(2) is another function.
    let mut b = Builder::new("gelu_other", 7);
    let x = input(&mut b, &GELU_X);
    let two = scalar(&mut b, "two", 2.0);
    let arg = binary(&mut b, "div", BinaryOp::Div, x, two);
    let erf = unary(&mut b, "erf", UnaryOp::Erf, arg);
    let one = scalar(&mut b, "one", 1.0);
    let gate = binary(&mut b, "gate", BinaryOp::Add, erf, one);
    let half = scalar(&mut b, "half", 0.5);
    let h = binary(&mut b, "half_x", BinaryOp::Mul, x, half);
    let y = binary(&mut b, "mul", BinaryOp::Mul, h, gate);
    let parse = finish(b, &[("y", y)]);
    let g = optimized(&parse, RecognizeGelu);
    assert_eq!(count(&g, "Gelu"), 0);
    assert_eq!(g.layer_count(), parse.layer_count());
}

// LayerNorm.

const LN_X: [usize; 3] = [2, 6, 8];

/// How a written-out layer norm is spelled.
struct LnForm<'a> {
    axes: &'a [i64],
    /// `Pow(d, 2)`, else `d * d`.
    pow: bool,
    gamma: Option<&'a [usize]>,
    beta: Option<&'a [usize]>,
}

/// `ReduceMean`, `Sub`, the square, `ReduceMean`, `Add` epsilon, `Sqrt`, `Div`, then the
/// optional `* gamma` and `+ beta`. Returns the output and the mean.
fn layer_norm(b: &mut Builder, p: &str, x: ValueRef, f: &LnForm) -> (ValueRef, ValueRef) {
    let n = |s: &str| format!("{p}.{s}");
    let rank = b.g.value_type(x).shape.rank() as i64;
    let mut reduced = b.g.value_type(x).shape.known().unwrap();
    for &a in f.axes {
        reduced[((a + rank) % rank) as usize] = 1;
    }
    let mean_op = Op::Reduce {
        op: ReduceOp::Mean,
        keepdims: true,
        noop_with_empty_axes: false,
    };
    let reduce = |b: &mut Builder, name: &str, v: ValueRef| {
        let axes =
            b.g.weights
                .add(Weight::from_i64(vec![f.axes.len()], f.axes));
        let ty = TensorType::new(DType::I64, Shape::from_known(&[f.axes.len()]));
        let axes = b.node(
            &format!("{name}.axes"),
            Op::Constant { weight: axes },
            ty,
            &[],
        );
        b.node(name, mean_op.clone(), f32s(&reduced), &[v, axes])
    };
    let mean = reduce(b, &n("mean"), x);
    let d = binary(b, &n("sub"), BinaryOp::Sub, x, mean);
    let sq = if f.pow {
        let two = scalar(b, &n("two"), 2.0);
        binary(b, &n("pow"), BinaryOp::Pow, d, two)
    } else {
        binary(b, &n("square"), BinaryOp::Mul, d, d)
    };
    let var = reduce(b, &n("var"), sq);
    let eps = scalar(b, &n("eps"), 1e-5);
    let shifted = b.node(
        &n("add_eps"),
        Op::Binary(BinaryOp::Add),
        f32s(&reduced),
        &[eps, var],
    );
    let s = unary(b, &n("sqrt"), UnaryOp::Sqrt, shifted);
    let mut y = binary(b, &n("div"), BinaryOp::Div, d, s);
    if let Some(dims) = f.gamma {
        let gamma = b.random(&n("gamma"), dims, Layout::Any);
        y = binary(b, &n("mul"), BinaryOp::Mul, gamma, y);
    }
    if let Some(dims) = f.beta {
        let beta = b.random(&n("beta"), dims, Layout::Any);
        y = binary(b, &n("add"), BinaryOp::Add, y, beta);
    }
    (y, mean)
}

/// x -> layer norm over the last axis with gamma and beta (Pow) -> layer norm over the last
/// two axes, no gamma or beta, positive axes (`d * d`) -> y.
fn layer_norm_graph() -> Graph {
    let mut b = Builder::new("layer_norm", 0x13198A2E03707344);
    let x = input(&mut b, &LN_X);
    let last = LnForm {
        axes: &[-1],
        pow: true,
        gamma: Some(&[8]),
        beta: Some(&[8]),
    };
    let (h, _) = layer_norm(&mut b, "ln1", x, &last);
    let two = LnForm {
        axes: &[2, 1],
        pow: false,
        gamma: None,
        beta: None,
    };
    let (y, _) = layer_norm(&mut b, "ln2", h, &two);
    finish(b, &[("y", y)])
}

#[test]
fn layer_norm_views() {
    let parse = layer_norm_graph();
    let g = optimized(&parse, RecognizeLayerNorm);
    insta::assert_snapshot!("layer_norm_parse", render(&parse, View::Parse));
    insta::assert_snapshot!("layer_norm_optimize", render(&g, View::Optimize));
}

#[test]
fn layer_norms_become_one_layer_each() {
    let parse = layer_norm_graph();
    let g = optimized(&parse, RecognizeLayerNorm);
    assert_eq!(g.op_counts(), [("LayerNorm".to_string(), 2)]);
    let mut attrs: Vec<(i64, f32, usize)> = g
        .node_ids()
        .filter_map(|id| match g.node(id).op {
            Op::LayerNorm { axis, epsilon } => Some((axis, epsilon, g.inputs_of(id).len())),
            _ => None,
        })
        .collect();
    attrs.sort_by_key(|a| a.0);
    // Over the last two axes (scale of ones, no bias), and over the last (gamma and beta).
    assert_eq!(attrs, [(-2, 1e-5, 2), (-1, 1e-5, 3)]);
    assert_eq!(g.outputs[0].name, "y");
    assert_same_outputs(&parse, &g, &LN_X, 2.0, 0.5);
}

#[test]
fn layer_norm_parameters_with_leading_ones_or_alone() {
    let forms = [
        (Some(&[1, 1, 8][..]), Some(&[8][..])),
        (Some(&[8][..]), None),
        (None, Some(&[1, 8][..])),
    ];
    for (gamma, beta) in forms {
        let mut b = Builder::new("ln_params", 3);
        let x = input(&mut b, &LN_X);
        let form = LnForm {
            axes: &[-1],
            pow: true,
            gamma,
            beta,
        };
        let (y, _) = layer_norm(&mut b, "ln", x, &form);
        let parse = finish(b, &[("y", y)]);
        let g = optimized(&parse, RecognizeLayerNorm);
        assert_eq!(
            g.op_counts(),
            [("LayerNorm".to_string(), 1)],
            "{gamma:?} {beta:?}"
        );
        let (made_by, origins) = provenance(&g, "LayerNorm");
        assert_eq!(made_by.as_deref(), Some("recognize_layer_norm"));
        assert_eq!(origins.len(), parse.layer_count());
        assert_same_outputs(&parse, &g, &LN_X, 2.0, -0.25);
    }
}

#[test]
fn layer_norm_with_an_exposed_mean_or_leading_axis_stays() {
    let cases: [(&[i64], bool); 2] = [(&[-1], true), (&[1], false)];
    for (axes, expose_mean) in cases {
        let mut b = Builder::new("ln_negative", 5);
        let x = input(&mut b, &LN_X);
        let form = LnForm {
            axes,
            pow: true,
            gamma: Some(&[8]),
            beta: Some(&[8]),
        };
        let (y, mean) = layer_norm(&mut b, "ln", x, &form);
        let mut outputs = vec![("y", y)];
        if expose_mean {
            outputs.push(("mean", mean));
        }
        let parse = finish(b, &outputs);
        let g = optimized(&parse, RecognizeLayerNorm);
        assert_eq!(count(&g, "LayerNorm"), 0, "axes {axes:?}");
        assert_eq!(g.layer_count(), parse.layer_count());
    }
}

#[test]
fn gamma_along_a_leading_axis_stays_outside() {
    // Gamma varies along axis 1, which the norm over the last axis does not cover: the norm is
    // recognized with a scale of ones and the Mul and the Add after it stay.
    let mut b = Builder::new("ln_gamma_rows", 9);
    let x = input(&mut b, &LN_X);
    let form = LnForm {
        axes: &[-1],
        pow: true,
        gamma: Some(&[6, 1]),
        beta: Some(&[8]),
    };
    let (y, _) = layer_norm(&mut b, "ln", x, &form);
    let parse = finish(b, &[("y", y)]);
    let g = optimized(&parse, RecognizeLayerNorm);
    assert_eq!(count(&g, "LayerNorm"), 1);
    assert_eq!((count(&g, "Mul"), count(&g, "Add")), (1, 1));
    assert_same_outputs(&parse, &g, &LN_X, 2.0, 0.0);
}

// MatMul + Add.

const MM_X: [usize; 2] = [4, 16];

/// `x @ w + bias`, with a 2-D bias written first (exporters put it on either side).
fn linear(b: &mut Builder, p: &str, x: ValueRef, w: [usize; 2], bias: &[usize]) -> ValueRef {
    let wv = b.random(&format!("{p}.w"), &w, Layout::Any);
    let mut dims = b.g.value_type(x).shape.known().unwrap();
    *dims.last_mut().unwrap() = w[1];
    let product = b.node(&format!("{p}.matmul"), Op::MatMul, f32s(&dims), &[x, wv]);
    let bv = b.random(&format!("{p}.b"), bias, Layout::Any);
    let ins = if bias.len() == 2 {
        [bv, product]
    } else {
        [product, bv]
    };
    b.node(
        &format!("{p}.add"),
        Op::Binary(BinaryOp::Add),
        f32s(&dims),
        &ins,
    )
}

/// x -> MatMul + bias [8] -> Relu -> bias [1,3] + MatMul -> y.
fn matmul_graph() -> Graph {
    let mut b = Builder::new("matmul_add", 0xA4093822299F31D0);
    let x = input(&mut b, &MM_X);
    let h = linear(&mut b, "fc1", x, [16, 8], &[8]);
    let h = unary(&mut b, "relu", UnaryOp::Relu, h);
    let y = linear(&mut b, "fc2", h, [8, 3], &[1, 3]);
    finish(b, &[("y", y)])
}

#[test]
fn matmul_add_views() {
    let parse = matmul_graph();
    let g = optimized(&parse, FuseMatMulAdd);
    insta::assert_snapshot!("matmul_add_parse", render(&parse, View::Parse));
    insta::assert_snapshot!("matmul_add_optimize", render(&g, View::Optimize));
}

#[test]
fn matmul_and_bias_become_gemm() {
    let parse = matmul_graph();
    let g = optimized(&parse, FuseMatMulAdd);
    let counts = [("Gemm".to_string(), 2), ("Relu".to_string(), 1)];
    assert_eq!(g.op_counts(), counts);
    let (made_by, origins) = provenance(&g, "Gemm");
    assert_eq!(made_by.as_deref(), Some("fuse_matmul_add"));
    assert_eq!(origins.len(), 2);
    assert_same_outputs(&parse, &g, &MM_X, 1.0, 0.0);
}

#[test]
fn batched_exposed_or_full_bias_matmuls_stay() {
    // A rank-3 activation (Gemm is 2-D), a product that is also a graph output, and a bias of
    // the output's full shape.
    let mut b = Builder::new("matmul_negative", 11);
    let x = input(&mut b, &[2, 4, 16]);
    let batched = linear(&mut b, "batched", x, [16, 8], &[8]);
    let shape = b.g.weights.add(Weight::from_i64(vec![2], &[8, 16]));
    let ty = TensorType::new(DType::I64, Shape::from_known(&[2]));
    let shape = b.node("flat.shape", Op::Constant { weight: shape }, ty, &[]);
    let flat = b.node(
        "flat",
        Op::Reshape { allowzero: false },
        f32s(&[8, 16]),
        &[x, shape],
    );
    let exposed = linear(&mut b, "exposed", flat, [16, 8], &[8]);
    let exposed_product = b.g.input(exposed.node, 0).unwrap();
    let full = linear(&mut b, "full", flat, [16, 8], &[8, 8]);
    let parse = finish(
        b,
        &[
            ("batched", batched),
            ("exposed", exposed),
            ("exposed_product", exposed_product),
            ("full", full),
        ],
    );
    let g = optimized(&parse, FuseMatMulAdd);
    assert_eq!(count(&g, "Gemm"), 0);
    assert_eq!(g.layer_count(), parse.layer_count());
}
