//! The MatMul and Gemm lowerings' work, run by the small interpreter of `machine.rs` against
//! numpy's and ONNX's definitions written out here.

use super::super::{Arg, Launch, Operand};
use super::machine::Machine;
use super::*;
use temblor_ir::DType;

fn operand(shape: &[usize]) -> Operand<'_> {
    Operand {
        dtype: DType::F32,
        shape,
        known: None,
    }
}

fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7 + seed * 13) % 17) as f32 * 0.25 - 2.0)
        .collect()
}

/// `runtime_gemm_c` as conv.cuh computes it.
fn gemm_c(l: &Launch, mx: &mut Machine) {
    assert_eq!(l.function, "runtime_gemm_c");
    let a = &l.args;
    let (&Arg::Ptr(c), &Arg::F32(beta), &Arg::Ptr(out)) = (&a[0], &a[5], &a[6]) else {
        panic!("{a:?}")
    };
    let [n, cols, rs, cs] = [1, 2, 3, 4].map(|i| match a[i] {
        Arg::I64(v) => v as usize,
        _ => panic!("{a:?}"),
    });
    let src = mx.rest(c).to_vec();
    let v: Vec<f32> = (0..n)
        .map(|e| beta * src[e / cols * rs + e % cols * cs])
        .collect();
    mx.write(out, &v);
}

type Shapes = (&'static [usize], &'static [usize], &'static [usize], usize);
type GemmCase = (&'static [usize], [usize; 2], bool, bool, f32);

/// numpy's matmul of `a` and `b`, by index arithmetic of its own.
fn reference(a: &[f32], sa: &[usize], b: &[f32], sb: &[usize]) -> Vec<f32> {
    let a2: Vec<usize> = if sa.len() == 1 {
        vec![1, sa[0]]
    } else {
        sa.to_vec()
    };
    let b2: Vec<usize> = if sb.len() == 1 {
        vec![sb[0], 1]
    } else {
        sb.to_vec()
    };
    let (m, k, n) = (a2[a2.len() - 2], a2[a2.len() - 1], b2[b2.len() - 1]);
    let batch = broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2]).unwrap();
    let count: usize = batch.iter().product();
    let entry = |shape: &[usize], t: usize| {
        // The operand's entry for flat batch index `t`, broadcast axes read at 0.
        let own = &shape[..shape.len() - 2];
        let (mut rest, mut flat, mut scale) = (t, 0, 1);
        for (i, &extent) in batch.iter().enumerate().rev() {
            let idx = rest % extent;
            rest /= extent;
            if let Some(j) = (i + own.len()).checked_sub(batch.len()) {
                flat += if own[j] == 1 { 0 } else { idx * scale };
                scale *= own[j];
            }
        }
        flat
    };
    let mut out = Vec::new();
    for t in 0..count {
        let (ea, eb) = (entry(&a2, t), entry(&b2, t));
        for r in 0..m {
            for c in 0..n {
                let dot = (0..k).map(|p| a[(ea * m + r) * k + p] * b[(eb * k + p) * n + c]);
                out.push(dot.sum());
            }
        }
    }
    out
}

fn run_matmul(sa: &[usize], sb: &[usize], so: &[usize]) -> (Vec<Work>, Vec<f32>, Vec<f32>) {
    let mut cx = Cx::new(
        vec![Some(operand(sa)), Some(operand(sb))],
        vec![operand(so)],
    );
    let Lowering::Work(work) = matmul(&mut cx).unwrap() else {
        panic!()
    };
    let a = values(sa.iter().product(), 1);
    let b = values(sb.iter().product(), 2);
    let mut mx = Machine::new(&[&a, &b], &cx);
    mx.run(&work, |l, _| panic!("no kernel expected: {l:?}"));
    (
        work,
        mx.bufs[&Buf::Output(0)].clone(),
        reference(&a, sa, &b, sb),
    )
}

fn close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{i}: {g} vs {w}");
    }
}

#[test]
fn matmul_batches_broadcast_axes_as_strides_and_loops() {
    // (A, B, output, GEMMs)
    let cases: [Shapes; 7] = [
        (&[3, 4], &[4, 5], &[3, 5], 1),
        (&[4], &[4, 5], &[5], 1),
        (&[2, 3, 4], &[4], &[2, 3], 1),
        // B shared by every entry: one product of all of A's rows.
        (&[2, 3, 3, 4], &[4, 5], &[2, 3, 3, 5], 1),
        // A shared: stride 0 for A.
        (&[1, 3, 4], &[2, 4, 5], &[2, 3, 5], 1),
        // A broadcast on the inner batch axis, B on the outer: a product per outer index.
        (&[2, 1, 3, 4], &[3, 4, 5], &[2, 3, 3, 5], 2),
        (&[2, 1, 3, 4], &[1, 3, 4, 5], &[2, 3, 3, 5], 2),
    ];
    for (sa, sb, so, gemms) in cases {
        let (work, got, want) = run_matmul(sa, sb, so);
        assert_eq!(work.len(), gemms, "{sa:?} x {sb:?}");
        close(&got, &want);
    }
}

#[test]
fn matmul_of_shared_b_is_one_tall_product() {
    let (work, _, _) = run_matmul(&[2, 3, 4], &[4, 5], &[2, 3, 5]);
    let [Work::Gemm(g)] = &work[..] else { panic!() };
    assert_eq!((g.m, g.n, g.k, g.batch), (6, 5, 4, 1));
}

#[test]
fn matmul_of_inner_dimensions_that_differ_is_unsupported() {
    let (sa, sb, so) = ([3, 4], [5, 2], [3, 2]);
    let mut cx = Cx::new(
        vec![Some(operand(&sa)), Some(operand(&sb))],
        vec![operand(&so)],
    );
    assert!(matmul(&mut cx).is_err());
    let ints = Operand {
        dtype: DType::I64,
        ..operand(&sa)
    };
    let mut cx = Cx::new(vec![Some(ints), Some(operand(&[4, 2]))], vec![operand(&so)]);
    assert!(matmul(&mut cx).is_err());
}

/// ONNX Gemm of `a` `[ar, ac]` and `b`, directly.
fn gemm_reference(
    (a, [ar, ac]): (&[f32], [usize; 2]),
    (b, bc): (&[f32], usize),
    c: Option<(&[f32], [usize; 2])>,
    (alpha, beta): (f32, f32),
    (ta, tb): (bool, bool),
    [m, n]: [usize; 2],
) -> Vec<f32> {
    let k = if ta { ar } else { ac };
    let mut out = Vec::new();
    for r in 0..m {
        for col in 0..n {
            let x = |p: usize| if ta { a[p * ac + r] } else { a[r * ac + p] };
            let y = |p: usize| if tb { b[col * bc + p] } else { b[p * bc + col] };
            let dot: f32 = (0..k).map(|p| x(p) * y(p)).sum();
            let cv = c.map_or(0.0, |(c, [cr, cc])| c[(r % cr) * cc + col % cc]);
            out.push(alpha * dot + beta * cv);
        }
    }
    out
}

#[test]
fn gemm_broadcasts_and_scales_c_before_the_product() {
    // (C, C as 2-D, trans_a, trans_b, beta)
    let cases: [GemmCase; 6] = [
        (&[5], [1, 5], false, false, 0.5),
        (&[1, 5], [1, 5], true, false, 1.0),
        (&[3, 1], [3, 1], false, true, 2.0),
        (&[], [1, 1], true, true, 1.0),
        (&[3, 5], [3, 5], false, false, 1.0),
        (&[3, 5], [3, 5], false, false, -1.5),
    ];
    for (c_shape, c2, ta, tb, beta) in cases {
        let (m, n, k) = (3, 5, 4);
        let sa = if ta { [k, m] } else { [m, k] };
        let sb = if tb { [n, k] } else { [k, n] };
        let inputs = vec![
            Some(operand(&sa)),
            Some(operand(&sb)),
            Some(operand(c_shape)),
        ];
        let so = [m, n];
        let mut cx = Cx::new(inputs, vec![operand(&so)]);
        let Lowering::Work(work) = gemm(0.75, beta, ta, tb, &mut cx).unwrap() else {
            panic!()
        };
        let copies = work
            .iter()
            .filter(|w| matches!(w, Work::Copy { .. }))
            .count();
        assert_eq!(copies, usize::from(c_shape == [3, 5] && beta == 1.0));
        let (a, b) = (values(m * k, 3), values(k * n, 4));
        let c = values(c2[0] * c2[1], 5);
        let mut mx = Machine::new(&[&a, &b, &c], &cx);
        mx.run(&work, gemm_c);
        let want = gemm_reference(
            (&a, sa),
            (&b, sb[1]),
            Some((&c, c2)),
            (0.75, beta),
            (ta, tb),
            [m, n],
        );
        close(&mx.bufs[&Buf::Output(0)], &want);
    }
}

#[test]
fn gemm_without_c_or_with_beta_0_is_the_product_alone() {
    let (sa, sb, sc, so) = ([3, 4], [4, 5], [5], [3, 5]);
    let ins = vec![Some(operand(&sa)), Some(operand(&sb)), Some(operand(&sc))];
    let mut cx = Cx::new(ins, vec![operand(&so)]);
    let Lowering::Work(work) = gemm(1.0, 0.0, false, false, &mut cx).unwrap() else {
        panic!()
    };
    let [Work::Gemm(g)] = &work[..] else { panic!() };
    assert_eq!((g.m, g.n, g.k, g.beta), (3, 5, 4, 0.0));
    let ins = vec![
        Some(operand(&sa)),
        Some(operand(&sb)),
        Some(operand(&[2, 5])),
    ];
    let mut cx = Cx::new(ins, vec![operand(&so)]);
    let err = gemm(1.0, 1.0, false, false, &mut cx).unwrap_err();
    assert!(err.0.contains("does not broadcast"), "{err:?}");
}

/// An f16 MatMul broadcasting B on the outer axis: a product per outer index, reading f16
/// A and B (2-byte steps) into f32 scratch (4-byte steps), then one cast into the output.
#[test]
fn an_f16_matmul_sums_halves_into_f32_scratch_then_narrows() {
    let half = |shape| Operand {
        dtype: DType::F16,
        ..operand(shape)
    };
    let (sa, sb, so) = ([2, 3, 5, 7], [3, 7, 4], [2, 3, 5, 4]);
    let mut cx = Cx::new(vec![Some(half(&sa)), Some(half(&sb))], vec![half(&so)]);
    let Lowering::Work(work) = matmul_half(&mut cx).unwrap() else {
        panic!()
    };
    assert_eq!(cx.scratch, [120 * 4]);
    for (entry, w) in work[..2].iter().enumerate() {
        let Work::Gemm(g) = w else { panic!("{w:?}") };
        assert_eq!(
            (g.inputs, g.m, g.n, g.k, g.batch),
            (GemmInputs::F16, 5, 4, 7, 3)
        );
        assert_eq!((g.a.bytes, g.stride_a), (entry * 3 * 35 * 2, 35));
        assert_eq!((g.b, g.stride_b), (Buf::Input(1).at(), 28));
        assert_eq!(
            (g.c, g.stride_c),
            (Buf::Scratch(0).offset(entry * 60 * 4), 20)
        );
    }
    let [Work::Launch(narrow)] = &work[2..] else {
        panic!("{work:?}")
    };
    assert_eq!(narrow.function, "runtime_cast");
    assert_eq!(narrow.args[0], Arg::Ptr(Buf::Scratch(0).at()));
    assert_eq!(narrow.args[1], Arg::I64(120));
    assert_eq!(narrow.args[3], Arg::Ptr(Buf::Output(0).at()));
    let bf16 = Operand {
        dtype: DType::BF16,
        ..operand(&sa)
    };
    let mut cx = Cx::new(vec![Some(bf16), Some(half(&sb))], vec![half(&so)]);
    assert!(matmul_half(&mut cx).unwrap_err().0.contains("BF16"));
}
