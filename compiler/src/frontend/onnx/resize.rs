//! Resize, with its scales or sizes resolved to attributes.

use super::ops::{floats, non_negative, unlisted, Family, Mapped, NodeCtx};
use temblor_ir::{Op, ResizeAttrs, ResizeCoordinate, ResizeMode, ResizeNearest};

pub(super) const FAMILY: Family = Family {
    constant_inputs: &[("Resize", &[1, 2, 3])],
    ops: &["Resize"],
    map,
};

fn map(ctx: &NodeCtx) -> Result<Mapped, String> {
    match ctx.op_type {
        "Resize" => Ok(Op::Resize(resize(ctx)?).into()),
        _ => Err(unlisted(ctx)),
    }
}

/// Resize 11 to 13: inputs X, roi, scales, sizes; one of scales and sizes is a non-empty
/// constant.
fn resize(ctx: &NodeCtx) -> Result<ResizeAttrs, String> {
    let a = &ctx.attrs;
    let mode = match a.string("mode", "nearest")?.as_str() {
        "nearest" => ResizeMode::Nearest,
        "linear" => ResizeMode::Linear,
        m => return Err(format!("mode '{m}' is not supported (nearest, linear)")),
    };
    let coordinate = match a
        .string("coordinate_transformation_mode", "half_pixel")?
        .as_str()
    {
        "half_pixel" => ResizeCoordinate::HalfPixel,
        "pytorch_half_pixel" => ResizeCoordinate::PytorchHalfPixel,
        "align_corners" => ResizeCoordinate::AlignCorners,
        "asymmetric" => ResizeCoordinate::Asymmetric,
        m => {
            return Err(format!(
                "coordinate_transformation_mode '{m}' is not supported"
            ))
        }
    };
    let nearest = match a.string("nearest_mode", "round_prefer_floor")?.as_str() {
        "round_prefer_floor" => ResizeNearest::RoundPreferFloor,
        "round_prefer_ceil" => ResizeNearest::RoundPreferCeil,
        "floor" => ResizeNearest::Floor,
        "ceil" => ResizeNearest::Ceil,
        m => return Err(format!("nearest_mode '{m}' is not supported")),
    };
    let nonempty = |i: usize| ctx.constant(i).filter(|w| w.element_count() > 0);
    let (scales, sizes) = if let Some(w) = nonempty(3) {
        let v = w
            .to_i64()
            .ok_or("input 3 ('sizes') is not an integer tensor")?;
        (None, Some(non_negative(&v, "sizes")?))
    } else if let Some(w) = nonempty(2) {
        (Some(floats(w)?), None)
    } else {
        return Err("scales or sizes must be a non-empty constant input".into());
    };
    Ok(ResizeAttrs {
        mode,
        coordinate,
        nearest,
        scales,
        sizes,
    })
}
