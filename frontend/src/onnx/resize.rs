//! Resize, with its scales or sizes resolved to attributes.

use super::ctx::{floats, non_negative, unlisted, Family, Mapped, NodeCtx};
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

/// Resize 11 and later: inputs X, roi, scales, sizes; one of scales and sizes is a non-empty
/// constant. Opset 18's `axes` is expanded to every axis here; what the runtime does not
/// implement (antialiasing, aspect-ratio policies, cubic) is refused rather than approximated.
fn resize(ctx: &NodeCtx) -> Result<ResizeAttrs, String> {
    let a = &ctx.attrs;
    if ctx.opset < 11 {
        return Err(format!(
            "Resize of opset {} (before 11) is not supported",
            ctx.opset
        ));
    }
    if a.int("antialias", 0)? != 0 {
        return Err("antialias is not supported".into());
    }
    let policy = a.string("keep_aspect_ratio_policy", "stretch")?;
    if policy != "stretch" {
        return Err(format!(
            "keep_aspect_ratio_policy '{policy}' is not supported (stretch)"
        ));
    }
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
    let (mut scales, mut sizes) = if let Some(w) = nonempty(3) {
        let v = w
            .to_i64()
            .ok_or("input 3 ('sizes') is not an integer tensor")?;
        (None, Some(non_negative(&v, "sizes")?))
    } else if let Some(w) = nonempty(2) {
        (Some(floats(w)?), None)
    } else {
        return Err("scales or sizes must be a non-empty constant input".into());
    };
    if let Some(axes) = a.ints("axes")? {
        let dims = ctx
            .dims(0)
            .ok_or("the 'axes' attribute needs the input's shape, which is not known")?;
        let full = |given: &[f64], keep: &dyn Fn(usize) -> f64| -> Result<Vec<f64>, String> {
            if given.len() != axes.len() {
                return Err(format!("{} values for {} axes", given.len(), axes.len()));
            }
            let mut out: Vec<f64> = (0..dims.len()).map(keep).collect();
            for (&axis, &v) in axes.iter().zip(given) {
                let r = dims.len() as i64;
                let k = if axis < 0 { axis + r } else { axis };
                if !(0..r).contains(&k) {
                    return Err(format!("axis {axis} is out of range for rank {r}"));
                }
                out[k as usize] = v;
            }
            Ok(out)
        };
        if let Some(s) = &scales {
            let given: Vec<f64> = s.iter().map(|&v| v as f64).collect();
            scales = Some(
                full(&given, &|_| 1.0)?
                    .into_iter()
                    .map(|v| v as f32)
                    .collect(),
            );
        }
        if let Some(s) = &sizes {
            let given: Vec<f64> = s.iter().map(|&v| v as f64).collect();
            sizes = Some(
                full(&given, &|i| dims[i] as f64)?
                    .into_iter()
                    .map(|v| v as usize)
                    .collect(),
            );
        }
    }
    Ok(ResizeAttrs {
        mode,
        coordinate,
        nearest,
        scales,
        sizes,
    })
}
