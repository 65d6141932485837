//! MaxPool, AveragePool (1-D to 3-D windows), GlobalAveragePool and GlobalMaxPool. `auto_pad`
//! becomes explicit pads here, which needs the input's spatial extent unless the stride is 1.

use super::ctx::{non_negative, unlisted, Family, Mapped, NodeCtx};
use temblor_ir::{Op, PoolAttrs};

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
    let pads = match ctx.attrs.string("auto_pad", "NOTSET")?.as_str() {
        "NOTSET" => per_axis(ctx, "pads", 2 * k, 0)?,
        "VALID" => vec![0; 2 * k],
        mode @ ("SAME_UPPER" | "SAME_LOWER") => {
            same_pads(ctx, &kernel, &strides, &dilations, mode == "SAME_UPPER")?
        }
        m => return Err(format!("auto_pad '{m}' is not supported")),
    };
    Ok(PoolAttrs {
        kernel,
        strides,
        dilations,
        pads,
        ceil_mode: ctx.attrs.int("ceil_mode", 0)? != 0,
        count_include_pad: false,
    })
}

/// SAME padding: the output extent is `ceil(input / stride)`; SAME_UPPER puts the odd pad at
/// the end.
fn same_pads(
    ctx: &NodeCtx,
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
    upper: bool,
) -> Result<Vec<usize>, String> {
    let k = kernel.len();
    let mut pads = vec![0; 2 * k];
    for i in 0..k {
        let eff = (kernel[i] - 1)
            .saturating_mul(dilations[i])
            .saturating_add(1);
        let total = if strides[i] == 1 {
            eff - 1
        } else {
            let input = ctx
                .dims(0)
                .filter(|d| d.len() == k + 2)
                .map(|d| d[2 + i])
                .ok_or("auto_pad SAME with stride > 1 needs the input's spatial extent, which is not known at import")?;
            let out = input.div_ceil(strides[i]);
            ((out.max(1) - 1) * strides[i] + eff).saturating_sub(input)
        };
        let small = total / 2;
        (pads[i], pads[k + i]) = if upper {
            (small, total - small)
        } else {
            (total - small, small)
        };
    }
    Ok(pads)
}
