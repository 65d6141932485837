//! Detection ops: NonMaxSuppression, RoiAlign, DeformConv, GridSample. Their operands all stay
//! runtime inputs.

use super::conv::common;
use super::ctx::{unlisted, Family, Mapped, NodeCtx};
use temblor_ir::{DeformConvAttrs, GridSampleMode, GridSamplePadding, Op, RoiAlignAttrs};

pub(super) const FAMILY: Family = Family {
    constant_inputs: &[],
    ops: &["NonMaxSuppression", "RoiAlign", "DeformConv", "GridSample"],
    map,
};

fn map(ctx: &NodeCtx) -> Result<Mapped, String> {
    Ok(match ctx.op_type {
        "NonMaxSuppression" => non_max_suppression(ctx)?,
        "RoiAlign" => Op::RoiAlign(roi_align(ctx)?),
        "DeformConv" => Op::DeformConv(deform_conv(ctx)?),
        "GridSample" => grid_sample(ctx)?,
        _ => return Err(unlisted(ctx)),
    }
    .into())
}

fn flag(ctx: &NodeCtx, name: &str, default: i64) -> Result<bool, String> {
    match ctx.attrs.int(name, default)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(format!("attribute '{name}' is {v}, expected 0 or 1")),
    }
}

fn non_max_suppression(ctx: &NodeCtx) -> Result<Op, String> {
    Ok(Op::NonMaxSuppression {
        center_point_box: flag(ctx, "center_point_box", 0)?,
    })
}

/// RoiAlign 10 has no coordinate_transformation_mode and behaves as `output_half_pixel`; from
/// opset 16 the default is `half_pixel`.
fn roi_align(ctx: &NodeCtx) -> Result<RoiAlignAttrs, String> {
    let a = &ctx.attrs;
    let default_mode = if ctx.opset >= 16 {
        "half_pixel"
    } else {
        "output_half_pixel"
    };
    let half_pixel = match a
        .string("coordinate_transformation_mode", default_mode)?
        .as_str()
    {
        "half_pixel" => true,
        "output_half_pixel" => false,
        m => {
            return Err(format!(
            "coordinate_transformation_mode '{m}' is not supported (half_pixel, output_half_pixel)"
        ))
        }
    };
    let max = match a.string("mode", "avg")?.as_str() {
        "avg" => false,
        "max" => true,
        m => return Err(format!("mode '{m}' is not supported (avg, max)")),
    };
    let (output_height, output_width) = (a.usize("output_height", 1)?, a.usize("output_width", 1)?);
    if output_height == 0 || output_width == 0 {
        return Err(format!(
            "output size {output_height}x{output_width} is empty"
        ));
    }
    Ok(RoiAlignAttrs {
        max,
        output_height,
        output_width,
        sampling_ratio: a.usize("sampling_ratio", 0)?,
        spatial_scale: a.float("spatial_scale", 1.0)?,
        half_pixel,
    })
}

/// DeformConv's window attributes are Conv's, without auto_pad.
fn deform_conv(ctx: &NodeCtx) -> Result<DeformConvAttrs, String> {
    let c = common(ctx)?;
    if c.auto_pad != "NOTSET" {
        return Err(format!("auto_pad '{}' is not supported", c.auto_pad));
    }
    let offset_group = ctx.attrs.usize("offset_group", 1)?;
    if offset_group == 0 {
        return Err("offset_group is 0".into());
    }
    Ok(DeformConvAttrs {
        kernel: c.kernel,
        strides: c.strides,
        dilations: c.dilations,
        pads: c.pads,
        group: c.group,
        offset_group,
    })
}

/// GridSample 16 spells the modes bilinear and bicubic, 20 linear and cubic; both are accepted.
fn grid_sample(ctx: &NodeCtx) -> Result<Op, String> {
    let a = &ctx.attrs;
    let default_mode = if ctx.opset >= 20 {
        "linear"
    } else {
        "bilinear"
    };
    let mode = match a.string("mode", default_mode)?.as_str() {
        "bilinear" | "linear" => GridSampleMode::Linear,
        "nearest" => GridSampleMode::Nearest,
        "bicubic" | "cubic" => GridSampleMode::Cubic,
        m => {
            return Err(format!(
                "mode '{m}' is not supported (linear, nearest, cubic)"
            ))
        }
    };
    let padding = match a.string("padding_mode", "zeros")?.as_str() {
        "zeros" => GridSamplePadding::Zeros,
        "border" => GridSamplePadding::Border,
        "reflection" => GridSamplePadding::Reflection,
        m => {
            return Err(format!(
                "padding_mode '{m}' is not supported (zeros, border, reflection)"
            ))
        }
    };
    Ok(Op::GridSample {
        mode,
        padding,
        align_corners: flag(ctx, "align_corners", 0)?,
    })
}
