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
//! Every operand f32; GEMM sums in cuBLAS's order, within rounding of the CPU's. An f16 MatMul
//! ([`matmul_half`]) is the same products on f16 operands, summing in f32 into f32 scratch (a
//! product of halves is exact in f32, as on the CPU, which widens them), then cast to f16.

use super::half;
use super::{grid_stride, Arg, At, Buf, Cx, Gemm, GemmInputs, Lowering, Unsupported, Work};
use temblor_ir::DType;

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
        inputs: GemmInputs::F32,
    }
}

/// `out[i] = a[i]·b[i]` (numpy's matmul).
pub(super) fn matmul(cx: &mut Cx) -> Result<Lowering, Unsupported> {
    cx.all_f32()?;
    matmul_of(GemmInputs::F32, Buf::Output(0), cx)
}

/// An f16 MatMul on the tensor cores, see the module documentation.
pub(super) fn matmul_half(cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let operands = [cx.input(0)?, cx.input(1)?, cx.output(0)];
    if let Some(o) = operands.iter().find(|o| o.dtype != DType::F16) {
        return Err(Unsupported::new(format!(
            "a half MatMul with {:?} operands",
            o.dtype
        )));
    }
    let n = cx.output(0).elements();
    let acc = cx.scratch(n * 4);
    let mut work = match matmul_of(GemmInputs::F16, acc, cx)? {
        Lowering::Work(work) => work,
        alias => return Ok(alias),
    };
    if n > 0 && work.iter().any(|w| matches!(w, Work::Gemm(_))) {
        work.push(half::cast(
            DType::F32,
            DType::F16,
            acc.at(),
            Buf::Output(0).at(),
            n,
        ));
    }
    Ok(Lowering::Work(work))
}

/// The products of a MatMul of `inputs` operands into the f32 `out`; an empty inner axis zeroes
/// the output itself (zero bits are zero in every float type).
fn matmul_of(inputs: GemmInputs, out_buf: Buf, cx: &mut Cx) -> Result<Lowering, Unsupported> {
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
        ([m, n, k], inputs),
        &batch,
        [&a_steps, &b_steps],
        out_buf,
    )))
}

/// The products of a broadcast batch, as the module documentation says.
fn batched(
    ([m, n, k], inputs): ([usize; 3], GemmInputs),
    batch: &[usize],
    [sa, sb]: [&[usize]; 2],
    out: Buf,
) -> Vec<Work> {
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
    let size = inputs.size_bytes();
    let matrix = |buf: Buf, offset: usize, ld: usize, stride: usize| {
        let bytes = if buf == out { 4 } else { size };
        Matrix::rows(buf.offset(offset * bytes), ld, stride)
    };
    let gemm = |mnk, batch, operands| {
        Work::Gemm(Gemm {
            inputs,
            ..product(mnk, batch, operands, (1.0, 0.0))
        })
    };
    if split == 0 && stride_b == 0 && stride_a == m * k && inner > 1 {
        let a = matrix(Buf::Input(0), 0, k, 0);
        let (b, c) = (matrix(Buf::Input(1), 0, n, 0), matrix(out, 0, n, 0));
        return vec![gemm([m * inner, n, k], 1, [a, b, c])];
    }
    let mut index = vec![0; split];
    let mut work = Vec::with_capacity(outer);
    for entry in 0..outer {
        let offset = |steps: &[usize]| index.iter().zip(steps).map(|(i, s)| i * s).sum();
        let a = matrix(Buf::Input(0), offset(sa), k, stride_a);
        let b = matrix(Buf::Input(1), offset(sb), n, stride_b);
        let c = matrix(out, entry * inner * m * n, n, m * n);
        work.push(gemm([m, n, k], inner, [a, b, c]));
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
mod tests;
