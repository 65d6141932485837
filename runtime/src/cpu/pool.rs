//! GlobalAveragePool: the mean of each `[n, c]` plane over every trailing axis.

use super::execute::{not_in_family, Args};
use super::f32s;
use crate::{RuntimeError, Tensor};
use temblor_ir::Op;

pub(crate) fn execute(op: &Op, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
    match op {
        Op::GlobalAveragePool => Ok(vec![global_average_pool(args.required(0)?)?]),
        Op::MaxPool(_) | Op::AveragePool(_) | Op::GlobalMaxPool => Err(RuntimeError::unsupported(
            format!("no CPU kernel for {} yet", op.name()),
        )),
        _ => Err(not_in_family(op, "pooling")),
    }
}

pub(crate) fn global_average_pool(x: &Tensor) -> Result<Tensor, RuntimeError> {
    let v = f32s(x, "input")?;
    if x.shape.len() < 2 {
        return Err(RuntimeError::bad_input(format!(
            "input must be at least 2-D, got shape {:?}",
            x.shape
        )));
    }
    let plane: usize = x.shape[2..].iter().product();
    let planes = x.shape[0] * x.shape[1];
    // Sums in f64: a large plane summed in f32 loses digits that onnxruntime keeps.
    let out = (0..planes)
        .map(|i| {
            let s: f64 = v[i * plane..(i + 1) * plane]
                .iter()
                .map(|&e| e as f64)
                .sum();
            (s / plane as f64) as f32
        })
        .collect();
    let mut shape = x.shape.clone();
    shape[2..].fill(1);
    Ok(Tensor::f32(shape, out))
}
