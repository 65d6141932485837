//! MatMul (numpy semantics: 1-D operands, broadcast batch axes) and Gemm as batched products
//! ([`super::matmul`]); Einsum lives in its own file.

use super::elementwise::broadcast_shape;
use super::isa::Isa;
use super::matmul::{batched, Dims, View};
use super::matmul_packed::{with_packed_right, PackedRight};
use super::real::{broadcast_to, dispatch_real, values, Real};
use super::strides;
use crate::{RuntimeError, Tensor, TensorData};

/// numpy's matmul of `a` and `b`.
pub(crate) fn matmul(a: &Tensor, b: &Tensor, isa: Isa) -> Result<Tensor, RuntimeError> {
    dispatch_real!(a.dtype(), "MatMul", T => matmul_t::<T>(a, b, isa))
}

/// numpy's matmul of `a` and the constant right operand the plan packed: of rank 2, it is
/// shared by every batch entry, so this is one product of all of `a`'s rows.
pub(crate) fn matmul_packed(
    a: &Tensor,
    right: &PackedRight,
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    let (k, n) = right.dims();
    let av = values::<f32>(a, "A")?;
    match a.shape.last() {
        Some(&ka) if ka == k => {}
        _ => {
            return Err(RuntimeError::bad_input(format!(
                "MatMul inner dimensions differ: {:?} x {:?}",
                a.shape,
                [k, n]
            )))
        }
    }
    let rows = av.len() / k;
    let mut out = f32::written(rows * n);
    with_packed_right(rows, av, right, &mut out, None, isa);
    let mut shape = a.shape[..a.shape.len() - 1].to_vec();
    shape.push(n);
    Ok(Tensor {
        shape,
        data: TensorData::F32(out),
    })
}

/// `alpha * A' B' + beta * C`, `A'` and `B'` transposed as `trans_a` and `trans_b` say.
pub(crate) fn gemm(
    [a, b]: [&Tensor; 2],
    c: Option<&Tensor>,
    (alpha, beta): (f32, f32),
    (trans_a, trans_b): (bool, bool),
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    let g = GemmArgs {
        alpha,
        beta,
        trans_a,
        trans_b,
    };
    dispatch_real!(a.dtype(), "Gemm", T => gemm_t::<T>(&g, a, b, c, isa))
}

/// The operand views of every batch entry of a broadcast batched product: `shape` is the
/// operand's batch axes (aligned right against `batch`), `plane` its matrix size.
fn batch_views(shape: &[usize], batch: &[usize], plane: usize, view: View) -> Vec<View> {
    let lead = batch.len() - shape.len();
    let st = strides(shape);
    let step: Vec<usize> = (0..batch.len())
        .map(|i| match i.checked_sub(lead) {
            Some(j) if shape[j] != 1 => st[j] * plane,
            _ => 0,
        })
        .collect();
    let count: usize = batch.iter().product();
    let mut views = Vec::with_capacity(count);
    let mut idx = vec![0; batch.len()];
    let mut off = 0;
    for _ in 0..count {
        views.push(view.at(off));
        for ax in (0..batch.len()).rev() {
            idx[ax] += 1;
            off += step[ax];
            if idx[ax] < batch[ax] {
                break;
            }
            off -= step[ax] * batch[ax];
            idx[ax] = 0;
        }
    }
    views
}

pub(crate) fn matmul_t<T: Real>(a: &Tensor, b: &Tensor, isa: Isa) -> Result<Tensor, RuntimeError> {
    let av = values::<T>(a, "A")?;
    let bv = values::<T>(b, "B")?;
    let (ra, rb) = (a.shape.len(), b.shape.len());
    if ra == 0 || rb == 0 {
        return Err(RuntimeError::bad_input(format!(
            "MatMul needs operands of rank >= 1, got {:?} and {:?}",
            a.shape, b.shape
        )));
    }
    let (m, k) = if ra == 1 {
        (1, a.shape[0])
    } else {
        (a.shape[ra - 2], a.shape[ra - 1])
    };
    let (kb, n) = if rb == 1 {
        (b.shape[0], 1)
    } else {
        (b.shape[rb - 2], b.shape[rb - 1])
    };
    if k != kb {
        return Err(RuntimeError::bad_input(format!(
            "MatMul inner dimensions differ: {:?} x {:?}",
            a.shape, b.shape
        )));
    }
    let a_batch = &a.shape[..ra.saturating_sub(2)];
    let b_batch = &b.shape[..rb.saturating_sub(2)];
    let batch = broadcast_shape(a_batch, b_batch)?;
    let mut shape = batch.clone();
    if ra > 1 {
        shape.push(m);
    }
    if rb > 1 {
        shape.push(n);
    }
    let count: usize = batch.iter().product();
    // Every element is written: `batched` sets the output, not adds to it.
    let mut out = T::written(count * m * n);
    let b_shared = b_batch.iter().product::<usize>() == 1;
    let d = Dims { m, n, k };
    if b_shared && a_batch == batch.as_slice() {
        // Every batch entry multiplies the same B: one product of all A rows at once.
        let d = Dims { m: count * m, ..d };
        batched(
            d,
            av,
            &[View::row_major(k)],
            bv,
            &[View::row_major(n)],
            &mut out,
            T::ONE,
            false,
            isa,
        );
    } else {
        let a_views = batch_views(a_batch, &batch, m * k, View::row_major(k));
        let b_views = batch_views(b_batch, &batch, k * n, View::row_major(n));
        batched(d, av, &a_views, bv, &b_views, &mut out, T::ONE, false, isa);
    }
    Ok(Tensor {
        shape,
        data: T::wrap(out),
    })
}

struct GemmArgs {
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
}

/// A 2-D operand's rows and columns as the product reads it, and its view.
fn operand(t: &Tensor, what: &str, transposed: bool) -> Result<(usize, usize, View), RuntimeError> {
    let [r, c] = t.shape[..] else {
        return Err(RuntimeError::bad_input(format!(
            "Gemm's {what} must be 2-D, got {:?}",
            t.shape
        )));
    };
    let view = View::row_major(c);
    Ok(if transposed {
        (c, r, view.transposed())
    } else {
        (r, c, view)
    })
}

fn gemm_t<T: Real>(
    g: &GemmArgs,
    a: &Tensor,
    b: &Tensor,
    c: Option<&Tensor>,
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    let av = values::<T>(a, "A")?;
    let bv = values::<T>(b, "B")?;
    let (m, k, a_view) = operand(a, "A", g.trans_a)?;
    let (kb, n, b_view) = operand(b, "B", g.trans_b)?;
    if k != kb {
        return Err(RuntimeError::bad_input(format!(
            "Gemm inner dimensions differ: A {:?}{}, B {:?}{}",
            a.shape,
            if g.trans_a { " transposed" } else { "" },
            b.shape,
            if g.trans_b { " transposed" } else { "" },
        )));
    }
    let (mut out, accumulate) = match c {
        Some(c) if g.beta != 0.0 => {
            let beta = T::from_f64(g.beta as f64);
            let cv = broadcast_to(values::<T>(c, "C")?, &c.shape, &[m, n], "C")?;
            (cv.into_iter().map(|x| x * beta).collect(), true)
        }
        _ => (T::written(m * n), false),
    };
    batched(
        Dims { m, n, k },
        av,
        &[a_view],
        bv,
        &[b_view],
        &mut out,
        T::from_f64(g.alpha as f64),
        accumulate,
        isa,
    );
    Ok(Tensor {
        shape: vec![m, n],
        data: T::wrap(out),
    })
}
