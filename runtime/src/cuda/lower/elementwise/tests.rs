//! The elementwise lowerings' parameters against the kernel headers and hand-worked cases, and
//! what they leave to the host.

use super::super::{Launch, Operand};
use super::*;

fn operand(dtype: DType, shape: &[usize]) -> Operand<'_> {
    Operand {
        dtype,
        shape,
        known: None,
    }
}

fn only_launch(l: Lowering) -> Launch {
    match l {
        Lowering::Work(mut w) if w.len() == 1 => match w.remove(0) {
            Work::Launch(l) => l,
            other => panic!("not a launch: {other:?}"),
        },
        other => panic!("not one launch: {other:?}"),
    }
}

/// The element each operand's strides reach from each output index is the one numpy's
/// broadcasting picks: the output index with the stretched axes set to 0, flattened in the
/// operand's own shape.
#[test]
fn broadcast_strides_reach_the_numpy_element() {
    let (a, b) = ([2usize, 1, 4], [3usize, 1]);
    let p = broadcast(&a, &b).unwrap();
    assert_eq!((p.rank, &p.extent[..3]), (3, &[2i64, 3, 4][..]));
    let flat = |shape: &[usize], index: &[usize]| {
        let skip = index.len() - shape.len();
        shape
            .iter()
            .zip(&index[skip..])
            .fold(0, |acc, (&d, &i)| acc * d + if d == 1 { 0 } else { i })
    };
    for i in 0..2 {
        for j in 0..3 {
            for k in 0..4 {
                let at = |s: &[i64]| i as i64 * s[0] + j as i64 * s[1] + k as i64 * s[2];
                assert_eq!(at(&p.a_stride) as usize, flat(&a, &[i, j, k]));
                assert_eq!(at(&p.b_stride) as usize, flat(&b, &[i, j, k]));
            }
        }
    }
    assert!(broadcast(&[2, 3], &[4, 3]).is_err());
    assert!(broadcast(&[1; 7], &[1]).is_err());
}

#[test]
fn a_comparison_writes_bool_through_its_own_kernel() {
    let (x, y) = ([2usize, 3], [3usize]);
    let mut cx = Cx::new(
        vec![Some(operand(DType::F32, &x)), Some(operand(DType::F32, &y))],
        vec![operand(DType::Bool, &x)],
    );
    let l = only_launch(binary(BinaryOp::Less, &mut cx).unwrap());
    assert_eq!(l.function, "runtime_compare");
    let Arg::Pod(bytes) = &l.args[3] else {
        panic!("no params")
    };
    // op 3 (RT_LESS), rank 2, extents [2, 3], a's strides [3, 1], b's [0, 1].
    let words: Vec<i64> = bytes
        .chunks(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(words[0], 3 | 2 << 32);
    assert_eq!(&words[1..3], &[2, 3]);
    assert_eq!(&words[7..9], &[3, 1]);
    assert_eq!(&words[13..15], &[0, 1]);
}

#[test]
fn inexact_and_non_f32_cases_stay_on_the_cpu() {
    let s = [4usize];
    let f32s = || {
        Cx::new(
            vec![Some(operand(DType::F32, &s))],
            vec![operand(DType::F32, &s)],
        )
    };
    assert!(unary(UnaryOp::Not, &mut f32s()).is_err());
    assert!(binary(BinaryOp::Mod, &mut f32s()).is_err());
    // The CPU raises an f32 base to an integer exponent through f64 too, but the kernel reads
    // the exponent as f32.
    let mut int_exponent = Cx::new(
        vec![
            Some(operand(DType::F32, &s)),
            Some(operand(DType::I64, &[])),
        ],
        vec![operand(DType::F32, &s)],
    );
    assert!(binary(BinaryOp::Pow, &mut int_exponent).is_err());
    let mut f16_mish = Cx::new(
        vec![Some(operand(DType::F16, &s))],
        vec![operand(DType::F16, &s)],
    );
    assert!(unary(UnaryOp::Mish, &mut f16_mish).is_err());
    let mut ints = Cx::new(
        vec![Some(operand(DType::I64, &s)), Some(operand(DType::I64, &s))],
        vec![operand(DType::I64, &s)],
    );
    assert!(binary(BinaryOp::Add, &mut ints).is_err());
    let mut relu = Cx::new(
        vec![Some(operand(DType::I32, &s))],
        vec![operand(DType::I32, &s)],
    );
    assert!(unary(UnaryOp::Relu, &mut relu).is_err());
    for (from, to) in [
        (DType::F64, DType::F16),
        (DType::I32, DType::BF16),
        (DType::BF16, DType::F64),
    ] {
        let mut cx = Cx::new(vec![Some(operand(from, &s))], vec![operand(to, &s)]);
        assert!(cast(to, &mut cx).is_err(), "{from} to {to}");
    }
}

/// The value of `name` in a C enum of `header`, read from its `NAME = value,` line.
fn enum_value(header: &str, name: &str) -> i32 {
    let text = crate::cuda::sources::HEADERS
        .iter()
        .find(|h| h.name == header)
        .unwrap()
        .text;
    let line = text
        .lines()
        .find(|l| l.trim().starts_with(&format!("{name} =")))
        .unwrap_or_else(|| panic!("{name} is not in {header}"));
    line.split('=')
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap()
}

/// The functions the CPU computes with libm launch with the codes activation.cuh gives them:
/// the unary ones through `runtime_unary`, Mish through `runtime_activation` (the kind a
/// convolution's fused epilogue takes too).
#[test]
fn libm_functions_pass_the_header_codes() {
    let s = [3usize, 7];
    let f32s = || {
        Cx::new(
            vec![Some(operand(DType::F32, &s))],
            vec![operand(DType::F32, &s)],
        )
    };
    for (u, name) in [
        (UnaryOp::Exp, "RT_UNARY_EXP"),
        (UnaryOp::Log, "RT_UNARY_LOG"),
        (UnaryOp::Sin, "RT_UNARY_SIN"),
        (UnaryOp::Cos, "RT_UNARY_COS"),
        (UnaryOp::Softplus, "RT_UNARY_SOFTPLUS"),
    ] {
        let l = only_launch(unary(u, &mut f32s()).unwrap());
        assert_eq!(l.function, "runtime_unary", "{u:?}");
        assert_eq!(l.args[1], Arg::I64(21), "{u:?}");
        assert_eq!(
            l.args[2],
            Arg::I32(enum_value("activation.cuh", name)),
            "{u:?}"
        );
    }
    let l = only_launch(unary(UnaryOp::Mish, &mut f32s()).unwrap());
    assert_eq!(l.function, "runtime_activation");
    let want = ActivationParams {
        kind: enum_value("activation.cuh", "RT_MISH"),
        alpha: 0.0,
        beta: 0.0,
    };
    assert_eq!(l.args[2], Arg::Pod(params::bytes(&want)));
    assert_eq!(kind::MISH, want.kind);
}

/// PP-YOLO's Pow: a [2, 3] base and a scalar f32 exponent, the exponent read at offset 0
/// for every element.
#[test]
fn pow_broadcasts_a_scalar_exponent() {
    let (x, e) = ([2usize, 3], []);
    let mut cx = Cx::new(
        vec![Some(operand(DType::F32, &x)), Some(operand(DType::F32, &e))],
        vec![operand(DType::F32, &x)],
    );
    let l = only_launch(binary(BinaryOp::Pow, &mut cx).unwrap());
    assert_eq!(l.function, "runtime_binary");
    let want = BinaryParams {
        op: enum_value("binary.cuh", "RT_POW"),
        rank: 2,
        extent: [2, 3, 0, 0, 0, 0],
        a_stride: [3, 1, 0, 0, 0, 0],
        b_stride: [0; MAX_RANK],
    };
    assert_eq!(l.args[3], Arg::Pod(params::bytes(&want)));
}

#[test]
fn functions_pass_their_codes_and_attributes() {
    let s = [5usize];
    let mut cx = Cx::new(
        vec![Some(operand(DType::F32, &s))],
        vec![operand(DType::F32, &s)],
    );
    let l = only_launch(unary(UnaryOp::Round, &mut cx).unwrap());
    assert_eq!((l.function, &l.args[2]), ("runtime_unary", &Arg::I32(6)));
    let l = only_launch(clip(f32::MIN, 6.0, &mut cx).unwrap());
    let want = ActivationParams {
        kind: kind::CLIP,
        alpha: f32::MIN,
        beta: 6.0,
    };
    assert_eq!(l.args[2], Arg::Pod(params::bytes(&want)));
    let mut cast_cx = Cx::new(
        vec![Some(operand(DType::I64, &s))],
        vec![operand(DType::F32, &s)],
    );
    let l = only_launch(cast(DType::F32, &mut cast_cx).unwrap());
    assert_eq!(
        l.args[2],
        Arg::Pod(params::bytes(&CastParams { from: 10, to: 0 }))
    );
    assert_eq!(
        unary(UnaryOp::Identity, &mut cx),
        Ok(Lowering::Alias { input: 0 })
    );
}
