//! ONNX nodes that import as a few IR nodes because no single IR op computes them:
//! - Min, Max and Sum of three or more inputs: a chain of binary ops. ONNX broadcasts all inputs
//!   together, and broadcasting is associative, so folding left gives the same shape and values.
//! - Clip (opset 11+) with a bound computed at run time: Max with the lower bound, then Min with
//!   the upper. That is also ONNX's answer when min > max (every element becomes max), and an
//!   absent bound drops its step. Constant bounds stay one `Op::Clip`, which the fusions know.
//! - Conv and ConvTranspose in 1-D: the 2-D op over a height of 1 (conv.rs).
//! - Blocked QuantizeLinear and DequantizeLinear: arithmetic over repeated scales (quant.rs).
//! - Elu, Selu, Celu and ThresholdedRelu: Where over the two branches.
//! - BatchNormalization in training mode: the batch's statistics (training.rs).
//! - NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss: gathers and a reduction (training.rs).
//! - Dropout with its mask output: at inference the data passes through and the mask is all
//!   true, a ConstantOfShape over the input's Shape.
//!
//! The family files map every other case to one node.

use super::ctx::NodeCtx;
use super::{conv, elementwise, quant, training};
use temblor_ir::{BinaryOp, DType, Op, Scalar, UnaryOp, Weight};

/// Where a step reads a value: an input of the ONNX node by position, output `port` of an
/// earlier step, or one of the expansion's constants.
#[derive(Clone, Copy)]
pub(super) enum Src {
    Input(usize),
    Step { step: usize, port: usize },
    Const(usize),
}

pub(super) struct Step {
    pub op: Op,
    pub inputs: Vec<Src>,
}

/// IR nodes standing for one ONNX node, in order; `outputs[i]` is the ONNX node's output `i`.
pub(super) struct Expansion {
    pub steps: Vec<Step>,
    pub outputs: Vec<Src>,
    /// The values `Src::Const` reads; the importer makes them Constant nodes.
    pub constants: Vec<Weight>,
}

/// Builds an expansion step by step; each `op` returns the source of the step's first output.
#[derive(Default)]
pub(super) struct Builder {
    steps: Vec<Step>,
    constants: Vec<Weight>,
}

impl Builder {
    pub fn op(&mut self, op: Op, inputs: &[Src]) -> Src {
        self.steps.push(Step {
            op,
            inputs: inputs.to_vec(),
        });
        Src::Step {
            step: self.steps.len() - 1,
            port: 0,
        }
    }

    pub fn constant(&mut self, weight: Weight) -> Src {
        self.constants.push(weight);
        Src::Const(self.constants.len() - 1)
    }

    pub fn i64s(&mut self, values: &[i64]) -> Src {
        self.constant(Weight::from_i64(vec![values.len()], values))
    }

    /// A scalar of `like`'s dtype: an f32 constant cast like it, which is no cast at all once
    /// shape inference knows `like` is f32 and the optimizer removes it.
    pub fn scalar_like(&mut self, value: f32, like: Src) -> Src {
        let c = self.constant(Weight::from_f32(vec![], &[value]));
        self.op(Op::CastLike, &[c, like])
    }

    pub fn finish(self, outputs: Vec<Src>) -> Expansion {
        Expansion {
            steps: self.steps,
            outputs,
            constants: self.constants,
        }
    }
}

/// Op types that always expand: no family maps them to one node.
pub(super) const OPS: [&str; 6] = [
    "Elu",
    "Selu",
    "Celu",
    "ThresholdedRelu",
    "NegativeLogLikelihoodLoss",
    "SoftmaxCrossEntropyLoss",
];

/// The expansion of a node that needs one, `None` when one IR node computes it.
pub(super) fn expansion(ctx: &NodeCtx) -> Result<Option<Expansion>, String> {
    match ctx.op_type {
        "Elu" | "Selu" | "Celu" => elu(ctx).map(Some),
        "ThresholdedRelu" => thresholded_relu(ctx).map(Some),
        "BatchNormalization" if ctx.attrs.int("training_mode", 0)? != 0 => {
            training::batch_norm(ctx).map(Some)
        }
        "QuantizeLinear" | "DequantizeLinear" if quant::is_blocked(ctx)? => {
            quant::blocked(ctx).map(Some)
        }
        "Conv" | "ConvTranspose" if conv::is_1d(ctx)? => conv::as_2d(ctx).map(Some),
        "NegativeLogLikelihoodLoss" => training::nll(ctx).map(Some),
        "SoftmaxCrossEntropyLoss" => training::softmax_cross_entropy(ctx).map(Some),
        "Min" | "Max" | "Sum" if ctx.inputs.len() > 2 => variadic(ctx).map(Some),
        "Clip" if ctx.opset >= 11 && computed_bound(ctx) => Ok(Some(clip(ctx))),
        "Dropout" if ctx.n_outputs > 1 => dropout_with_mask(ctx).map(Some),
        _ => Ok(None),
    }
}

fn variadic(ctx: &NodeCtx) -> Result<Expansion, String> {
    let op = match ctx.op_type {
        "Min" => BinaryOp::Min,
        "Max" => BinaryOp::Max,
        _ => BinaryOp::Add,
    };
    if let Some(i) = (0..ctx.inputs.len()).find(|&i| !ctx.present(i)) {
        return Err(format!(
            "input {i} is empty; every input of {} is required",
            ctx.op_type
        ));
    }
    let mut b = Builder::default();
    let mut acc = Src::Input(0);
    for i in 1..ctx.inputs.len() {
        acc = b.op(Op::Binary(op), &[acc, Src::Input(i)]);
    }
    Ok(b.finish(vec![acc]))
}

/// The exponential linear units, `x` where positive, else `alpha * (exp(x / s) - 1)`:
/// Elu (s = 1), Celu (s = alpha) and Selu (s = 1, everything times gamma). A large positive x
/// overflows the unused branch to infinity, which Where discards.
fn elu(ctx: &NodeCtx) -> Result<Expansion, String> {
    let a = &ctx.attrs;
    let (alpha, scale, gamma) = match ctx.op_type {
        "Selu" => (
            a.float("alpha", 1.673_263_2)?,
            1.0,
            Some(a.float("gamma", 1.050_701)?),
        ),
        "Celu" => {
            let alpha = a.float("alpha", 1.0)?;
            (alpha, alpha, None)
        }
        _ => (a.float("alpha", 1.0)?, 1.0, None),
    };
    let x = Src::Input(0);
    let mut b = Builder::default();
    let (zero, one, alpha_c) = (
        b.scalar_like(0.0, x),
        b.scalar_like(1.0, x),
        b.scalar_like(alpha, x),
    );
    let scaled = if scale == 1.0 {
        x
    } else {
        let s = b.scalar_like(scale, x);
        b.op(Op::Binary(BinaryOp::Div), &[x, s])
    };
    let exp = b.op(Op::Unary(UnaryOp::Exp), &[scaled]);
    let below = b.op(Op::Binary(BinaryOp::Sub), &[exp, one]);
    let below = b.op(Op::Binary(BinaryOp::Mul), &[below, alpha_c]);
    let positive = b.op(Op::Binary(BinaryOp::Greater), &[x, zero]);
    let mut out = b.op(Op::Where, &[positive, x, below]);
    if let Some(gamma) = gamma {
        let g = b.scalar_like(gamma, x);
        out = b.op(Op::Binary(BinaryOp::Mul), &[out, g]);
    }
    Ok(b.finish(vec![out]))
}

/// `x` where above `alpha`, else 0.
fn thresholded_relu(ctx: &NodeCtx) -> Result<Expansion, String> {
    let x = Src::Input(0);
    let mut b = Builder::default();
    let alpha = b.scalar_like(ctx.attrs.float("alpha", 1.0)?, x);
    let zero = b.scalar_like(0.0, x);
    let above = b.op(Op::Binary(BinaryOp::Greater), &[x, alpha]);
    let out = b.op(Op::Where, &[above, x, zero]);
    Ok(b.finish(vec![out]))
}

fn computed_bound(ctx: &NodeCtx) -> bool {
    [1, 2]
        .into_iter()
        .any(|i| ctx.present(i) && ctx.constant(i).is_none())
}

fn clip(ctx: &NodeCtx) -> Expansion {
    let mut b = Builder::default();
    let mut data = Src::Input(0);
    for (port, op) in [(1, BinaryOp::Max), (2, BinaryOp::Min)] {
        if ctx.present(port) {
            data = b.op(Op::Binary(op), &[data, Src::Input(port)]);
        }
    }
    b.finish(vec![data])
}

fn dropout_with_mask(ctx: &NodeCtx) -> Result<Expansion, String> {
    elementwise::dropout_at_inference(ctx)?;
    let mut b = Builder::default();
    let data = b.op(Op::Unary(UnaryOp::Identity), &[Src::Input(0)]);
    let shape = b.op(
        Op::Shape {
            start: 0,
            end: None,
        },
        &[Src::Input(0)],
    );
    let all_true = Scalar {
        dtype: DType::Bool,
        value: 1.0,
    };
    let mask = b.op(Op::ConstantOfShape { value: all_true }, &[shape]);
    Ok(b.finish(vec![data, mask]))
}
