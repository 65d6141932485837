//! Matrix products, softmax, normalization, reductions and top-k: matmul_v2, matmul, softmax,
//! layer_norm, reduce_*, top_k(_v2), argsort, arg_max, dropout (inference) and squared_l2_norm.

use super::ctx::{Ctx, Family, Res};
use super::movement::{
    declared_dims, declared_rank_of, fill, norm_axis, reshape_to, shape_of, times,
};
use super::{args, params};
use temblor_ir::{BinaryOp, DType, Op, ReduceOp, ValueRef};

pub(super) const FAMILY: Family = Family {
    ops: &[
        "matmul_v2",
        "matmul",
        "softmax",
        "layer_norm",
        "reduce_max",
        "reduce_min",
        "reduce_mean",
        "reduce_sum",
        "reduce_prod",
        "top_k_v2",
        "top_k",
        "argsort",
        "arg_max",
        "dropout",
        "squared_l2_norm",
    ],
    map,
};

fn map(c: &mut Ctx) -> Res {
    match c.op_type() {
        "matmul_v2" | "matmul" => matmul(c),
        "softmax" => {
            let x = c.input("X")?;
            let axis = c.attrs.int_or("axis", -1)?;
            let y = c.add(
                Op::Softmax {
                    axis,
                    log: false,
                    flatten: false,
                },
                &[x],
            );
            c.bind("Out", y)
        }
        "layer_norm" => layer_norm(c),
        "reduce_max" => reduce(c, ReduceOp::Max),
        "reduce_min" => reduce(c, ReduceOp::Min),
        "reduce_mean" => reduce(c, ReduceOp::Mean),
        "reduce_sum" => reduce(c, ReduceOp::Sum),
        "reduce_prod" => reduce(c, ReduceOp::Prod),
        "top_k_v2" | "top_k" => top_k(c),
        "argsort" => argsort(c),
        "arg_max" => arg_max(c),
        "dropout" => {
            let x = c.input("X")?;
            let p = c.attrs.float_or("dropout_prob", 0.5)? as f64;
            let how = c
                .attrs
                .string_or("dropout_implementation", "downgrade_in_infer")?;
            let y = match how.as_str() {
                "upscale_in_train" => x,
                "downgrade_in_infer" => {
                    let dtype = c.declared_dtype("X")?;
                    times(c, x, dtype, 1.0 - p)?
                }
                other => return Err(format!("dropout_implementation '{other}' is unknown").into()),
            };
            c.bind("Out", y)
        }
        "squared_l2_norm" => {
            let x = c.input("X")?;
            let sq = c.add(Op::Binary(BinaryOp::Mul), &[x, x]);
            let sum = reduce_node(c, ReduceOp::Sum, sq, None, false);
            let y = declared_rank_of(c, sum, 0, "Out")?;
            c.bind("Out", y)
        }
        other => Err(format!("{other} is listed but not mapped").into()),
    }
}

/// `v` with its last two axes swapped (a 1-D operand is left alone, as Paddle does).
fn transposed(c: &mut Ctx, v: ValueRef, param: &str) -> Res<ValueRef> {
    let rank = c.declared_rank(param, false)?;
    if rank < 2 {
        return Ok(v);
    }
    let mut perm: Vec<usize> = (0..rank).collect();
    perm.swap(rank - 2, rank - 1);
    Ok(c.add(Op::Transpose { perm }, &[v]))
}

fn matmul(c: &mut Ctx) -> Res {
    let v2 = c.op_type() == "matmul_v2";
    let (tx, ty) = if v2 {
        ("trans_x", "trans_y")
    } else {
        ("transpose_X", "transpose_Y")
    };
    let mut x = c.input("X")?;
    let mut y = c.input("Y")?;
    if c.attrs.bool_or(tx, false)? {
        x = transposed(c, x, "X")?;
    }
    if c.attrs.bool_or(ty, false)? {
        y = transposed(c, y, "Y")?;
    }
    if !v2 && c.attrs.int_or("head_number", 1)? != 1 {
        return Err("matmul with head_number other than 1 is not supported".into());
    }
    let mut out = c.add(Op::MatMul, &[x, y]);
    let alpha = if v2 {
        1.0
    } else {
        c.attrs.float_or("alpha", 1.0)? as f64
    };
    if alpha != 1.0 {
        let dtype = c.declared_dtype("X")?;
        out = times(c, out, dtype, alpha)?;
    }
    c.bind("Out", out)
}

/// Paddle's scale and bias are flat over the normalized axes; the IR's broadcast against
/// them, so they take the normalized shape when it spans more than one axis. An absent scale
/// is ones.
fn layer_norm(c: &mut Ctx) -> Res {
    let x = c.input("X")?;
    let dims = declared_dims(c, "X", false)?;
    let axis = norm_axis(c.attrs.int_or("begin_norm_axis", 1)?, dims.len())?;
    let epsilon = c.attrs.float_or("epsilon", 1e-5)?;
    let normalized: Option<Vec<i64>> = dims[axis..].iter().map(|d| d.map(|d| d as i64)).collect();
    let shape = match (dims.len() - axis, normalized) {
        (1, _) => None,
        (n, Some(d)) => Some(c.const_i64(vec![n], &d)),
        (_, None) => Some(shape_of(c, x, axis as i64, None)),
    };
    let shaped = |c: &mut Ctx, v: ValueRef| match shape {
        Some(s) => c.add(Op::Reshape { allowzero: false }, &[v, s]),
        None => v,
    };
    let scale = match c.opt_input("Scale")? {
        Some(s) => shaped(c, s),
        None => {
            let s = shape_of(c, x, axis as i64, None);
            let dtype = c.declared_dtype("X")?;
            fill(c, s, dtype, 1.0)
        }
    };
    let bias = c.opt_input("Bias")?.map(|b| shaped(c, b));
    let id = c.node(
        Op::LayerNorm {
            axis: axis as i64,
            epsilon,
        },
        &[Some(x), Some(scale), bias],
        1,
    );
    c.bind("Y", ValueRef::new(id, 0))
}

fn declared_output_dtype(c: &Ctx, param: &str) -> Res<DType> {
    let names = args(c.op, param, true);
    let var = names
        .first()
        .ok_or_else(|| format!("output '{param}' is missing"))?;
    Ok(c.imp.declared_type(var)?.dtype)
}

fn reduce_node(
    c: &mut Ctx,
    op: ReduceOp,
    x: ValueRef,
    axes: Option<&[i64]>,
    keepdims: bool,
) -> ValueRef {
    let mut ins = vec![x];
    if let Some(axes) = axes {
        ins.push(c.const_i64(vec![axes.len()], axes));
    }
    c.add(
        Op::Reduce {
            op,
            keepdims,
            noop_with_empty_axes: false,
        },
        &ins,
    )
}

fn reduce(c: &mut Ctx, op: ReduceOp) -> Res {
    let mut x = c.input("X")?;
    let rank = c.declared_rank("X", false)?;
    let dim = c.attrs.ints_or("dim", &[])?;
    let keepdims = c.attrs.bool_or("keep_dim", false)?;
    let all = c.attrs.bool_or("reduce_all", false)? || dim.is_empty() || dim.len() == rank;
    // Paddle sums bool and int32 as int64, and out_dtype may ask for another type: the
    // reduction runs in the dtype the program declares for the result.
    let out_dtype = declared_output_dtype(c, "Out")?;
    if c.declared_dtype("X")? != out_dtype {
        x = c.add(Op::Cast { to: out_dtype }, &[x]);
    }
    let (axes, out_rank) = match (all, keepdims) {
        (true, true) => (None, rank),
        (true, false) => (None, 0),
        (false, true) => (Some(dim.as_slice()), rank),
        (false, false) => (Some(dim.as_slice()), rank.saturating_sub(dim.len())),
    };
    let y = reduce_node(c, op, x, axes, keepdims);
    let y = declared_rank_of(c, y, out_rank, "Out")?;
    c.bind("Out", y)
}

/// A sort is a TopK of every element along the axis: its values and their indices. TopK keeps
/// the lower index first among equal values, so the order is stable either way.
fn argsort(c: &mut Ctx) -> Res {
    let x = c.input("X")?;
    let rank = c.declared_rank("X", false)?;
    let axis = norm_axis(c.attrs.int_or("axis", -1)?, rank)? as i64;
    let k = shape_of(c, x, axis, Some(axis + 1));
    let op = Op::TopK {
        axis,
        largest: c.attrs.bool_or("descending", false)?,
        sorted: true,
    };
    let id = c.node(op, &[Some(x), Some(k)], 2);
    c.bind("Out", ValueRef::new(id, 0))?;
    c.bind("Indices", ValueRef::new(id, 1))
}

/// k from the K input (any integer type, 0-D or `[1]`) or the attribute; top_k works on the
/// last axis and always takes the largest.
fn top_k(c: &mut Ctx) -> Res {
    let x = c.input("X")?;
    let k = match c.opt_input("K")? {
        Some(k) => {
            let k = match c.declared_dtype("K")? {
                DType::I64 => k,
                _ => c.add(Op::Cast { to: DType::I64 }, &[k]),
            };
            reshape_to(c, k, &[1])
        }
        None => {
            let k = c.attrs.int("k")?;
            c.const_i64(vec![1], &[k])
        }
    };
    let v2 = c.op_type() == "top_k_v2";
    let op = Op::TopK {
        axis: if v2 { c.attrs.int_or("axis", -1)? } else { -1 },
        largest: !v2 || c.attrs.bool_or("largest", true)?,
        sorted: !v2 || c.attrs.bool_or("sorted", true)?,
    };
    let id = c.node(op, &[Some(x), Some(k)], 2);
    c.bind("Out", ValueRef::new(id, 0))?;
    c.bind("Indices", ValueRef::new(id, 1))
}

fn arg_max(c: &mut Ctx) -> Res {
    let x = c.input("X")?;
    let keepdims = c.attrs.bool_or("keepdims", false)?;
    let flatten = c.attrs.bool_or("flatten", false)?;
    let rank = c.declared_rank("X", false)?;
    let mut y = if flatten {
        // Over all elements: one index, kept as ones of the input's rank with keepdims.
        let x = reshape_to(c, x, &[-1]);
        let op = Op::ArgExtreme {
            min: false,
            axis: 0,
            keepdims: false,
            select_last_index: false,
        };
        let y = c.add(op, &[x]);
        if keepdims {
            reshape_to(c, y, &vec![1; rank])
        } else {
            declared_rank_of(c, y, 0, "Out")?
        }
    } else {
        let axis = c.attrs.int_or("axis", -1)?;
        let op = Op::ArgExtreme {
            min: false,
            axis,
            keepdims,
            select_last_index: false,
        };
        let y = c.add(op, &[x]);
        declared_rank_of(
            c,
            y,
            if keepdims {
                rank
            } else {
                rank.saturating_sub(1)
            },
            "Out",
        )?
    };
    let dtype = params::dtype(c.attrs.int_or("dtype", 3)? as i32)?;
    if dtype != DType::I64 {
        y = c.add(Op::Cast { to: dtype }, &[y]);
    }
    c.bind("Out", y)
}
