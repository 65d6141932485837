//! Every non-conv kernel against onnxruntime on seeded data: Resize in all its modes,
//! broadcasting arithmetic, normalization, activations, pooling and the shape ops.

mod common;

use common::{check_close, run_ort_many, run_temblor, Arg, OrtArg, OrtCase, Rng};
use temblor_ir::{
    BinaryOp, Op, ResizeAttrs, ResizeCoordinate, ResizeMode, ResizeNearest, SplitSizes, UnaryOp,
};
use temblor_runtime::Tensor;

/// Runs each (temblor op, temblor args, onnx case) and compares every output; reports every
/// case that differs, not just the first.
fn compare(tag: &str, cases: Vec<(Op, Vec<Arg>, OrtCase)>) {
    let (mine, theirs): (Vec<_>, Vec<_>) = cases
        .into_iter()
        .map(|(op, args, ort)| ((op, args), ort))
        .unzip();
    let want = run_ort_many(tag, &theirs);
    let mut failures = Vec::new();
    for (k, ((op, args), want)) in mine.into_iter().zip(want).enumerate() {
        let got = run_temblor(op.clone(), &args, want.len());
        for (g, w) in got.iter().zip(&want) {
            if let Err(e) = check_close(g, w) {
                failures.push(format!("case {k} ({op:?} / {}): {e}", theirs[k].attrs));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{tag}: {} of {} cases differ from onnxruntime:\n{}",
        failures.len(),
        theirs.len(),
        failures.join("\n")
    );
}

fn case<'a>(
    op_type: &'a str,
    opset: u32,
    attrs: &str,
    args: Vec<OrtArg<'a>>,
    outputs: usize,
) -> OrtCase<'a> {
    OrtCase {
        op_type,
        opset,
        attrs: attrs.to_string(),
        args,
        outputs,
    }
}

const COORDINATES: [(ResizeCoordinate, &str); 5] = [
    (ResizeCoordinate::HalfPixel, "half_pixel"),
    (ResizeCoordinate::HalfPixelSymmetric, "half_pixel_symmetric"),
    (ResizeCoordinate::PytorchHalfPixel, "pytorch_half_pixel"),
    (ResizeCoordinate::AlignCorners, "align_corners"),
    (ResizeCoordinate::Asymmetric, "asymmetric"),
];

const NEAREST: [(ResizeNearest, &str); 4] = [
    (ResizeNearest::RoundPreferFloor, "round_prefer_floor"),
    (ResizeNearest::RoundPreferCeil, "round_prefer_ceil"),
    (ResizeNearest::Floor, "floor"),
    (ResizeNearest::Ceil, "ceil"),
];

/// An input and the scales or sizes it is resized by.
type Target<'a> = (&'a Tensor, Option<Vec<f32>>, Option<Vec<usize>>);

#[test]
fn resize_matches_onnxruntime() {
    let mut rng = Rng::new(10);
    let x = rng.tensor(&[1, 2, 5, 7]);
    let x3 = rng.tensor(&[2, 4, 6]);
    // Large enough to be built in parallel chunks, which split rows of 140.
    let big = rng.tensor(&[1, 8, 32, 70]);
    // Sizes 7 -> 4 are left out on purpose: at output 2 the f32 coordinate (asymmetric) is
    // 3.4999998, which onnxruntime 1.31 rounds up under round_prefer_ceil although its source
    // says roundf; temblor follows the f32 formula of the spec and of that source.
    let targets: [Target; 7] = [
        (&x, Some(vec![1.0, 1.0, 2.0, 2.0]), None),
        (&big, Some(vec![1.0, 1.0, 2.0, 2.0]), None),
        (&x, Some(vec![1.0, 1.0, 0.6, 1.7]), None),
        (&x, Some(vec![1.0, 1.0, 3.0, 0.5]), None),
        (&x, None, Some(vec![1, 2, 8, 3])),
        (&x, None, Some(vec![1, 2, 1, 13])),
        (&x3, Some(vec![1.0, 2.5, 1.5]), None),
    ];
    let modes = NEAREST
        .iter()
        .map(|&(n, name)| {
            (
                ResizeMode::Nearest,
                n,
                format!(r#""mode": "nearest", "nearest_mode": "{name}""#),
            )
        })
        .chain([
            (
                ResizeMode::Linear,
                ResizeNearest::Floor,
                r#""mode": "linear""#.to_string(),
            ),
            (
                ResizeMode::Cubic,
                ResizeNearest::Floor,
                r#""mode": "cubic""#.to_string(),
            ),
        ]);
    let mut cases = Vec::new();
    for (mode, nearest, mode_attrs) in modes {
        for &(coordinate, coord_name) in &COORDINATES {
            for (t, scales, sizes) in &targets {
                // onnxruntime divides align_corners coordinates by the integer output extent;
                // the spec's reference (and the node suite's cases built from it) by
                // `scale * input`, which temblor follows. They differ only where that product
                // is fractional (test_resize_downsample_scales_*_align_corners pin temblor's).
                let fractional = scales.as_ref().is_some_and(|s| {
                    s.iter()
                        .zip(&t.shape)
                        .any(|(s, &n)| (s * n as f32).fract() != 0.0)
                });
                if coordinate == ResizeCoordinate::AlignCorners && fractional {
                    continue;
                }
                // Nearest with half_pixel_symmetric: onnxruntime 1.31 and the spec's reference
                // (onnx.reference, which the node suite's cases come from and temblor follows)
                // pick different pixels where the scale is not whole (checked on 1x2x5x7 at
                // scales 0.6x1.7 and 3x0.5).
                let whole = scales
                    .as_ref()
                    .is_none_or(|s| s.iter().all(|s| s.fract() == 0.0));
                if mode == ResizeMode::Nearest
                    && coordinate == ResizeCoordinate::HalfPixelSymmetric
                    && !whole
                {
                    continue;
                }
                // onnxruntime resizes cubically only in 2-D and 4-D (ScalesValidation).
                if mode == ResizeMode::Cubic && t.shape.len() != 4 {
                    continue;
                }
                let attrs = ResizeAttrs::new(mode, coordinate, nearest);
                let ort_attrs = format!(
                    r#"{{{mode_attrs}, "coordinate_transformation_mode": "{coord_name}"}}"#
                );
                let mut args = vec![OrtArg::Feed(t), OrtArg::Absent];
                let mut ins = vec![Arg::Input((*t).clone()), Arg::Absent];
                match (scales, sizes) {
                    (Some(s), _) => {
                        let s = Tensor::f32(vec![s.len()], s.clone());
                        args.push(OrtArg::Init(s.clone()));
                        ins.push(Arg::Const(s));
                    }
                    (_, Some(s)) => {
                        let s = Tensor::i64(vec![s.len()], s.iter().map(|&d| d as i64).collect());
                        args.extend([OrtArg::Absent, OrtArg::Init(s.clone())]);
                        ins.extend([Arg::Absent, Arg::Const(s)]);
                    }
                    _ => unreachable!("each target sets one"),
                }
                cases.push((
                    Op::Resize(attrs),
                    ins,
                    case("Resize", 19, &ort_attrs, args, 1),
                ));
            }
        }
    }
    compare("resize", cases);
}

#[test]
fn broadcasting_arithmetic_matches_onnxruntime() {
    let mut rng = Rng::new(11);
    let pairs: [(&[usize], &[usize]); 7] = [
        (&[2, 3, 4, 5], &[2, 3, 4, 5]),
        (&[2, 3, 4, 5], &[3, 1, 1]),
        (&[2, 1, 4, 1], &[3, 1, 5]),
        (&[], &[2, 3]),
        (&[2, 3], &[1]),
        (&[2, 3, 1], &[1, 1, 4]),
        (&[1, 6, 1, 1], &[2, 6, 3, 3]),
    ];
    let ops = [
        (BinaryOp::Add, "Add"),
        (BinaryOp::Sub, "Sub"),
        (BinaryOp::Mul, "Mul"),
        (BinaryOp::Div, "Div"),
    ];
    let data: Vec<(Tensor, Tensor)> = pairs
        .iter()
        .map(|(a, b)| {
            let mut bt = rng.tensor(b);
            if let temblor_runtime::TensorData::F32(v) = &mut bt.data {
                v.iter_mut().for_each(|e| *e = e.abs() + 0.5);
            }
            (rng.tensor(a), bt)
        })
        .collect();
    let mut cases = Vec::new();
    for &(op, name) in &ops {
        for (a, b) in &data {
            let args = vec![Arg::Input(a.clone()), Arg::Const(b.clone())];
            cases.push((
                Op::Binary(op),
                args,
                case(
                    name,
                    14,
                    "{}",
                    vec![OrtArg::Feed(a), OrtArg::Init(b.clone())],
                    1,
                ),
            ));
        }
    }
    compare("binary", cases);
}

#[test]
fn pointwise_norm_and_pool_match_onnxruntime() {
    let mut rng = Rng::new(12);
    let x = rng.tensor(&[2, 3, 5, 7]);
    let mut wide = rng.tensor(&[2, 3, 5, 7]);
    if let temblor_runtime::TensorData::F32(v) = &mut wide.data {
        v.iter_mut().for_each(|e| *e *= 12.0);
    }
    let scale = rng.tensor(&[3]);
    let bias = rng.tensor(&[3]);
    let mean = rng.tensor(&[3]);
    let mut var = rng.tensor(&[3]);
    if let temblor_runtime::TensorData::F32(v) = &mut var.data {
        v.iter_mut().for_each(|e| *e = e.abs() + 0.1);
    }
    let scalar = |v: f32| Tensor::f32(vec![], vec![v]);
    let bn_args = || [&scale, &bias, &mean, &var].map(|t| Arg::Const(t.clone()));
    let bn_ort = || [&scale, &bias, &mean, &var].map(|t| OrtArg::Init(t.clone()));
    let mut bn_temblor = vec![Arg::Input(x.clone())];
    bn_temblor.extend(bn_args());
    let mut bn_onnx = vec![OrtArg::Feed(&x)];
    bn_onnx.extend(bn_ort());
    let cases = vec![
        (
            Op::BatchNorm { epsilon: 1e-3 },
            bn_temblor,
            case(
                "BatchNormalization",
                15,
                r#"{"epsilon": 0.001}"#,
                bn_onnx,
                1,
            ),
        ),
        (
            Op::Unary(UnaryOp::Relu),
            vec![Arg::Input(x.clone())],
            case("Relu", 14, "{}", vec![OrtArg::Feed(&x)], 1),
        ),
        (
            Op::Unary(UnaryOp::Sigmoid),
            vec![Arg::Input(wide.clone())],
            case("Sigmoid", 13, "{}", vec![OrtArg::Feed(&wide)], 1),
        ),
        (
            Op::Unary(UnaryOp::Identity),
            vec![Arg::Input(x.clone())],
            case("Identity", 16, "{}", vec![OrtArg::Feed(&x)], 1),
        ),
        (
            Op::HardSigmoid {
                alpha: 0.25,
                beta: 0.4,
            },
            vec![Arg::Input(wide.clone())],
            case(
                "HardSigmoid",
                6,
                r#"{"alpha": 0.25, "beta": 0.4}"#,
                vec![OrtArg::Feed(&wide)],
                1,
            ),
        ),
        (
            Op::Clip {
                min: -0.3,
                max: 0.6,
            },
            vec![Arg::Input(x.clone())],
            case(
                "Clip",
                13,
                "{}",
                vec![
                    OrtArg::Feed(&x),
                    OrtArg::Init(scalar(-0.3)),
                    OrtArg::Init(scalar(0.6)),
                ],
                1,
            ),
        ),
        (
            Op::Clip {
                min: f32::NEG_INFINITY,
                max: 6.0,
            },
            vec![Arg::Input(wide.clone())],
            case(
                "Clip",
                13,
                "{}",
                vec![
                    OrtArg::Feed(&wide),
                    OrtArg::Absent,
                    OrtArg::Init(scalar(6.0)),
                ],
                1,
            ),
        ),
        (
            Op::GlobalAveragePool,
            vec![Arg::Input(x.clone())],
            case("GlobalAveragePool", 1, "{}", vec![OrtArg::Feed(&x)], 1),
        ),
    ];
    compare("pointwise", cases);
}

#[test]
fn shape_ops_match_onnxruntime() {
    let mut rng = Rng::new(13);
    let x = rng.tensor(&[2, 3, 4, 5]);
    let y = rng.tensor(&[2, 1, 4, 5]);
    let z = rng.tensor(&[2, 2, 4, 5]);
    let shape = |d: &[i64]| Tensor::i64(vec![d.len()], d.to_vec());
    let mut cases = Vec::new();
    for axis in [1i64, -3] {
        cases.push((
            Op::Concat { axis },
            vec![
                Arg::Input(x.clone()),
                Arg::Input(y.clone()),
                Arg::Const(z.clone()),
            ],
            case(
                "Concat",
                13,
                &format!(r#"{{"axis": {axis}}}"#),
                vec![OrtArg::Feed(&x), OrtArg::Feed(&y), OrtArg::Init(z.clone())],
                1,
            ),
        ));
    }
    let wide = rng.tensor(&[2, 3, 4, 1]);
    cases.push((
        Op::Concat { axis: -1 },
        vec![Arg::Input(x.clone()), Arg::Input(wide.clone())],
        case(
            "Concat",
            13,
            r#"{"axis": -1}"#,
            vec![OrtArg::Feed(&x), OrtArg::Feed(&wide)],
            1,
        ),
    ));
    for target in [&[0, -1, 5][..], &[6, 20], &[-1], &[2, 0, 2, 2, 5]] {
        cases.push((
            Op::Reshape { allowzero: false },
            vec![Arg::Input(x.clone()), Arg::Const(shape(target))],
            case(
                "Reshape",
                14,
                "{}",
                vec![OrtArg::Feed(&x), OrtArg::Init(shape(target))],
                1,
            ),
        ));
    }
    for perm in [vec![0usize, 2, 3, 1], vec![3, 1, 0, 2], vec![]] {
        let attrs = if perm.is_empty() {
            "{}".to_string()
        } else {
            format!(r#"{{"perm": {perm:?}}}"#)
        };
        cases.push((
            Op::Transpose { perm },
            vec![Arg::Input(x.clone())],
            case("Transpose", 13, &attrs, vec![OrtArg::Feed(&x)], 1),
        ));
    }
    for (axis, sizes) in [(1i64, vec![1usize, 2]), (-1, vec![2, 1, 2]), (0, vec![2])] {
        let split = Tensor::i64(vec![sizes.len()], sizes.iter().map(|&s| s as i64).collect());
        let n = sizes.len();
        cases.push((
            Op::Split {
                axis,
                sizes: SplitSizes::Explicit(sizes),
            },
            vec![Arg::Input(x.clone())],
            case(
                "Split",
                18,
                &format!(r#"{{"axis": {axis}}}"#),
                vec![OrtArg::Feed(&x), OrtArg::Init(split)],
                n,
            ),
        ));
    }
    // An equal split (no sizes given) is resolved from the run-time extent.
    for (axis, parts) in [(1i64, 3usize), (-1, 1)] {
        cases.push((
            Op::Split {
                axis,
                sizes: SplitSizes::Equal(parts),
            },
            vec![Arg::Input(x.clone())],
            case(
                "Split",
                13,
                &format!(r#"{{"axis": {axis}}}"#),
                vec![OrtArg::Feed(&x)],
                parts,
            ),
        ));
    }
    compare("shape_ops", cases);
}
