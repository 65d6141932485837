//! How far one tensor is from another: relative L2 error, largest absolute difference, cosine
//! similarity. Both are widened to f64 first, so an f16 or int8 value meets its f32 counterpart.

use crate::verify::values;
use serde::Serialize;
use temblor_runtime::Tensor;

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Metrics {
    /// ||b - a|| / ||a|| (||b - a|| when a is all zeros); NaN when b holds a NaN.
    pub rel_l2: f64,
    pub max_abs: f64,
    /// a.b / (|a| |b|); 1 when both are all zeros, 0 when only one is.
    pub cosine: f64,
}

/// The distance of `b` from the reference `a`; `None` when their shapes differ (the values
/// after a data-dependent selection may keep different counts).
pub fn metrics(a: &Tensor, b: &Tensor) -> Option<Metrics> {
    if a.shape != b.shape {
        return None;
    }
    let (x, y) = (values(a), values(b));
    if x.len() != a.len() || y.len() != b.len() {
        return None;
    }
    let (mut diff, mut aa, mut bb, mut ab, mut max_abs) = (0.0, 0.0, 0.0, 0.0, 0.0f64);
    for (p, q) in x.iter().zip(&y) {
        let d = q - p;
        diff += d * d;
        aa += p * p;
        bb += q * q;
        ab += p * q;
        // NaN must win the maximum, so a NaN output cannot hide.
        if d.is_nan() || d.abs() > max_abs {
            max_abs = d.abs();
        }
    }
    let rel_l2 = if aa == 0.0 {
        diff.sqrt()
    } else {
        (diff / aa).sqrt()
    };
    let cosine = match (aa == 0.0, bb == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        _ => ab / (aa.sqrt() * bb.sqrt()),
    };
    Some(Metrics {
        rel_l2,
        max_abs,
        cosine,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions() {
        let a = Tensor::f32(vec![2], vec![3.0, 4.0]);
        let b = Tensor::f32(vec![2], vec![3.0, 5.0]);
        let m = metrics(&a, &b).unwrap();
        assert!((m.rel_l2 - 0.2).abs() < 1e-12);
        assert_eq!(m.max_abs, 1.0);
        let cos = (9.0 + 20.0) / (5.0 * 34f64.sqrt());
        assert!((m.cosine - cos).abs() < 1e-12);
        assert!(metrics(&a, &Tensor::f32(vec![1, 2], vec![3.0, 4.0])).is_none());
        let nan = Tensor::f32(vec![2], vec![f32::NAN, 4.0]);
        let m = metrics(&a, &nan).unwrap();
        assert!(m.rel_l2.is_nan() && m.max_abs.is_nan());
    }
}
