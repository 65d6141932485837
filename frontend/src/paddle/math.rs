//! Elementwise ops: arithmetic with Paddle's axis broadcasting, activations, scale and clip,
//! comparisons, logic, select and cast.

use super::ctx::{Ctx, Family, Res};
use super::params;
use temblor_ir::{BinaryOp, Op, UnaryOp, ValueRef};

pub(super) const FAMILY: Family = Family {
    ops: &[
        "elementwise_add",
        "elementwise_sub",
        "elementwise_mul",
        "elementwise_div",
        "elementwise_pow",
        "elementwise_max",
        "elementwise_min",
        "elementwise_mod",
        "elementwise_floordiv",
        "less_than",
        "less_equal",
        "greater_than",
        "greater_equal",
        "equal",
        "not_equal",
        "logical_and",
        "logical_or",
        "logical_xor",
        "logical_not",
        "relu",
        "relu6",
        "leaky_relu",
        "sigmoid",
        "tanh",
        "exp",
        "log",
        "sqrt",
        "rsqrt",
        "abs",
        "floor",
        "ceil",
        "round",
        "sign",
        "erf",
        "softplus",
        "mish",
        "swish",
        "silu",
        "hard_swish",
        "hard_sigmoid",
        "gelu",
        "pow",
        "scale",
        "clip",
        "where",
        "cast",
    ],
    map,
};

fn binary_kind(op_type: &str) -> Option<BinaryOp> {
    Some(match op_type {
        "elementwise_add" => BinaryOp::Add,
        "elementwise_sub" => BinaryOp::Sub,
        "elementwise_mul" => BinaryOp::Mul,
        "elementwise_div" => BinaryOp::Div,
        "elementwise_pow" => BinaryOp::Pow,
        "elementwise_max" => BinaryOp::Max,
        "elementwise_min" => BinaryOp::Min,
        "elementwise_mod" => BinaryOp::Mod,
        "less_than" => BinaryOp::Less,
        "less_equal" => BinaryOp::LessOrEqual,
        "greater_than" => BinaryOp::Greater,
        "greater_equal" => BinaryOp::GreaterOrEqual,
        "equal" | "not_equal" => BinaryOp::Equal,
        "logical_and" => BinaryOp::And,
        "logical_or" => BinaryOp::Or,
        "logical_xor" => BinaryOp::Xor,
        _ => return None,
    })
}

fn unary_kind(op_type: &str) -> Option<UnaryOp> {
    Some(match op_type {
        "relu" => UnaryOp::Relu,
        "sigmoid" => UnaryOp::Sigmoid,
        "tanh" => UnaryOp::Tanh,
        "exp" => UnaryOp::Exp,
        "log" => UnaryOp::Log,
        "sqrt" => UnaryOp::Sqrt,
        "abs" => UnaryOp::Abs,
        "floor" => UnaryOp::Floor,
        "ceil" => UnaryOp::Ceil,
        "round" => UnaryOp::Round,
        "sign" => UnaryOp::Sign,
        "erf" => UnaryOp::Erf,
        "mish" => UnaryOp::Mish,
        "logical_not" => UnaryOp::Not,
        _ => return None,
    })
}

fn map(c: &mut Ctx) -> Res {
    let t = c.op_type();
    if let Some(kind) = binary_kind(t) {
        let (x, y) = broadcast_operands(c)?;
        let mut out = c.add(Op::Binary(kind), &[x, y]);
        if t == "not_equal" {
            out = c.add(Op::Unary(UnaryOp::Not), &[out]);
        }
        return c.bind("Out", out);
    }
    let x = c.input("X")?;
    if let Some(kind) = unary_kind(t) {
        let y = c.add(Op::Unary(kind), &[x]);
        return c.bind("Out", y);
    }
    let y = match t {
        "elementwise_floordiv" => return Err("elementwise_floordiv is not supported".into()),
        "relu6" => c.add(
            Op::Clip {
                min: 0.0,
                max: c.attrs.float_or("threshold", 6.0)?,
            },
            &[x],
        ),
        "leaky_relu" => c.add(
            Op::LeakyRelu {
                alpha: c.attrs.float_or("alpha", 0.02)?,
            },
            &[x],
        ),
        "rsqrt" => {
            let s = c.add(Op::Unary(UnaryOp::Sqrt), &[x]);
            c.add(Op::Unary(UnaryOp::Reciprocal), &[s])
        }
        "softplus" => {
            if c.attrs.float_or("beta", 1.0)? != 1.0 {
                return Err("softplus with beta other than 1 is not supported".into());
            }
            c.add(Op::Unary(UnaryOp::Softplus), &[x])
        }
        "swish" | "silu" => {
            if c.attrs.float_or("beta", 1.0)? != 1.0 {
                return Err("swish with beta other than 1 is not supported".into());
            }
            let s = c.add(Op::Unary(UnaryOp::Sigmoid), &[x]);
            c.add(Op::Binary(BinaryOp::Mul), &[x, s])
        }
        "hard_swish" => {
            let defaults = [("threshold", 6.0), ("scale", 6.0), ("offset", 3.0)];
            for (name, want) in defaults {
                if c.attrs.float_or(name, want)? != want {
                    return Err(format!(
                        "hard_swish with {name} other than {want} is not supported"
                    )
                    .into());
                }
            }
            c.add(Op::Unary(UnaryOp::HardSwish), &[x])
        }
        "hard_sigmoid" => c.add(
            Op::HardSigmoid {
                alpha: c.attrs.float_or("slope", 0.2)?,
                beta: c.attrs.float_or("offset", 0.5)?,
            },
            &[x],
        ),
        "gelu" => c.add(
            Op::Gelu {
                tanh: c.attrs.bool_or("approximate", false)?,
            },
            &[x],
        ),
        "pow" => {
            if c.has_input("FactorTensor") {
                return Err("pow with a tensor factor is not supported".into());
            }
            let dtype = c.declared_dtype("X")?;
            let f = c.scalar(dtype, c.attrs.float_or("factor", 1.0)? as f64)?;
            c.add(Op::Binary(BinaryOp::Pow), &[x, f])
        }
        "scale" => scale(c, x)?,
        "clip" => {
            if c.has_input("Min") || c.has_input("Max") {
                return Err("clip with tensor bounds is not supported".into());
            }
            c.add(
                Op::Clip {
                    min: c.attrs.float_or("min", f32::MIN)?,
                    max: c.attrs.float_or("max", f32::MAX)?,
                },
                &[x],
            )
        }
        "where" => {
            let cond = c.input("Condition")?;
            let other = c.input("Y")?;
            c.add(Op::Where, &[cond, x, other])
        }
        "cast" => {
            let to = params::dtype(c.attrs.int("out_dtype")? as i32)?;
            c.add(Op::Cast { to }, &[x])
        }
        _ => return Err(format!("{t} is listed but not mapped").into()),
    };
    c.bind("Out", y)
}

/// `scale * x + bias`, or `scale * (x + bias)` when bias_after_scale is false; an identity
/// scale (the `save_infer_model/scale_*` ops every export ends with) is an Identity node.
fn scale(c: &mut Ctx, x: ValueRef) -> Res<ValueRef> {
    if c.has_input("ScaleTensor") {
        return Err("scale with a tensor factor is not supported".into());
    }
    let s = c.attrs.float_or("scale", 1.0)? as f64;
    let b = c.attrs.float_or("bias", 0.0)? as f64;
    let after = c.attrs.bool_or("bias_after_scale", true)?;
    if s == 1.0 && b == 0.0 {
        return Ok(c.add(Op::Unary(UnaryOp::Identity), &[x]));
    }
    let dtype = c.declared_dtype("X")?;
    let mut v = x;
    if !after && b != 0.0 {
        let bias = c.scalar(dtype, b)?;
        v = c.add(Op::Binary(BinaryOp::Add), &[v, bias]);
    }
    if s != 1.0 {
        let factor = c.scalar(dtype, s)?;
        v = c.add(Op::Binary(BinaryOp::Mul), &[v, factor]);
    }
    if after && b != 0.0 {
        let bias = c.scalar(dtype, b)?;
        v = c.add(Op::Binary(BinaryOp::Add), &[v, bias]);
    }
    Ok(v)
}

/// X and Y of a binary op, with Y reshaped so numpy broadcasting means what Paddle's `axis`
/// says: Y's axes line up with X's starting at `axis` (-1: aligned to the end, as numpy does).
fn broadcast_operands(c: &mut Ctx) -> Res<(ValueRef, ValueRef)> {
    let x = c.input("X")?;
    let y = c.input("Y")?;
    let axis = c.attrs.int_or("axis", -1)?;
    if axis == -1 {
        return Ok((x, y));
    }
    let rx = c.declared_rank("X", false)?;
    let ry = c.declared_rank("Y", false)?;
    if ry >= rx {
        return Ok((x, y));
    }
    let axis = usize::try_from(axis)
        .ok()
        .filter(|&a| a + ry <= rx)
        .ok_or_else(|| format!("axis {axis} does not fit a rank-{ry} Y into a rank-{rx} X"))?;
    let trailing = rx - axis - ry;
    if trailing == 0 {
        return Ok((x, y));
    }
    // A parameter (the bias of a conv, the usual case) is reshaped in place, so the graph reads
    // as the ONNX export of the same model does.
    if let Some(w) = c.weight(y) {
        let mut w = w.clone();
        w.dims.extend(std::iter::repeat_n(1, trailing));
        let name = c.imp.g.node(y.node).outputs[y.port].name.clone();
        return Ok((x, c.imp.constant(&name, w, "parameter")));
    }
    let axes: Vec<i64> = (ry..ry + trailing).map(|a| a as i64).collect();
    let axes = c.const_i64(vec![axes.len()], &axes);
    let y = c.add(Op::Unsqueeze, &[y, axes]);
    Ok((x, y))
}
