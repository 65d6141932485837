//! The runtime's elementwise kernels against its CPU kernels, bit for bit (see
//! `Cases::assert_bits`): activation.cuh against the standalone activation ops and a convolution's
//! fused epilogue, binary.cuh against Add, Sub, Mul and Div with numpy broadcasting.

use super::data::{run_runtime, uniform};
use super::harness::{push, Cases, Harness};
use temblor_ir::{Activation, Affine, AutoPad, BinaryOp, ConvAttrs, Op, UnaryOp};
use temblor_runtime::Tensor;
use temblor_tests::Rng;

/// activation.cuh's codes (RtActivation).
const IDENTITY: u8 = 0;
const RELU: u8 = 1;
const LEAKY_RELU: u8 = 2;
const SIGMOID: u8 = 3;
const SILU: u8 = 4;
const HARD_SWISH: u8 = 5;
const HARD_SIGMOID: u8 = 6;
const GELU: u8 = 7;
const TANH: u8 = 8;
const CLIP: u8 = 9;
const GELU_TANH: u8 = 10;

/// Inputs through every branch of exp, erf and tanh: [-12, 12] in steps that are not round
/// numbers, random values in [-40, 40), the branch points, and the edges (±0, ±inf, NaN,
/// denormals, exp's saturation, f32's extremes).
fn activation_inputs() -> Vec<f32> {
    let mut v: Vec<f32> = (-6000..=6000).map(|i| i as f32 * 2.000_3e-3).collect();
    v.extend(uniform(&mut Rng(0x9B05_688C_2B3E_6C1F), 2000, -40.0, 40.0));
    let (inf, nan, tiny) = (f32::INFINITY, f32::NAN, f32::from_bits(1));
    v.extend([0.625, -0.625, 1.0, -1.0, 3.0, -3.0, 4.0, -4.0, 6.0, -6.0]);
    v.extend([0.0, -0.0, inf, -inf, nan, tiny, -tiny, 1e-30, -1e-30]);
    v.extend([87.3, -87.3, 88.7, -88.7, 1e30, -1e30, f32::MAX, f32::MIN]);
    v
}

/// The harness's `activation` command.
fn activation_command(code: u8, alpha: f32, beta: f32, x: &[f32]) -> String {
    let mut cmd = format!("activation {code} {alpha} {beta} {}", x.len());
    push(&mut cmd, x);
    cmd
}

#[test]
fn activations_match_the_runtime_bit_for_bit() {
    let harness = Harness::shared();
    let x = activation_inputs();
    let xt = Tensor::f32(vec![x.len()], x.clone());
    let unary = |u| Op::Unary(u);
    let ops = [
        ("Relu", unary(UnaryOp::Relu), RELU, 0.0, 0.0),
        (
            "LeakyRelu",
            Op::LeakyRelu { alpha: 0.1 },
            LEAKY_RELU,
            0.1,
            0.0,
        ),
        ("Sigmoid", unary(UnaryOp::Sigmoid), SIGMOID, 0.0, 0.0),
        ("HardSwish", unary(UnaryOp::HardSwish), HARD_SWISH, 0.0, 0.0),
        (
            "HardSigmoid",
            Op::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            HARD_SIGMOID,
            0.2,
            0.5,
        ),
        ("Gelu", Op::Gelu { tanh: false }, GELU, 0.0, 0.0),
        ("Gelu (tanh)", Op::Gelu { tanh: true }, GELU_TANH, 0.0, 0.0),
        ("Tanh", unary(UnaryOp::Tanh), TANH, 0.0, 0.0),
        ("Clip", Op::Clip { min: 0.0, max: 6.0 }, CLIP, 0.0, 6.0),
        (
            "Clip without min",
            Op::Clip {
                min: f32::MIN,
                max: 6.0,
            },
            CLIP,
            f32::MIN,
            6.0,
        ),
        (
            "Clip without max",
            Op::Clip {
                min: -1.0,
                max: f32::MAX,
            },
            CLIP,
            -1.0,
            f32::MAX,
        ),
    ];
    let mut cases = Cases::default();
    for (name, op, code, alpha, beta) in ops {
        let command = activation_command(code, alpha, beta, &x);
        cases.add(name.into(), &command, run_runtime(&op, &[Some(&xt)]).1);
    }
    // SiLU has no node of its own: the graph's Mul of x and its Sigmoid.
    let sigmoid = Tensor::f32(
        vec![x.len()],
        run_runtime(&unary(UnaryOp::Sigmoid), &[Some(&xt)]).1,
    );
    let silu = run_runtime(&Op::Binary(BinaryOp::Mul), &[Some(&xt), Some(&sigmoid)]).1;
    cases.add("SiLU".into(), &activation_command(SILU, 0.0, 0.0, &x), silu);
    cases.assert_bits(&harness);
}

#[test]
fn conv_epilogue_matches_the_runtime_bit_for_bit() {
    let harness = Harness::shared();
    let (n, c, h, w, o) = (2, 8, 9, 11, 16);
    let mut rng = Rng(0x1F83_D9AB_FB41_BD6B);
    let x = Tensor::f32(
        vec![n, c, h, w],
        uniform(&mut rng, n * c * h * w, -1.0, 1.0),
    );
    let wt = Tensor::f32(vec![o, c, 3, 3], uniform(&mut rng, o * c * 9, -1.0, 1.0));
    let bias = uniform(&mut rng, o, -2.0, 2.0);
    let residual = uniform(&mut rng, n * o * h * w, -3.0, 3.0);
    let bias_t = Tensor::f32(vec![o], bias.clone());
    let residual_t = Tensor::f32(vec![n, o, h, w], residual.clone());
    let attrs = |activation, affine| ConvAttrs {
        kernel: [3, 3],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [1, 1, 1, 1],
        auto_pad: AutoPad::NotSet,
        group: 1,
        activation,
        affine,
    };
    // The accumulated convolution the epilogue finishes: the same kernel with no epilogue.
    let (_, acc) = run_runtime(&Op::Conv(attrs(None, None)), &[Some(&x), Some(&wt)]);
    let spread = acc.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        spread > 6.0,
        "the sums must reach past Clip's and HardSwish's bounds"
    );
    let activations: [(Option<Activation>, u8, f32, f32); 8] = [
        (Some(Activation::Relu), RELU, 0.0, 0.0),
        (
            Some(Activation::LeakyRelu { alpha: 0.1 }),
            LEAKY_RELU,
            0.1,
            0.0,
        ),
        (Some(Activation::Sigmoid), SIGMOID, 0.0, 0.0),
        (Some(Activation::Silu), SILU, 0.0, 0.0),
        (Some(Activation::HardSwish), HARD_SWISH, 0.0, 0.0),
        (
            Some(Activation::HardSigmoid {
                alpha: 1.0 / 6.0,
                beta: 0.5,
            }),
            HARD_SIGMOID,
            1.0 / 6.0,
            0.5,
        ),
        (
            Some(Activation::Clip { min: 0.0, max: 6.0 }),
            CLIP,
            0.0,
            6.0,
        ),
        (None, IDENTITY, 0.0, 0.0),
    ];
    let mut cases = Cases::default();
    for (activation, code, alpha, beta) in activations {
        for (with_bias, with_residual) in [(true, true), (true, false), (false, true)] {
            // PP-LCNetV3's learnable affine after the activation, on one case of each.
            let affine = (with_bias && !with_residual && activation.is_some()).then_some(Affine {
                scale: 1.3,
                shift: -0.2,
            });
            let inputs = [
                Some(&x),
                Some(&wt),
                with_bias.then_some(&bias_t),
                with_residual.then_some(&residual_t),
            ];
            let (_, want) = run_runtime(&Op::Conv(attrs(activation, affine)), &inputs);
            let (scale, shift) = affine.map_or((1.0, -0.0), |a| (a.scale, a.shift));
            let mut command = format!(
                "epilogue {code} {alpha} {beta} {} {scale} {shift} {o} {} {} {} {}",
                u8::from(affine.is_some()),
                h * w,
                acc.len(),
                u8::from(with_bias),
                u8::from(with_residual)
            );
            push(&mut command, &acc);
            if with_bias {
                push(&mut command, &bias);
            }
            if with_residual {
                push(&mut command, &residual);
            }
            let what = format!("{activation:?} bias={with_bias} residual={with_residual}");
            cases.add(what, &command, want);
        }
    }
    cases.assert_bits(&harness);
}

/// binary.cuh's codes (RtBinaryOp), in order.
const BINARY_OPS: [(BinaryOp, u8); 4] = [
    (BinaryOp::Add, 0),
    (BinaryOp::Sub, 1),
    (BinaryOp::Mul, 2),
    (BinaryOp::Div, 3),
];

#[test]
fn broadcast_arithmetic_matches_the_runtime_bit_for_bit() {
    let harness = Harness::shared();
    let mut rng = Rng(0x5BE0_CD19_137E_2179);
    // Equal shapes, a per-channel operand, a scalar of rank 0 and of rank 1, both operands
    // stretched, and six axes stretched alternately.
    let shapes: [(&[usize], &[usize]); 6] = [
        (&[2, 3, 4, 5], &[2, 3, 4, 5]),
        (&[2, 3, 4, 5], &[3, 1, 5]),
        (&[], &[2, 3]),
        (&[4, 3], &[1]),
        (&[2, 1, 4], &[3, 1]),
        (&[4, 1, 3, 1, 2, 1], &[1, 5, 1, 2, 1, 3]),
    ];
    let mut cases = Cases::default();
    for (a_shape, b_shape) in shapes {
        let len = |s: &[usize]| s.iter().product::<usize>();
        let a = uniform(&mut rng, len(a_shape), -4.0, 4.0);
        // Every fifth divisor zero, so that Div makes infinities and NaNs too.
        let mut b = uniform(&mut rng, len(b_shape), -4.0, 4.0);
        b.iter_mut().step_by(5).for_each(|v| *v = 0.0);
        let a_t = Tensor::f32(a_shape.to_vec(), a.clone());
        let b_t = Tensor::f32(b_shape.to_vec(), b.clone());
        for (op, code) in BINARY_OPS {
            let mut command = format!("binary {code} {}", a_shape.len());
            push(&mut command, a_shape);
            command += &format!(" {}", b_shape.len());
            push(&mut command, b_shape);
            push(&mut command, &a);
            push(&mut command, &b);
            let want = run_runtime(&Op::Binary(op), &[Some(&a_t), Some(&b_t)]).1;
            cases.add(
                format!("{op:?} of {a_shape:?} and {b_shape:?}"),
                &command,
                want,
            );
        }
    }
    cases.assert_bits(&harness);
}
