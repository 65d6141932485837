//! The f16 convolution lowering: f16 columns and GEMMs summing in f32, and which convolutions
//! skip the widening.

use super::*;

fn halves<'a>(shape: &'a [usize], known: Option<&'a Tensor>) -> Operand<'a> {
    Operand {
        dtype: DType::F16,
        ..f32s(shape, known)
    }
}

fn f16_tensor(shape: &[usize], seed: usize) -> Tensor {
    let v = values(shape.iter().product(), seed);
    Tensor {
        shape: shape.to_vec(),
        data: crate::TensorData::F16(v.into_iter().map(crate::f16::from_f32).collect()),
    }
}

/// A grouped f16 Conv with a known bias and a computed residual: the residual cast to f32, f16
/// columns, one f16 GEMM per image (2-byte steps through the columns, 4-byte ones through the
/// f32 sums), the f32 epilogue on the sums with the bias widened once, then one narrowing cast.
#[test]
fn an_f16_conv_multiplies_halves_into_f32_sums() {
    let (xs, ws, os) = ([2, 4, 6, 6], [8, 2, 3, 3], [2, 8, 6, 6]);
    let (weight, bias) = (f16_tensor(&ws, 1), f16_tensor(&[8], 2));
    let ins = vec![
        Some(halves(&xs, None)),
        Some(halves(&ws, Some(&weight))),
        Some(halves(&ws[..1], Some(&bias))),
        Some(halves(&os, None)),
    ];
    let mut cx = Cx::new(ins, vec![halves(&os, None)]);
    let a = ConvAttrs {
        activation: Some(Activation::Relu),
        ..attrs([3, 3], [1, 1], [1, 1], [1; 4], 2)
    };
    let Lowering::Work(work) = conv_half(&a, &mut cx).unwrap() else {
        panic!()
    };
    // Per image 4 channels · 9 taps · 36 positions of columns.
    let (per_image, total) = (4 * 9 * 36, 2 * 8 * 36);
    assert_eq!(cx.scratch, [total * 4, total * 4, 2 * per_image * 2]);
    let widened: Vec<f32> = values(8, 2)
        .iter()
        .map(|&v| crate::f16::from_f32(v).to_f32())
        .collect();
    assert_eq!(cx.derived[0].as_f32(), Some(widened.as_slice()));
    let launch = |i: usize| match &work[i] {
        Work::Launch(l) => l,
        other => panic!("{other:?}"),
    };
    let (widen, im2col) = (launch(0), launch(1));
    assert_eq!(widen.function, "runtime_cast");
    assert_eq!(widen.args[0], Arg::Ptr(Buf::Input(3).at()));
    assert_eq!(widen.args[3], Arg::Ptr(Buf::Scratch(0).at()));
    assert_eq!(im2col.function, "runtime_im2col_2");
    assert_eq!(count(&im2col.args[1]), 2 * per_image);
    for image in 0..2 {
        let Work::Gemm(g) = &work[2 + image] else {
            panic!("{work:?}")
        };
        assert_eq!(
            (g.inputs, g.m, g.n, g.k, g.batch),
            (GemmInputs::F16, 4, 36, 18, 2)
        );
        assert_eq!((g.a, g.stride_a), (Buf::Input(1).at(), 4 * 18));
        assert_eq!(
            (g.b, g.stride_b),
            (Buf::Scratch(2).offset(image * per_image * 2), 18 * 36)
        );
        assert_eq!(
            (g.c, g.stride_c),
            (Buf::Scratch(1).offset(image * 8 * 36 * 4), 4 * 36)
        );
    }
    let (finish, narrow) = (launch(4), launch(5));
    assert_eq!(finish.function, "runtime_conv_epilogue");
    let operands: Vec<Option<At>> = finish.args[..3].iter().map(ptr).collect();
    let want = [Buf::Scratch(1), Buf::Derived(0), Buf::Scratch(0)].map(|b| Some(b.at()));
    assert_eq!(operands, want);
    assert_eq!(narrow.function, "runtime_cast");
    assert_eq!(narrow.args[0], Arg::Ptr(Buf::Scratch(1).at()));
    assert_eq!(narrow.args[3], Arg::Ptr(Buf::Output(0).at()));
    assert_eq!(work.len(), 6);
}

/// `lower` puts f16 Convs on f16 GEMMs, and leaves depthwise f16 and bf16 ones to the
/// widening: casts around the f32 lowering, whose GEMMs read f32.
#[test]
fn only_non_depthwise_f16_convs_skip_the_widening() {
    let op = |group| Op::Conv(attrs([3, 3], [1, 1], [1, 1], [1; 4], group));
    let gemm_inputs = |work: &[Work]| -> Vec<GemmInputs> {
        work.iter()
            .filter_map(|w| match w {
                Work::Gemm(g) => Some(g.inputs),
                _ => None,
            })
            .collect()
    };
    let (xs, os) = ([1, 4, 5, 5], [1, 4, 5, 5]);
    for (dtype, ws, group, direct) in [
        (DType::F16, [4, 4, 3, 3], 1, true),
        (DType::F16, [4, 1, 3, 3], 4, false),
        (DType::BF16, [4, 4, 3, 3], 1, false),
    ] {
        let weight = match dtype {
            DType::F16 => f16_tensor(&ws, 3),
            _ => Tensor {
                shape: ws.to_vec(),
                data: crate::TensorData::BF16(vec![crate::bf16::from_f32(0.5); 4 * ws[1] * 9]),
            },
        };
        let typed = |shape, known| Operand {
            dtype,
            ..f32s(shape, known)
        };
        let ins = vec![Some(typed(&xs, None)), Some(typed(&ws, Some(&weight)))];
        let mut cx = Cx::new(ins, vec![typed(&os, None)]);
        let Lowering::Work(work) = super::super::super::lower(&op(group), &mut cx).unwrap() else {
            panic!()
        };
        let first = match &work[0] {
            Work::Launch(l) => l.function,
            other => panic!("{other:?}"),
        };
        let inputs = gemm_inputs(&work);
        match direct {
            true => assert_eq!((first, inputs), ("runtime_im2col_2", vec![GemmInputs::F16])),
            false => {
                assert_eq!(first, "runtime_cast", "{dtype:?} group {group}");
                assert!(inputs.iter().all(|&i| i == GemmInputs::F32));
            }
        }
    }
}
