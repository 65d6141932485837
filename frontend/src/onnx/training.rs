//! Ops of training graphs that evaluation exports keep, as the IR ops their ONNX definitions
//! compute: BatchNormalization in training mode (it normalizes with the batch's own statistics
//! and updates the running ones), and the losses an evaluation graph reports beside its
//! predictions.
//!
//! NegativeLogLikelihoodLoss (SoftmaxCrossEntropyLoss's expansion ends in it): The ONNX reference implementation is the specification followed:
//! `loss[n, d...] = -x[n, target[n, d...], d...] * weight[target]`, zero where the target is
//! `ignore_index`, then reduced. SoftmaxCrossEntropyLoss is the same loss of a log-softmax.

use super::ctx::NodeCtx;
use super::expand::{Builder, Expansion, Src};
use temblor_ir::{BinaryOp, Op, ReduceOp, UnaryOp, Weight};

#[derive(Clone, Copy)]
enum Reduction {
    None,
    Sum,
    Mean,
}

pub(super) fn nll(ctx: &NodeCtx) -> Result<Expansion, String> {
    let mut b = Builder::default();
    let out = nll_of(&mut b, ctx, Src::Input(0))?;
    Ok(b.finish(vec![out]))
}

/// The NLL of the log-softmax over the class axis; the log probabilities are output 1.
pub(super) fn softmax_cross_entropy(ctx: &NodeCtx) -> Result<Expansion, String> {
    let mut b = Builder::default();
    let log_prob = b.op(
        Op::Softmax {
            axis: 1,
            log: true,
            flatten: false,
        },
        &[Src::Input(0)],
    );
    let out = nll_of(&mut b, ctx, log_prob)?;
    Ok(b.finish(vec![out, log_prob]))
}

/// The loss of log probabilities `x` against the targets of input 1 (weights: input 2).
fn nll_of(b: &mut Builder, ctx: &NodeCtx, x: Src) -> Result<Src, String> {
    let reduction = match ctx.attrs.string("reduction", "mean")?.as_str() {
        "none" => Reduction::None,
        "sum" => Reduction::Sum,
        "mean" => Reduction::Mean,
        other => return Err(format!("reduction '{other}' is not none, sum or mean")),
    };
    let ignore = ctx
        .attrs
        .get("ignore_index")
        .map(|_| ctx.attrs.int("ignore_index", 0))
        .transpose()?;
    let target = Src::Input(1);

    // Ignored positions read class 0 instead, so the gathers stay in range; their loss and
    // weight are zeroed below.
    let ignored = ignore.map(|ii| {
        let ii = b.constant(Weight::from_i64(vec![], &[ii]));
        let ii = b.op(Op::CastLike, &[ii, target]);
        b.op(Op::Binary(BinaryOp::Equal), &[target, ii])
    });
    let index = match ignored {
        Some(eq) => {
            let zero = b.constant(Weight::from_i64(vec![], &[0]));
            let zero = b.op(Op::CastLike, &[zero, target]);
            b.op(Op::Where, &[eq, zero, target])
        }
        None => target,
    };

    let class_axis = b.i64s(&[1]);
    let unsqueezed = b.op(Op::Unsqueeze, &[index, class_axis]);
    let picked = b.op(Op::GatherElements { axis: 1 }, &[x, unsqueezed]);
    let picked = b.op(Op::Squeeze, &[picked, class_axis]);
    let mut loss = b.op(Op::Unary(UnaryOp::Neg), &[picked]);

    let class_weight = ctx
        .present(2)
        .then(|| b.op(Op::Gather { axis: 0 }, &[Src::Input(2), index]));
    let weight = match (class_weight, ignored) {
        (Some(w), Some(eq)) => {
            let zero = b.scalar_like(0.0, x);
            Some(b.op(Op::Where, &[eq, zero, w]))
        }
        (Some(w), None) => Some(w),
        (None, Some(eq)) => {
            let kept = b.op(Op::Unary(UnaryOp::Not), &[eq]);
            Some(b.op(Op::CastLike, &[kept, x]))
        }
        (None, None) => None,
    };
    if let Some(w) = weight {
        loss = b.op(Op::Binary(BinaryOp::Mul), &[loss, w]);
    }

    let reduce = |b: &mut Builder, op: ReduceOp, v: Src| {
        b.op(
            Op::Reduce {
                op,
                keepdims: false,
                noop_with_empty_axes: false,
            },
            &[v],
        )
    };
    let out = match (reduction, weight) {
        (Reduction::None, _) => loss,
        (Reduction::Sum, _) => reduce(b, ReduceOp::Sum, loss),
        // A weighted mean divides by the weights of the positions counted, not their number.
        (Reduction::Mean, Some(w)) => {
            let total = reduce(b, ReduceOp::Sum, loss);
            let weights = reduce(b, ReduceOp::Sum, w);
            b.op(Op::Binary(BinaryOp::Div), &[total, weights])
        }
        (Reduction::Mean, None) => reduce(b, ReduceOp::Mean, loss),
    };
    Ok(out)
}

/// BatchNormalization with `training_mode`: `y = (x - mean) / sqrt(var + epsilon) * scale + bias`
/// with the mean and (population) variance of the batch over every axis but the channel axis 1,
/// and the running statistics moved toward them by `1 - momentum`. Needs the input's rank.
pub(super) fn batch_norm(ctx: &NodeCtx) -> Result<Expansion, String> {
    let rank = ctx
        .dims(0)
        .map(<[usize]>::len)
        .ok_or("training mode needs the input's rank, which is not known at import")?;
    if rank < 2 {
        return Err(format!(
            "the input has rank {rank}; training mode needs 2 or more"
        ));
    }
    let epsilon = ctx.attrs.float("epsilon", 1e-5)?;
    let momentum = ctx.attrs.float("momentum", 0.9)?;
    let x = Src::Input(0);
    let mut b = Builder::default();
    let others: Vec<i64> = (0..rank as i64).filter(|&a| a != 1).collect();
    let axes = b.i64s(&others);
    let mean_op = Op::Reduce {
        op: ReduceOp::Mean,
        keepdims: true,
        noop_with_empty_axes: false,
    };
    let mean = b.op(mean_op.clone(), &[x, axes]);
    let centered = b.op(Op::Binary(BinaryOp::Sub), &[x, mean]);
    let squares = b.op(Op::Binary(BinaryOp::Mul), &[centered, centered]);
    let var = b.op(mean_op, &[squares, axes]);
    let eps = b.scalar_like(epsilon, x);
    let denom = b.op(Op::Binary(BinaryOp::Add), &[var, eps]);
    let denom = b.op(Op::Unary(UnaryOp::Sqrt), &[denom]);
    let normalized = b.op(Op::Binary(BinaryOp::Div), &[centered, denom]);
    let scale = b.op(Op::Unsqueeze, &[Src::Input(1), axes]);
    let bias = b.op(Op::Unsqueeze, &[Src::Input(2), axes]);
    let y = b.op(Op::Binary(BinaryOp::Mul), &[normalized, scale]);
    let y = b.op(Op::Binary(BinaryOp::Add), &[y, bias]);
    let mut outputs = vec![y];
    if ctx.n_outputs > 1 {
        let keep = b.scalar_like(momentum, x);
        let take = b.scalar_like(1.0 - momentum, x);
        for (running, batch) in [(Src::Input(3), mean), (Src::Input(4), var)] {
            let batch = b.op(Op::Squeeze, &[batch, axes]);
            let old = b.op(Op::Binary(BinaryOp::Mul), &[running, keep]);
            let new = b.op(Op::Binary(BinaryOp::Mul), &[batch, take]);
            outputs.push(b.op(Op::Binary(BinaryOp::Add), &[old, new]));
        }
        outputs.truncate(ctx.n_outputs);
    }
    Ok(b.finish(outputs))
}
