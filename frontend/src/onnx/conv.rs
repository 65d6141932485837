//! Conv, ConvTranspose (1-D and 2-D) and BatchNormalization. A 1-D convolution is the 2-D one
//! over a height of 1 ([`as_2d`]), which is how the fast kernels see it anyway. `auto_pad` becomes explicit pads here
//! where the padding does not depend on the input's extent (VALID, stride 1, transposed SAME);
//! a strided SAME Conv keeps it as [`AutoPad`], for shape inference to resolve once the extents
//! are known (and the kernel at run time otherwise). ConvTranspose's `output_shape` needs the
//! input's extent at import.

use super::attrs::Attrs;
use super::ctx::{unlisted, Family, Mapped, NodeCtx};
use super::expand::{Builder, Expansion, Src};
use super::proto::{attribute_proto::AttributeType, AttributeProto};
use temblor_ir::{AutoPad, ConvAttrs, ConvTransposeAttrs, Op};

pub(super) const FAMILY: Family = Family {
    constant_inputs: &[],
    ops: &["Conv", "ConvTranspose", "BatchNormalization"],
    map,
};

fn map(ctx: &NodeCtx) -> Result<Mapped, String> {
    Ok(match ctx.op_type {
        "Conv" => conv(ctx)?,
        "ConvTranspose" => conv_transpose(ctx)?,
        "BatchNormalization" => batch_norm(ctx)?,
        _ => return Err(unlisted(ctx)),
    }
    .into())
}

pub(super) struct Common {
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    pub group: usize,
    pub auto_pad: String,
    pub pads: [usize; 4],
}

pub(super) fn common(ctx: &NodeCtx) -> Result<Common, String> {
    let a = &ctx.attrs;
    let kernel = match a.ints("kernel_shape")? {
        Some(k) if k.len() != 2 => {
            return Err(format!(
                "kernel_shape {k:?}: only 2-D convolution is supported"
            ))
        }
        Some(_) => a.usizes("kernel_shape", [0, 0])?,
        None => {
            let w = ctx
                .dims(1)
                .ok_or("kernel_shape is missing and the weight's shape is not known")?;
            match *w {
                [_, _, kh, kw] => [kh, kw],
                _ => {
                    return Err(format!(
                        "weight has shape {w:?}: only 2-D convolution is supported"
                    ))
                }
            }
        }
    };
    let group = a.usize("group", 1)?;
    if group == 0 {
        return Err("group is 0".into());
    }
    let c = Common {
        kernel,
        strides: a.usizes("strides", [1, 1])?,
        dilations: a.usizes("dilations", [1, 1])?,
        group,
        auto_pad: a.string("auto_pad", "NOTSET")?,
        pads: a.usizes("pads", [0; 4])?,
    };
    if c.strides.contains(&0) || c.dilations.contains(&0) {
        return Err("strides and dilations must be positive".into());
    }
    Ok(c)
}

/// Begin and end pads from a total: SAME_UPPER puts the odd one at the end.
fn split_total(total: usize, upper: bool) -> (usize, usize) {
    if upper {
        (total / 2, total - total / 2)
    } else {
        (total - total / 2, total / 2)
    }
}

fn spatial(ctx: &NodeCtx, why: &str) -> Result<[usize; 2], String> {
    match ctx.dims(0) {
        Some([_, _, h, w]) => Ok([*h, *w]),
        _ => Err(format!(
            "{why} needs the input's height and width, which are not known at import"
        )),
    }
}

fn conv(ctx: &NodeCtx) -> Result<Op, String> {
    let c = common(ctx)?;
    let same = |auto_pad: AutoPad| {
        let mut a = ConvAttrs {
            activation: None,
            kernel: c.kernel,
            strides: c.strides,
            dilations: c.dilations,
            pads: [0; 4],
            auto_pad,
            group: c.group,
            affine: None,
        };
        // At stride 1 the pads do not depend on the extent: any extent gives them.
        if c.strides == [1, 1] {
            a = a.resolved([1, 1]);
        }
        a
    };
    let attrs = match c.auto_pad.as_str() {
        "NOTSET" => ConvAttrs {
            pads: c.pads,
            ..same(AutoPad::NotSet)
        },
        "VALID" => same(AutoPad::NotSet),
        "SAME_UPPER" => same(AutoPad::SameUpper),
        "SAME_LOWER" => same(AutoPad::SameLower),
        m => return Err(format!("auto_pad '{m}' is not supported")),
    };
    Ok(Op::Conv(attrs))
}

fn conv_transpose(ctx: &NodeCtx) -> Result<Op, String> {
    let c = common(ctx)?;
    let mut output_padding = ctx.attrs.usizes("output_padding", [0, 0])?;
    let output_shape = ctx.attrs.ints("output_shape")?;
    let eff = |i: usize| {
        (c.kernel[i].max(1) - 1)
            .saturating_mul(c.dilations[i])
            .saturating_add(1) as i64
    };
    let pads = match (c.auto_pad.as_str(), output_shape) {
        (_, Some(shape)) => {
            let shape = match shape[..] {
                [.., h, w] => [h, w],
                _ => return Err(format!("output_shape {shape:?} is not 2-D")),
            };
            let x = spatial(ctx, "output_shape")?;
            let mut pads = [0; 4];
            for i in 0..2 {
                let full = (c.strides[i] as i64)
                    .saturating_mul(x[i].max(1) as i64 - 1)
                    .saturating_add(output_padding[i] as i64)
                    .saturating_add(eff(i));
                // The split of ONNX's reference implementation, floor division included: an
                // output one longer than the full one gets a negative end pad, which is more
                // output padding.
                let total = full.saturating_sub(shape[i]);
                let (begin, end) = if c.auto_pad == "SAME_UPPER" {
                    (total.div_euclid(2), total - total.div_euclid(2))
                } else {
                    (total - total.div_euclid(2), total.div_euclid(2))
                };
                let begin = usize::try_from(begin).map_err(|_| {
                    format!(
                        "output size {} needs negative padding at the start",
                        shape[i]
                    )
                })?;
                (pads[i], pads[i + 2]) = match usize::try_from(end) {
                    Ok(end) => (begin, end),
                    Err(_) => {
                        output_padding[i] += end.unsigned_abs() as usize;
                        (begin, 0)
                    }
                };
            }
            pads
        }
        ("NOTSET", None) => c.pads,
        ("VALID", None) => [0; 4],
        // Output = input * stride, so the total padding does not depend on the input size.
        (mode @ ("SAME_UPPER" | "SAME_LOWER"), None) => {
            let mut pads = [0; 4];
            for i in 0..2 {
                let t = usize::try_from(
                    (output_padding[i] as i64).saturating_add(eff(i)) - c.strides[i] as i64,
                )
                .map_err(|_| format!("auto_pad {mode} needs negative padding"))?;
                (pads[i], pads[i + 2]) = split_total(t, mode == "SAME_UPPER");
            }
            pads
        }
        (m, None) => return Err(format!("auto_pad '{m}' is not supported")),
    };
    Ok(Op::ConvTranspose(ConvTransposeAttrs {
        kernel: c.kernel,
        strides: c.strides,
        dilations: c.dilations,
        pads,
        output_padding,
        group: c.group,
        activation: None,
    }))
}

/// Whether a Conv or ConvTranspose convolves along one axis: its kernel_shape, or else its
/// weight, says so.
pub(super) fn is_1d(ctx: &NodeCtx) -> Result<bool, String> {
    Ok(match ctx.attrs.ints("kernel_shape")? {
        Some(k) => k.len() == 1,
        None => ctx.dims(1).is_some_and(|w| w.len() == 3),
    })
}

/// A 1-D Conv or ConvTranspose as the 2-D one over a height of 1: the data and the weight gain
/// an axis 2 of extent 1, every per-axis attribute gains a leading 1 (pads a leading 0 at both
/// ends), and the result loses the axis again. Bias and group carry over unchanged.
pub(super) fn as_2d(ctx: &NodeCtx) -> Result<Expansion, String> {
    let attrs: Vec<AttributeProto> = ctx
        .attrs
        .0
        .iter()
        .map(|a| {
            let mut a = a.clone();
            let lead = match a.name.as_str() {
                "kernel_shape" | "strides" | "dilations" | "output_shape" => Some(1),
                "output_padding" => Some(0),
                _ => None,
            };
            if let Some(lead) = lead {
                a.ints.insert(0, lead);
            } else if a.name == "pads" && a.ints.len() == 2 {
                a.ints = vec![0, a.ints[0], 0, a.ints[1]];
            }
            a
        })
        .chain(
            ctx.attrs
                .get("kernel_shape")
                .is_none()
                .then(|| {
                    let k = ctx.dims(1)?.get(2).copied()?;
                    Some(AttributeProto {
                        name: "kernel_shape".into(),
                        r#type: AttributeType::Ints as i32,
                        ints: vec![1, k as i64],
                        ..Default::default()
                    })
                })
                .flatten(),
        )
        .collect();
    let dims: Vec<Option<Vec<usize>>> = ctx
        .dims
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let d = d.as_ref()?;
            Some(match i {
                0 | 1 if d.len() == 3 => vec![d[0], d[1], 1, d[2]],
                _ => d.clone(),
            })
        })
        .collect();
    let flat = NodeCtx {
        attrs: Attrs(&attrs),
        dims: &dims,
        ..*ctx
    };
    let op = match ctx.op_type {
        "Conv" => conv(&flat)?,
        _ => conv_transpose(&flat)?,
    };
    let mut b = Builder::default();
    let axis = b.i64s(&[2]);
    let x = b.op(Op::Unsqueeze, &[Src::Input(0), axis]);
    let w = b.op(Op::Unsqueeze, &[Src::Input(1), axis]);
    let mut inputs = vec![x, w];
    if ctx.present(2) {
        inputs.push(Src::Input(2));
    }
    let y = b.op(op, &inputs);
    let y = b.op(Op::Squeeze, &[y, axis]);
    Ok(b.finish(vec![y]))
}

fn batch_norm(ctx: &NodeCtx) -> Result<Op, String> {
    if ctx.n_outputs > 1 {
        return Err("training outputs (running mean and variance) are not supported".into());
    }
    Ok(Op::BatchNorm {
        epsilon: ctx.attrs.float("epsilon", 1e-5)?,
    })
}
