//! ONNX nodes that import as a few IR nodes because no single IR op computes them:
//! - Min, Max and Sum of three or more inputs: a chain of binary ops. ONNX broadcasts all inputs
//!   together, and broadcasting is associative, so folding left gives the same shape and values.
//! - Clip (opset 11+) with a bound computed at run time: Max with the lower bound, then Min with
//!   the upper. That is also ONNX's answer when min > max (every element becomes max), and an
//!   absent bound drops its step. Constant bounds stay one `Op::Clip`, which the fusions know.
//! - Dropout with its mask output: at inference the data passes through and the mask is all
//!   true, a ConstantOfShape over the input's Shape.
//!
//! The family files map every other case to one node.

use super::ctx::NodeCtx;
use super::elementwise;
use temblor_ir::{BinaryOp, DType, Op, Scalar, UnaryOp};

/// Where a step reads a value: an input of the ONNX node by position, or output `port` of an
/// earlier step.
#[derive(Clone, Copy)]
pub(super) enum Src {
    Input(usize),
    Step { step: usize, port: usize },
}

pub(super) struct Step {
    pub op: Op,
    pub inputs: Vec<Src>,
}

/// IR nodes standing for one ONNX node, in order; `outputs[i]` is the ONNX node's output `i`.
pub(super) struct Expansion {
    pub steps: Vec<Step>,
    pub outputs: Vec<Src>,
}

/// The expansion of a node that needs one, `None` when one IR node computes it.
pub(super) fn expansion(ctx: &NodeCtx) -> Result<Option<Expansion>, String> {
    match ctx.op_type {
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
    let mut steps = vec![Step {
        op: Op::Binary(op),
        inputs: vec![Src::Input(0), Src::Input(1)],
    }];
    for i in 2..ctx.inputs.len() {
        steps.push(Step {
            op: Op::Binary(op),
            inputs: vec![
                Src::Step {
                    step: i - 2,
                    port: 0,
                },
                Src::Input(i),
            ],
        });
    }
    Ok(chained(steps))
}

fn computed_bound(ctx: &NodeCtx) -> bool {
    [1, 2]
        .into_iter()
        .any(|i| ctx.present(i) && ctx.constant(i).is_none())
}

fn clip(ctx: &NodeCtx) -> Expansion {
    let mut steps: Vec<Step> = Vec::new();
    for (port, op) in [(1, BinaryOp::Max), (2, BinaryOp::Min)] {
        if ctx.present(port) {
            let data = match steps.len() {
                0 => Src::Input(0),
                n => Src::Step {
                    step: n - 1,
                    port: 0,
                },
            };
            steps.push(Step {
                op: Op::Binary(op),
                inputs: vec![data, Src::Input(port)],
            });
        }
    }
    chained(steps)
}

fn dropout_with_mask(ctx: &NodeCtx) -> Result<Expansion, String> {
    elementwise::dropout_at_inference(ctx)?;
    let data = Step {
        op: Op::Unary(UnaryOp::Identity),
        inputs: vec![Src::Input(0)],
    };
    let shape = Step {
        op: Op::Shape {
            start: 0,
            end: None,
        },
        inputs: vec![Src::Input(0)],
    };
    let mask = Step {
        op: Op::ConstantOfShape {
            value: Scalar {
                dtype: DType::Bool,
                value: 1.0,
            },
        },
        inputs: vec![Src::Step { step: 1, port: 0 }],
    };
    Ok(Expansion {
        steps: vec![data, shape, mask],
        outputs: vec![
            Src::Step { step: 0, port: 0 },
            Src::Step { step: 2, port: 0 },
        ],
    })
}

/// A chain whose last step is the node's one output.
fn chained(steps: Vec<Step>) -> Expansion {
    let last = steps.len() - 1;
    Expansion {
        steps,
        outputs: vec![Src::Step {
            step: last,
            port: 0,
        }],
    }
}
