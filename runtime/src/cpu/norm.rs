//! Inference batch normalization over axis 1 (folded once per channel into `x * a + b`), and
//! layer normalization over trailing axes.

use super::isa::Isa;
use super::real::{broadcast_to, dispatch_real, sum_f64, values, Real};
use super::{f32s, normalize_axis};
use crate::RuntimeError;
use crate::Tensor;
use rayon::prelude::*;

/// `params` are scale, bias, mean, variance, each one value per channel.
pub(crate) fn batch_norm(
    x: &Tensor,
    params: [&Tensor; 4],
    epsilon: f32,
) -> Result<Tensor, RuntimeError> {
    let xv = f32s(x, "input")?;
    if x.shape.len() < 2 {
        return Err(RuntimeError::bad_input(format!(
            "input must have a channel axis, got shape {:?}",
            x.shape
        )));
    }
    let c = x.shape[1];
    let mut p = Vec::with_capacity(4);
    for (t, what) in params.iter().zip(["scale", "bias", "mean", "variance"]) {
        let v = f32s(t, what)?;
        if v.len() != c {
            return Err(RuntimeError::bad_input(format!(
                "{what} has shape {:?}, expected [{c}]",
                t.shape
            )));
        }
        p.push(v);
    }
    let inner: usize = x.shape[2..].iter().product();
    let mut out = Vec::with_capacity(xv.len());
    for chunk in xv.chunks(inner.max(1) * c.max(1)) {
        for ch in 0..c {
            let a = p[0][ch] / (p[3][ch] + epsilon).sqrt();
            let b = p[1][ch] - p[2][ch] * a;
            out.extend(
                chunk[ch * inner..(ch + 1) * inner]
                    .iter()
                    .map(|&e| e * a + b),
            );
        }
    }
    Ok(Tensor::f32(x.shape.clone(), out))
}

/// LayerNormalization over the axes from `axis` on; `scale` and `bias` broadcast to them. The
/// statistics run in f64 (at least the f32 that stash_type asks for); the optional mean and
/// inverse standard deviation outputs are f32 with the normalized axes kept as 1.
pub(crate) fn layer_norm(
    x: &Tensor,
    scale: &Tensor,
    bias: Option<&Tensor>,
    axis: i64,
    epsilon: f32,
    outputs: usize,
    isa: Isa,
) -> Result<Vec<Tensor>, RuntimeError> {
    let a = normalize_axis(axis, x.shape.len())?;
    dispatch_real!(x.dtype(), "LayerNormalization", T => {
        layer_norm_t::<T>(x, scale, bias, a, epsilon as f64, outputs, isa)
    })
}

fn layer_norm_t<T: Real>(
    x: &Tensor,
    scale: &Tensor,
    bias: Option<&Tensor>,
    a: usize,
    epsilon: f64,
    outputs: usize,
    isa: Isa,
) -> Result<Vec<Tensor>, RuntimeError> {
    let v = values::<T>(x, "input")?;
    let normalized = &x.shape[a..];
    let cols: usize = normalized.iter().product();
    let rows: usize = x.shape[..a].iter().product();
    let param =
        |t: &Tensor, what: &str| broadcast_to(values::<T>(t, what)?, &t.shape, normalized, what);
    let s = param(scale, "scale")?;
    let b = bias.map(|t| param(t, "bias")).transpose()?;
    let mut y = T::written(v.len());
    let mut stats = vec![(0.0f32, 0.0f32); rows];
    if cols > 0 {
        // Whole rows, at least `TASK` elements, a task, each compiled for the widest vectors:
        // a task a row, at the baseline's SSE2 width (two f64 lanes), ViT-S's 25 LayerNorms
        // took 3x OpenVINO's time.
        const TASK: usize = 1 << 14;
        let per_task = TASK.div_ceil(cols);
        y.par_chunks_mut(cols * per_task)
            .zip(v.par_chunks(cols * per_task))
            .zip(stats.par_chunks_mut(per_task))
            .for_each(|((out, rows), st)| {
                isa.widest(
                    #[inline(always)]
                    || {
                        for ((out, row), st) in out
                            .chunks_exact_mut(cols)
                            .zip(rows.chunks_exact(cols))
                            .zip(st)
                        {
                            *st = normalize_row(out, row, &s, b.as_deref(), epsilon);
                        }
                    },
                )
            });
    }
    let mut stat_shape = x.shape.clone();
    stat_shape[a..].fill(1);
    let mut result = vec![Tensor {
        shape: x.shape.clone(),
        data: T::wrap(y),
    }];
    if outputs > 1 {
        result.push(Tensor::f32(
            stat_shape.clone(),
            stats.iter().map(|s| s.0).collect(),
        ));
    }
    if outputs > 2 {
        result.push(Tensor::f32(stat_shape, stats.iter().map(|s| s.1).collect()));
    }
    Ok(result)
}

/// One row of a LayerNorm into `out`; its mean and inverse standard deviation.
#[inline(always)]
fn normalize_row<T: Real>(
    out: &mut [T],
    row: &[T],
    s: &[T],
    b: Option<&[T]>,
    epsilon: f64,
) -> (f32, f32) {
    // `sum_f64`'s partial sums: one chain of dependent f64 additions per row made ViT-S's 25
    // LayerNorms 0.2 ms each, latency-bound.
    let n = row.len() as f64;
    let mean = sum_f64(row, T::to_f64) / n;
    let var = sum_f64(row, |e| (e.to_f64() - mean).powi(2)) / n;
    let inv = 1.0 / (var + epsilon).sqrt();
    let (m, i) = (T::from_f64(mean), T::from_f64(inv));
    let z = out.iter_mut().zip(row).zip(s);
    match b {
        Some(b) => z
            .zip(b)
            .for_each(|(((o, &e), &s), &b)| *o = (e - m) * i * s + b),
        None => z.for_each(|((o, &e), &s)| *o = (e - m) * i * s),
    }
    (mean as f32, inv as f32)
}
