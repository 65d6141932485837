//! A classifier's answer: the `k` highest scoring classes, best first, scored as probabilities:
//! a head that ends in logits (scores outside [0, 1], or not summing to 1) gets the softmax its
//! exporter left to the application.

use crate::{floats, ClassScore};
use temblor_ir::{Error, Result};
use temblor_runtime::Tensor;

pub(crate) fn classes(scores: &Tensor, k: usize) -> Result<Vec<ClassScore>> {
    let mut values = floats("scores", scores)?;
    let sum: f32 = values.iter().sum();
    if values.iter().any(|v| !(0.0..=1.0).contains(v)) || (sum - 1.0).abs() > 1e-3 {
        let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exps: Vec<f32> = values.iter().map(|v| (v - max).exp()).collect();
        let total: f32 = exps.iter().sum();
        values = exps.into_iter().map(|e| e / total).collect();
    }
    let classes = scores.shape.last().copied().unwrap_or(0);
    if scores.shape.iter().rev().skip(1).any(|&d| d != 1) || classes == 0 {
        return Err(Error::usage(format!(
            "expected one image's class scores [1, classes]; the output is {:?}",
            scores.shape
        )));
    }
    let mut order: Vec<usize> = (0..classes).collect();
    // Ties keep the lower class id first, as numpy's stable argsort of the negated scores does.
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    Ok(order
        .into_iter()
        .take(k)
        .map(|c| ClassScore {
            class: c as i64,
            label: None,
            score: values[c],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logits_become_probabilities_and_probabilities_stay() {
        let logits = Tensor::f32(vec![1, 3], vec![2.0, 0.0, -1.0]);
        let top = classes(&logits, 2).unwrap();
        // numpy: np.exp(l - l.max()) / np.exp(l - l.max()).sum() -> 0.8437947, 0.1141952
        assert_eq!(top[0].class, 0);
        assert!((top[0].score - 0.843_794_7).abs() < 1e-6);
        assert!((top[1].score - 0.114_195_2).abs() < 1e-6);
        let probs = Tensor::f32(vec![1, 3], vec![0.2, 0.5, 0.3]);
        let top = classes(&probs, 3).unwrap();
        assert_eq!(top.iter().map(|c| c.class).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(top[0].score, 0.5);
    }
}
