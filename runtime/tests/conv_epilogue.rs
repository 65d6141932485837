//! Conv at sizes that take the tiled, threaded paths (several position tiles, channel blocks
//! that do not fill a register block, groups, depthwise) with fused epilogues: against a direct
//! reference, against the unfused ops bit for bit, and with 1 and 2 threads bit for bit; and
//! ConvTranspose's fused activation against the unfused op.

mod common;

use common::{assert_close, single_op_graph, Arg, Rng};
use temblor_ir::{Activation, Affine, BinaryOp, ConvAttrs, ConvTransposeAttrs, Op, UnaryOp};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor};

struct Case {
    c: usize,
    o: usize,
    hw: [usize; 2],
    kernel: usize,
    stride: usize,
    pad: usize,
    group: usize,
}

const CASES: [Case; 5] = [
    // 3x3 over 3 position tiles, 20 channels: two full register blocks and a partial one.
    Case {
        c: 24,
        o: 20,
        hw: [37, 53],
        kernel: 3,
        stride: 1,
        pad: 1,
        group: 1,
    },
    // 1x1: the pointwise path.
    Case {
        c: 40,
        o: 17,
        hw: [30, 41],
        kernel: 1,
        stride: 1,
        pad: 0,
        group: 1,
    },
    // Strided, grouped, and few positions, so output channels are split across tasks.
    Case {
        c: 16,
        o: 64,
        hw: [9, 11],
        kernel: 3,
        stride: 2,
        pad: 1,
        group: 2,
    },
    // Depthwise 5x5 and 3x3 stride 2.
    Case {
        c: 12,
        o: 12,
        hw: [23, 19],
        kernel: 5,
        stride: 1,
        pad: 2,
        group: 12,
    },
    Case {
        c: 8,
        o: 8,
        hw: [20, 21],
        kernel: 3,
        stride: 2,
        pad: 1,
        group: 8,
    },
];

fn attrs(c: &Case, activation: Option<Activation>) -> ConvAttrs {
    ConvAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        kernel: [c.kernel; 2],
        strides: [c.stride; 2],
        dilations: [1, 1],
        pads: [c.pad; 4],
        group: c.group,
        activation,
        affine: None,
    }
}

fn out_hw(c: &Case) -> [usize; 2] {
    c.hw.map(|d| (d + 2 * c.pad - c.kernel) / c.stride + 1)
}

/// `conv(x) + bias + residual` in f64.
fn reference(c: &Case, x: &Tensor, w: &Tensor, b: &Tensor, r: &Tensor) -> Vec<f64> {
    let (xv, wv, bv, rv) = (
        x.as_f32().unwrap(),
        w.as_f32().unwrap(),
        b.as_f32().unwrap(),
        r.as_f32().unwrap(),
    );
    let ([h, wd], [oh, ow]) = (c.hw, out_hw(c));
    let (cg, og, k) = (c.c / c.group, c.o / c.group, c.kernel);
    let mut out = Vec::with_capacity(c.o * oh * ow);
    for oc in 0..c.o {
        for y in 0..oh {
            for xo in 0..ow {
                let mut acc = bv[oc] as f64;
                for ci in 0..cg {
                    for i in 0..k {
                        for j in 0..k {
                            let iy = (y * c.stride + i) as isize - c.pad as isize;
                            let ix = (xo * c.stride + j) as isize - c.pad as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                continue;
                            }
                            let xi = ((oc / og * cg + ci) * h + iy as usize) * wd + ix as usize;
                            acc += xv[xi] as f64 * wv[((oc * cg + ci) * k + i) * k + j] as f64;
                        }
                    }
                }
                out.push(acc + rv[out.len()] as f64);
            }
        }
    }
    out
}

/// How many elements of two f32 tensors of one shape differ in their bits.
fn bit_differences(a: &Tensor, b: &Tensor) -> usize {
    let (a, b) = (a.as_f32().unwrap(), b.as_f32().unwrap());
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count()
}

fn run(op: Op, args: &[Arg], threads: usize) -> Tensor {
    let options = PrepareOptions {
        threads,
        ..PrepareOptions::default()
    };
    let plan = prepare(&single_op_graph(op, args, 1), &Device::Cpu, &options).expect("plan builds");
    let feeds: Vec<(String, Tensor)> = args
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a {
            Arg::Input(t) => Some((format!("in{i}"), t.clone())),
            _ => None,
        })
        .collect();
    plan.run_once(&feeds).expect("plan runs").remove(0).1
}

struct Operands {
    x: Tensor,
    w: Tensor,
    b: Tensor,
    r: Tensor,
}

impl Operands {
    fn new(c: &Case, rng: &mut Rng) -> Operands {
        let [oh, ow] = out_hw(c);
        Operands {
            x: rng.tensor(&[1, c.c, c.hw[0], c.hw[1]]),
            w: rng.tensor(&[c.o, c.c / c.group, c.kernel, c.kernel]),
            b: rng.tensor(&[c.o]),
            r: rng.tensor(&[1, c.o, oh, ow]),
        }
    }

    fn args(&self) -> [Arg; 4] {
        [
            Arg::Input(self.x.clone()),
            Arg::Const(self.w.clone()),
            Arg::Const(self.b.clone()),
            Arg::Input(self.r.clone()),
        ]
    }
}

#[test]
fn fused_conv_matches_reference() {
    let mut rng = Rng::new(11);
    for (k, c) in CASES.iter().enumerate() {
        let ops = Operands::new(c, &mut rng);
        let want = reference(c, &ops.x, &ops.w, &ops.b, &ops.r);
        let hard_swish = |v: f64| v * (v / 6.0 + 0.5).clamp(0.0, 1.0);
        let got = run(
            Op::Conv(attrs(c, Some(Activation::HardSwish))),
            &ops.args(),
            2,
        );
        let want = Tensor::f32(
            got.shape.clone(),
            want.iter().map(|&v| hard_swish(v) as f32).collect(),
        );
        assert_close(&got, &want, &format!("case {k}"));
    }
}

#[test]
fn fused_activation_is_bit_identical_to_the_standalone_op() {
    let mut rng = Rng::new(12);
    let pairs = [
        (Activation::Relu, Op::Unary(UnaryOp::Relu)),
        (Activation::HardSwish, Op::Unary(UnaryOp::HardSwish)),
        (Activation::Mish, Op::Unary(UnaryOp::Mish)),
        (
            Activation::LeakyRelu { alpha: 0.1 },
            Op::LeakyRelu { alpha: 0.1 },
        ),
        (Activation::Sigmoid, Op::Unary(UnaryOp::Sigmoid)),
        (
            Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            Op::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
        ),
        (
            Activation::Clip {
                min: -0.5,
                max: 0.75,
            },
            Op::Clip {
                min: -0.5,
                max: 0.75,
            },
        ),
    ];
    for (k, c) in CASES.iter().enumerate() {
        let ops = Operands::new(c, &mut rng);
        let plain = run(Op::Conv(attrs(c, None)), &ops.args(), 2);
        for (act, op) in &pairs {
            let fused = run(Op::Conv(attrs(c, Some(*act))), &ops.args(), 2);
            let apart = run(op.clone(), &[Arg::Input(plain.clone())], 2);
            assert_eq!(fused.shape, apart.shape);
            let differ = bit_differences(&fused, &apart);
            assert_eq!(differ, 0, "case {k}, {}: elements differ", act.name());
        }
    }
}

/// A scalar Mul and Add after the activation, and each alone (the other at its identity). The
/// HardSwish of a negative input below -3 is `-0`, which a shift of `+0` would turn into `+0`:
/// the lone scale must keep it.
#[test]
fn fused_affine_is_bit_identical_to_the_standalone_mul_and_add() {
    let mut rng = Rng::new(14);
    let scalar = |v: f32| Arg::Const(Tensor::f32(vec![1], vec![v]));
    let identity = Affine::IDENTITY;
    let affines = [
        Affine {
            scale: 1.75,
            shift: -0.25,
        },
        Affine {
            scale: 0.5,
            ..identity
        },
        Affine {
            shift: 0.125,
            ..identity
        },
    ];
    for (k, c) in CASES.iter().enumerate() {
        let ops = Operands::new(c, &mut rng);
        let act = run(
            Op::Conv(attrs(c, Some(Activation::HardSwish))),
            &ops.args(),
            2,
        );
        for affine in affines {
            let mut fused = attrs(c, Some(Activation::HardSwish));
            fused.affine = Some(affine);
            let fused = run(Op::Conv(fused), &ops.args(), 2);
            let mut apart = act.clone();
            if affine.scale != 1.0 {
                let mul = Op::Binary(BinaryOp::Mul);
                apart = run(mul, &[scalar(affine.scale), Arg::Input(apart)], 2);
            }
            if affine.shift.to_bits() != identity.shift.to_bits() {
                let add = Op::Binary(BinaryOp::Add);
                apart = run(add, &[Arg::Input(apart), scalar(affine.shift)], 2);
            }
            let differ = bit_differences(&fused, &apart);
            assert_eq!(differ, 0, "case {k}, {affine:?}: elements differ");
        }
    }
}

/// A transposed convolution's fused activation, on the write-once path (2x2 stride 2) and on
/// the overlapping one (3x3 stride 2, padded).
#[test]
fn conv_transpose_activation_is_bit_identical_to_the_standalone_op() {
    let mut rng = Rng::new(15);
    let (x, b) = (rng.tensor(&[1, 6, 13, 17]), rng.tensor(&[10]));
    for (kernel, pads) in [(2, [0; 4]), (3, [1; 4])] {
        let w = rng.tensor(&[6, 10, kernel, kernel]);
        let attrs = |activation| ConvTransposeAttrs {
            kernel: [kernel; 2],
            strides: [2, 2],
            dilations: [1, 1],
            pads,
            output_padding: [0, 0],
            group: 1,
            activation,
        };
        let args = [
            Arg::Input(x.clone()),
            Arg::Const(w.clone()),
            Arg::Const(b.clone()),
        ];
        let plain = run(Op::ConvTranspose(attrs(None)), &args, 2);
        for (act, op) in [
            (Activation::Relu, Op::Unary(UnaryOp::Relu)),
            (Activation::Sigmoid, Op::Unary(UnaryOp::Sigmoid)),
        ] {
            let fused = run(Op::ConvTranspose(attrs(Some(act))), &args, 2);
            let apart = run(op, &[Arg::Input(plain.clone())], 2);
            let differ = bit_differences(&fused, &apart);
            assert_eq!(
                differ,
                0,
                "{kernel}x{kernel}, {}: elements differ",
                act.name()
            );
        }
    }
}

#[test]
fn thread_count_does_not_change_results() {
    let mut rng = Rng::new(13);
    for (k, c) in CASES.iter().enumerate() {
        let ops = Operands::new(c, &mut rng);
        let op = Op::Conv(attrs(c, Some(Activation::Silu)));
        let one = run(op.clone(), &ops.args(), 1);
        let two = run(op, &ops.args(), 2);
        assert_eq!(bit_differences(&one, &two), 0, "case {k}: elements differ");
    }
}
