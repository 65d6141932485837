//! Rules of the image ops: Conv, ConvTranspose, BatchNorm, GlobalAveragePool, Resize. All keep
//! the batch axis (and its symbol) and tag their result NCHW.

use super::dims;
use super::Ins;
use temblor_ir::{
    AutoPad, ConvAttrs, ConvTransposeAttrs, Dim, Layout, ResizeAspect, ResizeAttrs, Shape,
    TensorType,
};

fn rank4<'a>(t: &'a TensorType, what: &str) -> Result<&'a [Dim], String> {
    match t.shape.rank() {
        4 => Ok(t.shape.dims()),
        r => Err(format!("{what} has rank {r} ({}), expected 4", t.shape)),
    }
}

fn same_dtype(x: &TensorType, other: &TensorType, what: &str) -> Result<(), String> {
    if x.dtype == other.dtype {
        Ok(())
    } else {
        Err(format!("{what} is {}, input is {}", other.dtype, x.dtype))
    }
}

fn check_kernel(kernel: [usize; 2], w: &[Dim]) -> Result<(), String> {
    for i in 0..2 {
        if let Dim::Known(k) = w[2 + i] {
            if k != kernel[i] {
                return Err(format!(
                    "kernel is {kernel:?} but the weight's spatial size is {}x{}",
                    w[2], w[3]
                ));
            }
        }
    }
    Ok(())
}

fn check_bias(bias: Option<&TensorType>, channels: &Dim) -> Result<(), String> {
    let Some(b) = bias else { return Ok(()) };
    match b.shape.dims() {
        [d] => dims::unify(d, channels)
            .map(|_| ())
            .map_err(|e| format!("bias does not match the output channels: {e}")),
        _ => Err(format!(
            "bias has shape {}, expected one dimension",
            b.shape
        )),
    }
}

fn effective(k: usize, d: usize) -> usize {
    (k.max(1) - 1).saturating_mul(d).saturating_add(1)
}

/// SAME pads made explicit, once the input's height and width are known (see [`AutoPad`]).
pub(super) fn explicit_pads(a: &ConvAttrs, x: &TensorType) -> Option<ConvAttrs> {
    match x.shape.dims() {
        [_, _, Dim::Known(h), Dim::Known(w)] if a.auto_pad != AutoPad::NotSet => {
            Some(a.resolved([*h, *w]))
        }
        _ => None,
    }
}

pub(super) fn conv(
    a: &ConvAttrs,
    x: &TensorType,
    w: &TensorType,
    bias: Option<&TensorType>,
) -> Result<TensorType, String> {
    let xd = rank4(x, "input")?;
    let wd = rank4(w, "weight")?;
    same_dtype(x, w, "weight")?;
    check_kernel(a.kernel, wd)?;
    if let (Dim::Known(c), Dim::Known(wc)) = (&xd[1], &wd[1]) {
        if *c != wc.saturating_mul(a.group) {
            return Err(format!(
                "input has {c} channels, weight expects {wc} x group {}",
                a.group
            ));
        }
    }
    if let Dim::Known(o) = wd[0] {
        if o % a.group != 0 {
            return Err(format!(
                "{o} output channels do not divide into {} groups",
                a.group
            ));
        }
    }
    check_bias(bias, &wd[0])?;
    let mut out = vec![xd[0].clone(), wd[0].clone()];
    for i in 0..2 {
        let eff = effective(a.kernel[i], a.dilations[i]);
        let (pb, pe) = (a.pads[i], a.pads[i + 2]);
        out.push(match &xd[2 + i] {
            Dim::Known(n) => {
                let padded = n.saturating_add(pb).saturating_add(pe);
                let span = padded.checked_sub(eff).ok_or_else(|| {
                    format!("kernel extent {eff} exceeds the padded input {padded}")
                })?;
                Dim::Known(span / a.strides[i] + 1)
            }
            d if a.strides[i] == 1 && pb.saturating_add(pe).saturating_add(1) == eff => d.clone(),
            _ => Dim::Unknown,
        });
    }
    Ok(TensorType {
        dtype: x.dtype,
        shape: Shape(out),
        layout: Layout::NCHW,
    })
}

pub(super) fn conv_transpose(
    a: &ConvTransposeAttrs,
    x: &TensorType,
    w: &TensorType,
    bias: Option<&TensorType>,
) -> Result<TensorType, String> {
    let xd = rank4(x, "input")?;
    let wd = rank4(w, "weight")?;
    same_dtype(x, w, "weight")?;
    check_kernel(a.kernel, wd)?;
    dims::unify(&xd[1], &wd[0])
        .map_err(|e| format!("input channels do not match the weight: {e}"))?;
    let channels = match &wd[1] {
        Dim::Known(o) => Dim::Known(o.saturating_mul(a.group)),
        _ => Dim::Unknown,
    };
    check_bias(bias, &channels)?;
    let mut out = vec![xd[0].clone(), channels];
    for i in 0..2 {
        let grow = a.output_padding[i].saturating_add(effective(a.kernel[i], a.dilations[i]));
        let (pb, pe) = (a.pads[i], a.pads[i + 2]);
        out.push(match &xd[2 + i] {
            Dim::Known(n) => {
                let full = a.strides[i]
                    .saturating_mul(n.saturating_sub(1))
                    .saturating_add(grow);
                Dim::Known(
                    full.checked_sub(pb.saturating_add(pe))
                        .ok_or_else(|| format!("pads {pb}+{pe} exceed the output extent {full}"))?,
                )
            }
            d if a.strides[i] == 1 && grow == pb.saturating_add(pe).saturating_add(1) => d.clone(),
            _ => Dim::Unknown,
        });
    }
    Ok(TensorType {
        dtype: x.dtype,
        shape: Shape(out),
        layout: Layout::NCHW,
    })
}

pub(super) fn batch_norm(x: &TensorType, params: &[&TensorType; 4]) -> Result<TensorType, String> {
    let channels = x.shape.dims().get(1).ok_or_else(|| {
        format!(
            "input has shape {}, expected at least 2 dimensions",
            x.shape
        )
    })?;
    for (p, name) in params.iter().zip(["scale", "bias", "mean", "variance"]) {
        same_dtype(x, p, name)?;
        match p.shape.dims() {
            [d] => dims::unify(d, channels)
                .map_err(|e| format!("{name} does not match the channels: {e}"))?,
            _ => {
                return Err(format!(
                    "{name} has shape {}, expected one dimension",
                    p.shape
                ))
            }
        };
    }
    Ok(image(x.clone()))
}

pub(super) fn global_pool(x: &TensorType) -> Result<TensorType, String> {
    let d = x.shape.dims();
    if d.len() < 3 {
        return Err(format!(
            "input has shape {}, expected at least 3 dimensions",
            x.shape
        ));
    }
    let mut out = d[..2].to_vec();
    out.resize(d.len(), Dim::Known(1));
    Ok(image(TensorType::new(x.dtype, Shape(out))))
}

/// Resize's output extents, from its operands when they are static (constants, or values shape
/// inference can compute: the `Shape -> Gather -> Concat` sizes PyTorch exports). What stays
/// unknown is computed by the kernel at run time: an axis resized by an unknown amount, or a
/// scale applied to an unknown extent, has an unknown output extent.
pub(super) fn resize(a: &ResizeAttrs, ins: &Ins) -> Result<TensorType, String> {
    let x = ins.ty(0)?;
    let d = x.shape.dims();
    let axes = a.resized_axes(d.len())?;
    let floats = |p: usize| ins.static_f32(p).filter(|v| !v.is_empty());
    let (roi, scales) = (floats(1), floats(2));
    let sizes = ins.static_i64(3).filter(|v| !v.is_empty());
    let operand = |p: usize| ins.opt(p).is_some_and(|t| t.shape.known() != Some(vec![0]));
    if !operand(2) && !operand(3) {
        return Err("has neither scales nor sizes".into());
    }
    let out = if let Some(known) = x
        .shape
        .known()
        .filter(|_| scales.is_some() || sizes.is_some())
    {
        let plan = a.plan(&known, roi.as_deref(), scales.as_deref(), sizes.as_deref())?;
        plan.iter().map(|ax| Dim::Known(ax.output)).collect()
    } else {
        let mut out = d.to_vec();
        for (i, &k) in axes.iter().enumerate() {
            out[k] = match (&scales, &sizes) {
                (_, Some(s)) if a.aspect == ResizeAspect::Stretch => Dim::Known(
                    usize::try_from(s[i]).map_err(|_| format!("size {} is negative", s[i]))?,
                ),
                (Some(s), _) if s[i] == 1.0 => d[k].clone(),
                (Some(s), _) => match &d[k] {
                    Dim::Known(n) => Dim::Known((*n as f32 * s[i]).floor() as usize),
                    _ => Dim::Unknown,
                },
                _ => Dim::Unknown,
            };
        }
        out
    };
    Ok(image(TensorType::new(x.dtype, Shape(out))))
}

/// A 4-D result of an image op is NCHW; other ranks keep no tag.
fn image(mut t: TensorType) -> TensorType {
    t.layout = if t.shape.rank() == 4 {
        Layout::NCHW
    } else {
        t.layout
    };
    t
}
