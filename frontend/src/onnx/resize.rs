//! Resize 11 to 19. Its roi, scales and sizes stay operands (ports 1 to 3, as in ONNX): a model
//! may compute them from other values' shapes, which shape inference and constant folding
//! resolve once `--input` has fixed the input sizes, and the kernel reads at run time otherwise.

use super::ctx::{unlisted, Family, Mapped, NodeCtx};
use temblor_ir::{Op, ResizeAspect, ResizeAttrs, ResizeCoordinate, ResizeMode, ResizeNearest};

pub(super) const FAMILY: Family = Family {
    constant_inputs: &[],
    ops: &["Resize"],
    map,
};

fn map(ctx: &NodeCtx) -> Result<Mapped, String> {
    match ctx.op_type {
        "Resize" => Ok(Op::Resize(resize(ctx)?).into()),
        _ => Err(unlisted(ctx)),
    }
}

fn resize(ctx: &NodeCtx) -> Result<ResizeAttrs, String> {
    let a = &ctx.attrs;
    if ctx.opset < 11 {
        return Err(format!(
            "Resize of opset {} (before 11) is not supported",
            ctx.opset
        ));
    }
    let mode = match a.string("mode", "nearest")?.as_str() {
        "nearest" => ResizeMode::Nearest,
        "linear" => ResizeMode::Linear,
        "cubic" => ResizeMode::Cubic,
        m => return Err(format!("mode '{m}' is not one of nearest, linear, cubic")),
    };
    let coordinate = match a
        .string("coordinate_transformation_mode", "half_pixel")?
        .as_str()
    {
        "half_pixel" => ResizeCoordinate::HalfPixel,
        "half_pixel_symmetric" => ResizeCoordinate::HalfPixelSymmetric,
        "pytorch_half_pixel" => ResizeCoordinate::PytorchHalfPixel,
        "align_corners" => ResizeCoordinate::AlignCorners,
        "asymmetric" => ResizeCoordinate::Asymmetric,
        "tf_crop_and_resize" => ResizeCoordinate::TfCropAndResize,
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
    let aspect = match a.string("keep_aspect_ratio_policy", "stretch")?.as_str() {
        "stretch" => ResizeAspect::Stretch,
        "not_larger" => ResizeAspect::NotLarger,
        "not_smaller" => ResizeAspect::NotSmaller,
        m => {
            return Err(format!(
                "keep_aspect_ratio_policy '{m}' is not one of stretch, not_larger, not_smaller"
            ))
        }
    };
    if !ctx.present(2) && !ctx.present(3) {
        return Err("neither scales (input 2) nor sizes (input 3) is given".into());
    }
    Ok(ResizeAttrs {
        cubic_coeff_a: a.float("cubic_coeff_a", -0.75)?,
        exclude_outside: a.int("exclude_outside", 0)? != 0,
        extrapolation_value: a.float("extrapolation_value", 0.0)?,
        antialias: a.int("antialias", 0)? != 0,
        axes: a.ints("axes")?,
        aspect,
        ..ResizeAttrs::new(mode, coordinate, nearest)
    })
}
