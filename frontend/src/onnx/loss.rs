//! NegativeLogLikelihoodLoss, as the IR ops its ONNX function body computes: exporters write it
//! (and SoftmaxCrossEntropyLoss's expansion ends in it) for evaluation graphs that report a loss
//! beside their predictions. The ONNX reference implementation is the specification followed:
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
