//! Inference batch normalization over axis 1: folded once per channel into `x * a + b`.

use super::f32s;
use crate::{RuntimeError, Tensor};

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
