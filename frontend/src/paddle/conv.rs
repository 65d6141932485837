//! Convolutions, normalization, pooling and interpolation: conv2d, depthwise_conv2d,
//! conv2d_transpose, deformable_conv, batch_norm, pool2d, nearest/bilinear interp.

use super::ctx::{Ctx, Family, Res};
use super::movement;
use temblor_ir::{
    ConvAttrs, ConvTransposeAttrs, DeformConvAttrs, Op, PoolAttrs, ResizeAttrs, ResizeCoordinate,
    ResizeMode, ResizeNearest, ValueRef, Weight,
};

pub(super) const FAMILY: Family = Family {
    ops: &[
        "conv2d",
        "depthwise_conv2d",
        "conv2d_transpose",
        "deformable_conv",
        "deformable_conv_v1",
        "batch_norm",
        "pool2d",
        "nearest_interp_v2",
        "bilinear_interp_v2",
        "nearest_interp",
        "bilinear_interp",
    ],
    map,
};

fn map(c: &mut Ctx) -> Res {
    if c.attrs.string_or("data_format", "NCHW")? == "NHWC"
        || c.attrs.string_or("data_layout", "NCHW")? == "NHWC"
    {
        return Err("the NHWC layout is not supported".into());
    }
    match c.op_type() {
        "conv2d" | "depthwise_conv2d" => conv(c),
        "conv2d_transpose" => conv_transpose(c),
        "deformable_conv" | "deformable_conv_v1" => deformable(c),
        "batch_norm" => {
            let x = c.input("X")?;
            let ins = [
                x,
                c.input("Scale")?,
                c.input("Bias")?,
                c.input("Mean")?,
                c.input("Variance")?,
            ];
            let epsilon = c.attrs.float_or("epsilon", 1e-5)?;
            let y = c.add(Op::BatchNorm { epsilon }, &ins);
            c.bind("Y", y)
        }
        "pool2d" => pool(c),
        _ => interp(c),
    }
}

fn pair(v: &[i64], what: &str) -> Result<[usize; 2], String> {
    match v {
        [a, b] if *a > 0 && *b > 0 => Ok([*a as usize, *b as usize]),
        [a] if *a > 0 => Ok([*a as usize; 2]),
        _ => Err(format!("{what} {v:?} is not two positive values")),
    }
}

/// The input's spatial extent the program declares, needed to resolve `SAME` padding.
fn declared_hw(c: &Ctx, param: &str) -> Res<Option<[usize; 2]>> {
    let var = super::args(c.op, param, false);
    let Some(var) = var.first() else {
        return Ok(None);
    };
    let ty = c.imp.declared_type(var)?;
    Ok(ty
        .shape
        .dims()
        .get(2..4)
        .and_then(|d| Some([d[0].known()?, d[1].known()?])))
}

/// Paddle's paddings (2 values, or 4 as top, bottom, left, right) and padding_algorithm, as the
/// IR's [top, left, bottom, right].
fn pads(
    c: &Ctx,
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
) -> Res<[usize; 4]> {
    match c.attrs.string_or("padding_algorithm", "EXPLICIT")?.as_str() {
        "VALID" => return Ok([0; 4]),
        "SAME" => {
            let hw = declared_hw(c, "Input")?.or(declared_hw(c, "X")?).ok_or(
                "padding_algorithm SAME needs the input's spatial size, which the program leaves open",
            )?;
            let mut p = [0usize; 4];
            for a in 0..2 {
                let out = hw[a].div_ceil(strides[a]);
                let span = (kernel[a] - 1) * dilations[a] + 1;
                let total = ((out - 1) * strides[a] + span).saturating_sub(hw[a]);
                p[a] = total / 2;
                p[a + 2] = total - total / 2;
            }
            return Ok(p);
        }
        _ => {}
    }
    let p = c.attrs.ints_or("paddings", &[0, 0])?;
    if p.iter().any(|&v| v < 0) {
        return Err(format!("paddings {p:?} are negative").into());
    }
    let p: Vec<usize> = p.iter().map(|&v| v as usize).collect();
    Ok(match p.as_slice() {
        [h, w] => [*h, *w, *h, *w],
        [t, b, l, r] => [*t, *l, *b, *r],
        _ => return Err(format!("paddings {p:?} are neither 2 nor 4 values").into()),
    })
}

/// The spatial kernel of a 4-D filter weight.
fn kernel(c: &Ctx, filter: temblor_ir::ValueRef) -> Res<[usize; 2]> {
    let w = c
        .weight(filter)
        .ok_or("the filter is computed at run time; only parameter filters are supported")?;
    match w.dims.as_slice() {
        [_, _, kh, kw] => Ok([*kh, *kw]),
        d => Err(format!("filter of shape {d:?} is not 4-D").into()),
    }
}

/// The window of a convolution: kernel, strides, dilations and IR-order pads.
struct Geometry {
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    pads: [usize; 4],
}

fn geometry(c: &Ctx, filter: temblor_ir::ValueRef) -> Res<Geometry> {
    let kernel = kernel(c, filter)?;
    let strides = pair(&c.attrs.ints_or("strides", &[1, 1])?, "strides")?;
    let dilations = pair(&c.attrs.ints_or("dilations", &[1, 1])?, "dilations")?;
    let pads = pads(c, kernel, strides, dilations)?;
    Ok(Geometry {
        kernel,
        strides,
        dilations,
        pads,
    })
}

fn group(c: &Ctx, name: &str) -> Res<usize> {
    let g = c.attrs.int_or(name, 1)?;
    usize::try_from(g)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| format!("{name} {g} is not positive").into())
}

fn conv(c: &mut Ctx) -> Res {
    let x = c.input("Input")?;
    let w = c.input("Filter")?;
    let Geometry {
        kernel,
        strides,
        dilations,
        pads,
    } = geometry(c, w)?;
    let group = group(c, "groups")?;
    let bias = c.opt_input("Bias")?;
    let id = c.node(
        Op::Conv(ConvAttrs {
            auto_pad: temblor_ir::AutoPad::NotSet,
            kernel,
            strides,
            dilations,
            pads,
            group,
            activation: None,
            affine: None,
        }),
        &[Some(x), Some(w), bias],
        1,
    );
    c.bind("Output", temblor_ir::ValueRef::new(id, 0))
}

fn conv_transpose(c: &mut Ctx) -> Res {
    let x = c.input("Input")?;
    let w = c.input("Filter")?;
    let Geometry {
        kernel,
        strides,
        dilations,
        pads,
    } = geometry(c, w)?;
    if !c.attrs.ints_or("output_size", &[])?.is_empty() {
        return Err(
            "conv2d_transpose with output_size is not supported; export with output_padding".into(),
        );
    }
    let op = c.attrs.ints_or("output_padding", &[0, 0])?;
    let output_padding = match op.as_slice() {
        [] => [0, 0],
        [a, b] if *a >= 0 && *b >= 0 => [*a as usize, *b as usize],
        _ => return Err(format!("output_padding {op:?} is not two values").into()),
    };
    let group = group(c, "groups")?;
    let bias = c.opt_input("Bias")?;
    let id = c.node(
        Op::ConvTranspose(ConvTransposeAttrs {
            kernel,
            strides,
            dilations,
            pads,
            output_padding,
            group,
            activation: None,
        }),
        &[Some(x), Some(w), bias],
        1,
    );
    c.bind("Output", temblor_ir::ValueRef::new(id, 0))
}

/// Paddle's offsets interleave (dy, dx) per kernel tap like ONNX DeformConv's, and the mask is
/// the modulation of DCNv2; bias comes as a separate add.
fn deformable(c: &mut Ctx) -> Res {
    let x = c.input("Input")?;
    let offset = c.input("Offset")?;
    let mask = c.opt_input("Mask")?;
    let w = c.input("Filter")?;
    let Geometry {
        kernel,
        strides,
        dilations,
        pads,
    } = geometry(c, w)?;
    let attrs = DeformConvAttrs {
        kernel,
        strides,
        dilations,
        pads,
        group: group(c, "groups")?,
        offset_group: group(c, "deformable_groups")?,
    };
    let id = c.node(
        Op::DeformConv(attrs),
        &[Some(x), Some(w), Some(offset), None, mask],
        1,
    );
    c.bind("Output", temblor_ir::ValueRef::new(id, 0))
}

fn pool(c: &mut Ctx) -> Res {
    let x = c.input("X")?;
    let max = match c.attrs.string_or("pooling_type", "max")?.as_str() {
        "max" => true,
        "avg" => false,
        other => return Err(format!("pooling_type '{other}' is not supported").into()),
    };
    let ksize = pair(&c.attrs.ints("ksize")?, "ksize")?;
    let global = c.attrs.bool_or("global_pooling", false)?
        || (c.attrs.bool_or("adaptive", false)? && ksize == [1, 1]);
    if global {
        let op = if max {
            Op::GlobalMaxPool
        } else {
            Op::GlobalAveragePool
        };
        let y = c.add(op, &[x]);
        return c.bind("Out", y);
    }
    if c.attrs.bool_or("adaptive", false)? {
        return Err(format!("adaptive pooling to {ksize:?} is not supported").into());
    }
    let strides = pair(&c.attrs.ints_or("strides", &[1, 1])?, "strides")?;
    let pads = pads(c, ksize, strides, [1, 1])?;
    let attrs = PoolAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        kernel: ksize.to_vec(),
        strides: strides.to_vec(),
        dilations: vec![1, 1],
        pads: pads.to_vec(),
        ceil_mode: c.attrs.bool_or("ceil_mode", false)?,
        count_include_pad: !c.attrs.bool_or("exclusive", true)?,
    };
    let y = c.add(
        if max {
            Op::MaxPool(attrs)
        } else {
            Op::AveragePool(attrs)
        },
        &[x],
    );
    c.bind("Out", y)
}

/// Paddle's nearest interpolation takes `floor(out_index * in / out)` without align_corners
/// (ONNX asymmetric + floor) and rounds with it; bilinear uses half pixels for align_mode 0 and
/// asymmetric coordinates for align_mode 1.
fn interp(c: &mut Ctx) -> Res {
    let x = c.input("X")?;
    for param in ["OutSize", "SizeTensor", "Scale"] {
        if c.has_input(param) {
            return Err(format!(
                "the output size comes from the tensor input '{param}'; only the scale and out_h/out_w attributes are supported"
            )
            .into());
        }
    }
    let nearest = c.op_type().starts_with("nearest");
    let align_corners = c.attrs.bool_or("align_corners", false)?;
    let align_mode = c.attrs.int_or("align_mode", 1)?;
    let coordinate = match (nearest, align_corners, align_mode) {
        (_, true, _) => ResizeCoordinate::AlignCorners,
        (true, false, _) | (false, false, 1) => ResizeCoordinate::Asymmetric,
        (false, false, _) => ResizeCoordinate::HalfPixel,
    };
    let scale = match c.attrs.has("scale") {
        true => c.attrs.floats("scale")?,
        false => Vec::new(),
    };
    // Paddle resizes H and W of an NCHW map: scales cover every axis, as paddle2onnx writes
    // them (so the twins' graphs agree), and sizes, whose N and C may be known only at run
    // time, the two axes `axes` names.
    let (port, operand, axes) = match scale.as_slice() {
        [s] if *s > 0.0 => (2, Weight::from_f32(vec![4], &[1.0, 1.0, *s, *s]), None),
        [h, w] if *h > 0.0 && *w > 0.0 => (2, Weight::from_f32(vec![4], &[1.0, 1.0, *h, *w]), None),
        _ => {
            let (h, w) = (c.attrs.int_or("out_h", -1)?, c.attrs.int_or("out_w", -1)?);
            if h <= 0 || w <= 0 {
                return Err("neither a scale nor out_h/out_w is given".into());
            }
            (3, Weight::from_i64(vec![2], &[h, w]), Some(vec![2, 3]))
        }
    };
    let mode = if nearest {
        ResizeMode::Nearest
    } else {
        ResizeMode::Linear
    };
    let rounding = if align_corners {
        ResizeNearest::RoundPreferCeil
    } else {
        ResizeNearest::Floor
    };
    let attrs = ResizeAttrs {
        axes,
        ..ResizeAttrs::new(mode, coordinate, rounding)
    };
    let operand = movement::constant(c, operand);
    let mut inputs = vec![Some(x), None, None, None];
    inputs[port] = Some(operand);
    let y = ValueRef::new(c.node(Op::Resize(attrs), &inputs, 1), 0);
    c.bind("Out", y)
}
