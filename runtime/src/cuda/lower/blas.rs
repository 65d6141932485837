//! MatMul and Gemm on the GPU as cuBLAS products ([`Gemm`], row-major), with the semantics of
//! runtime/src/cpu/linalg.rs:
//! - MatMul (numpy): a 1-D A is one row, a 1-D B one column, and the batch axes broadcast. The
//!   entries run as one strided batched product over the longest run of trailing batch axes
//!   along which each operand advances by a constant step (0 where it is broadcast), one such
//!   product per index of the axes before them; a B shared by every entry of a contiguous A is
//!   one taller product instead, as on the CPU.
//! - Gemm: `alpha·op(A)·op(B) + beta·C`. C, broadcast to `[m, n]` and multiplied by beta as the
//!   CPU does first (`runtime_gemm_c` in conv.cu, or a copy when there is nothing to do), is
//!   written into the output and the product accumulated onto it; without C, or with beta 0
//!   (where the CPU ignores C), the product alone.
//!
//! Every operand f32; GEMM sums in cuBLAS's order, within rounding of the CPU's.

use super::{grid_stride, Arg, At, Buf, Cx, Gemm, Lowering, Unsupported, Work};

/// A matrix operand of a [`Gemm`]: where entry 0 starts, its leading dimension, whether it is
/// stored transposed, and the step to the next batch entry, all in elements.
#[derive(Clone, Copy, Debug)]
pub(super) struct Matrix {
    pub at: At,
    pub ld: usize,
    pub transposed: bool,
    pub stride: usize,
}

impl Matrix {
    /// A matrix stored as it is read, row-major.
    pub fn rows(at: At, ld: usize, stride: usize) -> Matrix {
        Matrix {
            at,
            ld,
            transposed: false,
            stride,
        }
    }
}

/// `c[i] = alpha·op(a[i])·op(b[i]) + beta·c[i]` for `i < batch`, `op(a)` being `m x k`.
pub(super) fn product(
    [m, n, k]: [usize; 3],
    batch: usize,
    [a, b, c]: [Matrix; 3],
    (alpha, beta): (f32, f32),
) -> Gemm {
    Gemm {
        m,
        n,
        k,
        batch,
        a: a.at,
        a_transposed: a.transposed,
        lda: a.ld,
        stride_a: a.stride,
        b: b.at,
        b_transposed: b.transposed,
        ldb: b.ld,
        stride_b: b.stride,
        c: c.at,
        ldc: c.ld,
        stride_c: c.stride,
        alpha,
        beta,
    }
}

/// `out[i] = a[i]·b[i]` (numpy's matmul).
pub(super) fn matmul(cx: &mut Cx) -> Result<Lowering, Unsupported> {
    cx.all_f32()?;
    let (a, b) = (cx.input(0)?.shape, cx.input(1)?.shape);
    let (ra, rb) = (a.len(), b.len());
    if ra == 0 || rb == 0 {
        return Err(Unsupported::new("MatMul of a scalar"));
    }
    let (m, k) = if ra == 1 {
        (1, a[0])
    } else {
        (a[ra - 2], a[ra - 1])
    };
    let (kb, n) = if rb == 1 {
        (b[0], 1)
    } else {
        (b[rb - 2], b[rb - 1])
    };
    let (a_batch, b_batch) = (&a[..ra.saturating_sub(2)], &b[..rb.saturating_sub(2)]);
    let batch = broadcast(a_batch, b_batch)
        .filter(|_| k == kb)
        .ok_or_else(|| {
            Unsupported::new(format!(
                "MatMul of {a:?} and {b:?}, whose inner or batch axes disagree"
            ))
        })?;
    let mut shape = batch.clone();
    shape.extend((ra > 1).then_some(m));
    shape.extend((rb > 1).then_some(n));
    let out = cx.output(0);
    if out.shape != shape.as_slice() {
        return Err(Unsupported::new(format!(
            "MatMul output {:?}, expected {shape:?}",
            out.shape
        )));
    }
    if out.elements() == 0 {
        return Ok(Lowering::Work(Vec::new()));
    }
    if k == 0 {
        let zero = Work::Zero {
            to: Buf::Output(0).at(),
            bytes: out.bytes(),
        };
        return Ok(Lowering::Work(vec![zero]));
    }
    let a_steps = steps(a_batch, &batch, m * k);
    let b_steps = steps(b_batch, &batch, k * n);
    Ok(Lowering::Work(batched(
        [m, n, k],
        &batch,
        [&a_steps, &b_steps],
    )))
}

/// The products of a broadcast batch, as the module documentation says.
fn batched([m, n, k]: [usize; 3], batch: &[usize], [sa, sb]: [&[usize]; 2]) -> Vec<Work> {
    let both = |s: usize| {
        Some((
            uniform(&sa[s..], &batch[s..])?,
            uniform(&sb[s..], &batch[s..])?,
        ))
    };
    let (split, (stride_a, stride_b)) = (0..=batch.len())
        .find_map(|s| Some((s, both(s)?)))
        .expect("an empty run of axes is uniform");
    let inner: usize = batch[split..].iter().product();
    let outer: usize = batch[..split].iter().product();
    let matrix = |buf: Buf, offset: usize, ld: usize, stride: usize| {
        Matrix::rows(buf.offset(offset * 4), ld, stride)
    };
    if split == 0 && stride_b == 0 && stride_a == m * k && inner > 1 {
        let a = matrix(Buf::Input(0), 0, k, 0);
        let (b, c) = (
            matrix(Buf::Input(1), 0, n, 0),
            matrix(Buf::Output(0), 0, n, 0),
        );
        return vec![Work::Gemm(product(
            [m * inner, n, k],
            1,
            [a, b, c],
            (1.0, 0.0),
        ))];
    }
    let mut index = vec![0; split];
    let mut work = Vec::with_capacity(outer);
    for entry in 0..outer {
        let offset = |steps: &[usize]| index.iter().zip(steps).map(|(i, s)| i * s).sum();
        let a = matrix(Buf::Input(0), offset(sa), k, stride_a);
        let b = matrix(Buf::Input(1), offset(sb), n, stride_b);
        let c = matrix(Buf::Output(0), entry * inner * m * n, n, m * n);
        work.push(Work::Gemm(product([m, n, k], inner, [a, b, c], (1.0, 0.0))));
        for ax in (0..split).rev() {
            index[ax] += 1;
            if index[ax] < batch[ax] {
                break;
            }
            index[ax] = 0;
        }
    }
    work
}

/// numpy's broadcast of two batch shapes, or `None` when they do not broadcast.
fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], i: usize| (i + s.len()).checked_sub(rank).map_or(1, |j| s[j]);
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y || y == 1 => Some(x),
            (1, y) => Some(y),
            _ => None,
        })
        .collect()
}

/// The step, in elements, of an operand with batch axes `shape` (aligned right against `batch`)
/// and matrices of `plane` elements along each batch axis: 0 where it is broadcast.
fn steps(shape: &[usize], batch: &[usize], plane: usize) -> Vec<usize> {
    let lead = batch.len() - shape.len();
    let mut step = plane;
    let mut out = vec![0; batch.len()];
    for (j, &extent) in shape.iter().enumerate().rev() {
        if extent != 1 {
            out[lead + j] = step;
        }
        step *= extent;
    }
    out
}

/// The constant step between consecutive entries of the flattened `batch` of an operand with
/// per-axis `steps`, when it has one.
fn uniform(steps: &[usize], batch: &[usize]) -> Option<usize> {
    let mut stride = None;
    let mut inner = 1;
    for (&step, &extent) in steps.iter().zip(batch).rev() {
        if extent > 1 {
            let s = *stride.get_or_insert(step);
            if step != s * inner {
                return None;
            }
        }
        inner *= extent;
    }
    Some(stride.unwrap_or(0))
}

/// ONNX Gemm: `alpha·op(A)·op(B) + beta·C`.
pub(super) fn gemm(
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
    cx: &mut Cx,
) -> Result<Lowering, Unsupported> {
    cx.all_f32()?;
    let (a, b) = (cx.input(0)?.shape, cx.input(1)?.shape);
    let (&[ar, ac], &[br, bc]) = (a, b) else {
        return Err(Unsupported::new(format!(
            "Gemm of {a:?} and {b:?}, not 2-D"
        )));
    };
    let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if trans_b { (bc, br) } else { (br, bc) };
    let out = cx.output(0);
    if k != kb || out.shape != [m, n] {
        return Err(Unsupported::new(format!(
            "Gemm of {a:?} and {b:?} into {:?}",
            out.shape
        )));
    }
    if m * n == 0 {
        return Ok(Lowering::Work(Vec::new()));
    }
    let mut work = Vec::new();
    let c = cx.optional(2).filter(|_| beta != 0.0);
    if let Some(c) = c {
        let (row_stride, column_stride) = c_strides(c.shape, m, n)?;
        if c.elements() == m * n && beta == 1.0 {
            work.push(Work::Copy {
                from: Buf::Input(2).at(),
                to: Buf::Output(0).at(),
                bytes: out.bytes(),
            });
        } else {
            let args = vec![
                Arg::Ptr(Buf::Input(2).at()),
                Arg::I64((m * n) as i64),
                Arg::I64(n as i64),
                Arg::I64(row_stride as i64),
                Arg::I64(column_stride as i64),
                Arg::F32(beta),
                Arg::Ptr(Buf::Output(0).at()),
            ];
            work.push(Work::Launch(grid_stride("runtime_gemm_c", m * n, args)));
        }
    }
    if k == 0 {
        if c.is_none() {
            work.push(Work::Zero {
                to: Buf::Output(0).at(),
                bytes: out.bytes(),
            });
        }
        return Ok(Lowering::Work(work));
    }
    let mut a = Matrix::rows(Buf::Input(0).at(), ac, 0);
    a.transposed = trans_a;
    let mut b = Matrix::rows(Buf::Input(1).at(), bc, 0);
    b.transposed = trans_b;
    let c_matrix = Matrix::rows(Buf::Output(0).at(), n, 0);
    let accumulate = if c.is_some() { 1.0 } else { 0.0 };
    let gemm = product([m, n, k], 1, [a, b, c_matrix], (alpha, accumulate));
    work.push(Work::Gemm(gemm));
    Ok(Lowering::Work(work))
}

/// The row and column steps of Gemm's C as it broadcasts to `[m, n]` (ONNX's unidirectional
/// broadcast: rank at most 2, each axis 1 or the output's).
fn c_strides(shape: &[usize], m: usize, n: usize) -> Result<(usize, usize), Unsupported> {
    let (r, c) = match *shape {
        [] => (1, 1),
        [c] => (1, c),
        [r, c] => (r, c),
        _ => (0, 0),
    };
    if !(r == 1 || r == m) || !(c == 1 || c == n) {
        return Err(Unsupported::new(format!(
            "Gemm's C {shape:?} does not broadcast to [{m}, {n}]"
        )));
    }
    Ok((if r == 1 { 0 } else { c }, usize::from(c != 1)))
}

#[cfg(test)]
pub(super) mod machine;

#[cfg(test)]
mod tests {
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
}
