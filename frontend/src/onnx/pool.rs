//! MaxPool, AveragePool (1-D to 3-D windows), GlobalAveragePool and GlobalMaxPool. `auto_pad`
//! becomes explicit pads here where they do not depend on the input's extent (VALID, stride
//! 1); a strided SAME window keeps it as [`AutoPad`], resolved by shape inference once the
//! extents are known and by the kernel at run time otherwise.

use super::ctx::{non_negative, unlisted, Family, Mapped, NodeCtx};
use temblor_ir::{AutoPad, Op, PoolAttrs};

pub(super) const FAMILY: Family = Family {
    constant_inputs: &[],
    ops: &[
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "GlobalMaxPool",
    ],
    map,
};

fn map(ctx: &NodeCtx) -> Result<Mapped, String> {
    Ok(match ctx.op_type {
        "MaxPool" => {
            if ctx.n_outputs > 1 && ctx.attrs.int("storage_order", 0)? != 0 {
                return Err("storage_order 1 (column-major indices) is not supported".into());
            }
            Op::MaxPool(window(ctx)?)
        }
        "AveragePool" => Op::AveragePool(PoolAttrs {
            count_include_pad: ctx.attrs.int("count_include_pad", 0)? != 0,
            ..window(ctx)?
        }),
        "GlobalAveragePool" => Op::GlobalAveragePool,
        "GlobalMaxPool" => Op::GlobalMaxPool,
        _ => return Err(unlisted(ctx)),
    }
    .into())
}

/// A per-axis list attribute of `k` entries, all positive, or `default` everywhere.
fn per_axis(ctx: &NodeCtx, name: &str, len: usize, default: usize) -> Result<Vec<usize>, String> {
    let Some(v) = ctx.attrs.ints(name)? else {
        return Ok(vec![default; len]);
    };
    if v.len() != len {
        return Err(format!(
            "attribute '{name}' has {} entries, expected {len}",
            v.len()
        ));
    }
    non_negative(&v, name)
}

fn window(ctx: &NodeCtx) -> Result<PoolAttrs, String> {
    let kernel = ctx
        .attrs
        .ints("kernel_shape")?
        .ok_or("attribute 'kernel_shape' is missing")?;
    let kernel = non_negative(&kernel, "kernel_shape")?;
    let k = kernel.len();
    if !(1..=3).contains(&k) {
        return Err(format!(
            "kernel_shape {kernel:?}: only 1-D to 3-D pooling is supported"
        ));
    }
    let strides = per_axis(ctx, "strides", k, 1)?;
    let dilations = per_axis(ctx, "dilations", k, 1)?;
    if kernel.contains(&0) || strides.contains(&0) || dilations.contains(&0) {
        return Err("kernel_shape, strides and dilations must be positive".into());
    }
    let (pads, auto_pad) = match ctx.attrs.string("auto_pad", "NOTSET")?.as_str() {
        "NOTSET" => (per_axis(ctx, "pads", 2 * k, 0)?, AutoPad::NotSet),
        "VALID" => (vec![0; 2 * k], AutoPad::NotSet),
        "SAME_UPPER" => (vec![0; 2 * k], AutoPad::SameUpper),
        "SAME_LOWER" => (vec![0; 2 * k], AutoPad::SameLower),
        m => return Err(format!("auto_pad '{m}' is not supported")),
    };
    let attrs = PoolAttrs {
        kernel,
        strides,
        dilations,
        pads,
        auto_pad,
        ceil_mode: ctx.attrs.int("ceil_mode", 0)? != 0,
        count_include_pad: false,
    };
    // At stride 1 SAME pads do not depend on the extent: any extent gives them.
    Ok(if attrs.strides.iter().all(|&s| s == 1) {
        attrs.resolved(&vec![1; k])
    } else {
        attrs
    })
}
