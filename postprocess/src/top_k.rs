//! A classifier's answer: the `k` highest scoring classes, best first.

use crate::{floats, ClassScore};
use temblor_ir::{Error, Result};
use temblor_runtime::Tensor;

pub(crate) fn classes(scores: &Tensor, k: usize) -> Result<Vec<ClassScore>> {
    let values = floats("scores", scores)?;
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
