//! Convolutions on the GPU (f32, 2-D, NCHW), with the semantics of runtime/src/cpu/conv.rs and
//! conv_transpose.rs:
//! - Conv with one input channel per group (depthwise): a direct kernel, one thread per output
//!   element, with the fused epilogue (`runtime_depthwise_conv`): no GEMM has anything to reuse.
//! - Any other Conv: per image and group the product `W[og x cg·kh·kw] · cols[cg·kh·kw x oh·ow]`,
//!   `cols` being the input planes themselves for a 1x1 stride-1 unpadded convolution and
//!   im2col's (`runtime_im2col`) in scratch otherwise, batched over images (one group, the weight
//!   shared) or over groups; then the epilogue `affine(act(acc + bias + residual))` in place
//!   (`runtime_conv_epilogue`, activation.cu) when there is one.
//! - ConvTranspose: per image and group `W^T[og·kh·kw x cg] · x[cg x h·w]`, every input pixel's
//!   contribution to every tap, into scratch; col2im (`runtime_col2im`) gathers each output
//!   element's contributions onto its bias and applies the activation.
//!
//! An f16 Conv (f16 input, weight, bias, residual and output: a half region) is the same on the
//! tensor cores ([`conv_half`]): f16 columns (`runtime_im2col_2`), f16 x f16 GEMMs summing in
//! f32 into f32 scratch, the f32 epilogue there, and one cast to f16. A product of halves is
//! exact in f32, so this computes what the CPU does on widened values up to summation order, as
//! the f32 lowering does. A depthwise f16 Conv is left to the widening of `half.rs`.
//!
//! im2col's columns and the contributions are made for as many images at a time as fit
//! [`SCRATCH_BYTES`]. SAME pads are resolved for the input as the CPU resolves them. A weight
//! computed in the run stays on the CPU.

use super::blas::{product, Matrix};
use super::elementwise::ActivationParams;
use super::half;
use super::params::{self, layout, Layout, Pod};
use super::{grid_stride, Arg, Buf, Cx, Gemm, GemmInputs, Lowering, Operand, Unsupported, Work};
use temblor_ir::{Activation, Affine, AutoPad, ConvAttrs, ConvTransposeAttrs, DType};

/// The most scratch a convolution's columns take at a time: the images past it take turns.
const SCRATCH_BYTES: usize = 256 << 20;

/// activation.cuh's `EpilogueParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct EpilogueParams {
    pub act: ActivationParams,
    pub has_affine: i32,
    pub scale: f32,
    pub shift: f32,
    pub channels: i32,
    /// The 4 bytes that align `plane`, a field so that every byte of the mirror is one.
    pub pad: i32,
    pub plane: i64,
}

/// conv.cuh's `ConvAxisParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct ConvAxisParams {
    pub input: i32,
    pub output: i32,
    pub kernel: i32,
    pub stride: i32,
    pub dilation: i32,
    pub pad: i32,
}

/// conv.cuh's `ConvParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct ConvParams {
    pub h: ConvAxisParams,
    pub w: ConvAxisParams,
    pub channels: i32,
    pub out_channels: i32,
    pub group_out: i32,
    pub groups: i32,
}

// SAFETY: repr(C), nine 4-byte fields (`act`'s three among them) then an 8-byte one at 32.
unsafe impl Pod for EpilogueParams {}
// SAFETY: repr(C), six 4-byte fields.
unsafe impl Pod for ConvAxisParams {}
// SAFETY: repr(C), two 24-byte mirrors of 4-byte fields, then four 4-byte fields.
unsafe impl Pod for ConvParams {}

pub(super) const LAYOUTS: &[Layout] = &[
    layout!(
        EpilogueParams,
        "EpilogueParams",
        [act, has_affine, scale, shift, channels, pad, plane]
    ),
    layout!(
        ConvAxisParams,
        "ConvAxisParams",
        [input, output, kernel, stride, dilation, pad]
    ),
    layout!(
        ConvParams,
        "ConvParams",
        [h, w, channels, out_channels, group_out, groups]
    ),
];

fn int(v: usize) -> Result<i32, Unsupported> {
    i32::try_from(v).map_err(|_| Unsupported::new(format!("an extent of {v}, past i32")))
}

/// The epilogue `affine(act(x))` (activation.cuh's `rt_epilogue_at`) of an output of `channels`
/// planes of `plane` elements.
fn epilogue(
    act: Option<Activation>,
    affine: Option<Affine>,
    channels: usize,
    plane: usize,
) -> Result<EpilogueParams, Unsupported> {
    // activation.cuh's `RtActivation` codes.
    let (kind, alpha, beta) = match act {
        None => (0, 0.0, 0.0),
        Some(Activation::Relu) => (1, 0.0, 0.0),
        Some(Activation::LeakyRelu { alpha }) => (2, alpha, 0.0),
        Some(Activation::Sigmoid) => (3, 0.0, 0.0),
        Some(Activation::Silu) => (4, 0.0, 0.0),
        Some(Activation::HardSwish) => (5, 0.0, 0.0),
        Some(Activation::HardSigmoid { alpha, beta }) => (6, alpha, beta),
        Some(Activation::Clip { min, max }) => (9, min, max),
        Some(Activation::Mish) => (11, 0.0, 0.0),
    };
    let (scale, shift) = affine.map_or((1.0, -0.0), |a| (a.scale, a.shift));
    Ok(EpilogueParams {
        act: ActivationParams { kind, alpha, beta },
        has_affine: i32::from(affine.is_some()),
        scale,
        shift,
        channels: int(channels)?,
        pad: 0,
        plane: plane as i64,
    })
}

/// The sizes of a convolution, whose output position `o` reads input position
/// `o·stride + tap·dilation - pad` along `h` and `w`, or of a transposed one, whose input
/// position `y` writes output position `y·stride + tap·dilation - pad`.
struct Geometry {
    n: usize,
    c: usize,
    o: usize,
    group: usize,
    h: ConvAxisParams,
    w: ConvAxisParams,
}

impl Geometry {
    fn params(&self) -> Result<ConvParams, Unsupported> {
        Ok(ConvParams {
            h: self.h,
            w: self.w,
            channels: int(self.c)?,
            out_channels: int(self.o)?,
            group_out: int(self.o / self.group)?,
            groups: int(self.group)?,
        })
    }

    fn extents(&self) -> [usize; 4] {
        [self.h.input, self.w.input, self.h.output, self.w.output].map(|v| v as usize)
    }
}

/// An axis of a window `kernel`, checked against the weight's extent `weight`, with the
/// output extent `output(input)` gives (`None`: no output).
fn axis(
    [input, kernel, weight, stride, dilation, pad]: [usize; 6],
    output: impl Fn(usize) -> Option<usize>,
) -> Result<ConvAxisParams, Unsupported> {
    if kernel != weight || kernel == 0 || stride == 0 || dilation == 0 || input == 0 {
        return Err(Unsupported::new(format!(
            "kernel {kernel} (weight {weight}), stride {stride}, dilation {dilation} \
             over {input}"
        )));
    }
    let output = output(input).ok_or_else(|| Unsupported::new("a window with no output"))?;
    Ok(ConvAxisParams {
        input: int(input)?,
        output: int(output)?,
        kernel: int(kernel)?,
        stride: int(stride)?,
        dilation: int(dilation)?,
        pad: int(pad)?,
    })
}

/// The pointer argument of optional input `port`, null when it is absent.
fn optional_ptr(operand: Option<Operand>, port: usize) -> Arg {
    operand.map_or(Arg::Null, |_| Arg::Ptr(Buf::Input(port).at()))
}

/// Checks the output's shape and an optional `[channels]` bias (input 2).
fn check_output(cx: &Cx, shape: [usize; 4]) -> Result<(), Unsupported> {
    let out = cx.output(0).shape;
    if out != shape {
        return Err(Unsupported::new(format!(
            "output {out:?}, expected {shape:?}"
        )));
    }
    match cx.optional(2) {
        Some(b) if b.shape != [shape[1]] => Err(Unsupported::new(format!("bias {:?}", b.shape))),
        _ => Ok(()),
    }
}

/// The weight (input 1), which must be known before the run.
fn weight<'a>(cx: &Cx<'a>) -> Result<Operand<'a>, Unsupported> {
    let w = cx.input(1)?;
    match w.known {
        Some(_) => Ok(w),
        None => Err(Unsupported::new("a weight computed in the run")),
    }
}

/// How many images' columns of `per_image` elements of `bytes` each fit the scratch, at least
/// one.
fn chunk(n: usize, per_image: usize, bytes: usize) -> usize {
    (SCRATCH_BYTES / bytes / per_image.max(1)).clamp(1, n)
}

/// One product `[m, n, k]` per image of `images` and group of `groups`, batched over images
/// when there is one group (the weight shared, stride 0) and over groups otherwise. `[a, b, c]`
/// are entry (0, 0)'s operands (`a` and `b` of `inputs`, `c` f32), `a_group` the weight's step
/// per group, `b_steps` and `c_steps` the others' steps per image and per group.
fn per_image_and_group(
    (mnk, inputs): ([usize; 3], GemmInputs),
    [images, groups]: [usize; 2],
    [a, b, c]: [Matrix; 3],
    a_group: usize,
    [b_steps, c_steps]: [[usize; 2]; 2],
) -> Vec<Work> {
    let with = |m: Matrix, image: usize, steps: [usize; 2], per_group: bool, bytes: usize| Matrix {
        at: m.at.buf.offset(m.at.bytes + image * steps[0] * bytes),
        stride: steps[usize::from(per_group)],
        ..m
    };
    let gemm = |batch, operands| {
        Work::Gemm(Gemm {
            inputs,
            ..product(mnk, batch, operands, (1.0, 0.0))
        })
    };
    let size = inputs.size_bytes();
    if groups == 1 {
        let a = Matrix { stride: 0, ..a };
        let (b, c) = (
            with(b, 0, b_steps, false, size),
            with(c, 0, c_steps, false, 4),
        );
        return vec![gemm(images, [a, b, c])];
    }
    let a = Matrix {
        stride: a_group,
        ..a
    };
    (0..images)
        .map(|i| {
            let (b, c) = (
                with(b, i, b_steps, true, size),
                with(c, i, c_steps, true, 4),
            );
            gemm(groups, [a, b, c])
        })
        .collect()
}

/// A Conv's checked sizes and epilogue.
struct ConvPlan {
    geo: Geometry,
    p: ConvParams,
    ep: EpilogueParams,
    /// The output's elements.
    total: usize,
    /// Whether there is anything for the epilogue to do.
    finished: bool,
}

/// ONNX Conv with its fused epilogue: input 0 `[N, C, H, W]`, weight 1 `[O, C/group, kh, kw]`,
/// optional bias 2 `[O]` and residual 3 (the output's shape), whatever their element type.
fn plan(a: &ConvAttrs, cx: &Cx) -> Result<ConvPlan, Unsupported> {
    let (x, w) = (cx.input(0)?, weight(cx)?);
    let (&[n, c, h, wd], &[o, cg, kh, kw]) = (x.shape, w.shape) else {
        return Err(Unsupported::new(format!(
            "Conv of {:?} by {:?}, not 2-D",
            x.shape, w.shape
        )));
    };
    let a = match a.auto_pad {
        AutoPad::NotSet => a.clone(),
        _ => a.resolved([h, wd]),
    };
    let g = a.group;
    if g == 0 || cg == 0 || cg * g != c || o % g != 0 {
        return Err(Unsupported::new(format!(
            "{c} input channels, weight {:?} and group {g}",
            w.shape
        )));
    }
    let [pt, pl, pb, pr] = a.pads;
    let out = |[k, d, s, p0, p1]: [usize; 5]| {
        move |len: usize| {
            (len + p0 + p1)
                .checked_sub(d * (k - 1) + 1)
                .map(|r| r / s + 1)
        }
    };
    let [sh, sw] = a.strides;
    let [dh, dw] = a.dilations;
    let geo = Geometry {
        n,
        c,
        o,
        group: g,
        h: axis([h, a.kernel[0], kh, sh, dh, pt], out([kh, dh, sh, pt, pb]))?,
        w: axis([wd, a.kernel[1], kw, sw, dw, pl], out([kw, dw, sw, pl, pr]))?,
    };
    let [_, _, oh, ow] = geo.extents();
    check_output(cx, [n, o, oh, ow])?;
    let (bias, residual) = (cx.optional(2), cx.optional(3));
    if let Some(r) = residual.filter(|r| r.shape != [n, o, oh, ow]) {
        return Err(Unsupported::new(format!("residual {:?}", r.shape)));
    }
    Ok(ConvPlan {
        p: geo.params()?,
        ep: epilogue(a.activation, a.affine, o, oh * ow)?,
        total: n * o * oh * ow,
        finished: bias.is_some() || residual.is_some() || a.activation.is_some(),
        geo,
    })
}

/// The epilogue in place on the f32 output `out`, with f32 `bias` and `residual` (null when
/// absent).
fn epilogue_launch(plan: &ConvPlan, out: Buf, [bias, residual]: [Arg; 2]) -> Work {
    let args = vec![
        Arg::Ptr(out.at()),
        bias,
        residual,
        Arg::I64(plan.total as i64),
        Arg::Pod(params::bytes(&plan.ep)),
    ];
    Work::Launch(grid_stride("runtime_conv_epilogue", plan.total, args))
}

/// An f32 Conv, see [`plan`].
pub(super) fn conv(a: &ConvAttrs, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    cx.all_f32()?;
    let plan = plan(a, cx)?;
    if plan.total == 0 {
        return Ok(Lowering::Work(Vec::new()));
    }
    let (bias_arg, residual_arg) = (
        optional_ptr(cx.optional(2), 2),
        optional_ptr(cx.optional(3), 3),
    );
    if plan.geo.c == plan.geo.group {
        let args = vec![
            Arg::Ptr(Buf::Input(0).at()),
            Arg::Ptr(Buf::Input(1).at()),
            bias_arg,
            residual_arg,
            Arg::I64(plan.total as i64),
            Arg::Pod(params::bytes(&plan.p)),
            Arg::Pod(params::bytes(&plan.ep)),
            Arg::Ptr(Buf::Output(0).at()),
        ];
        let launch = grid_stride("runtime_depthwise_conv", plan.total, args);
        return Ok(Lowering::Work(vec![Work::Launch(launch)]));
    }
    let mut work = conv_products(&plan.geo, &plan.p, GemmInputs::F32, Buf::Output(0), cx);
    if plan.finished {
        work.push(epilogue_launch(
            &plan,
            Buf::Output(0),
            [bias_arg, residual_arg],
        ));
    }
    Ok(Lowering::Work(work))
}

/// An f16 Conv on the tensor cores, see the module documentation; [`plan`] for its operands.
pub(super) fn conv_half(a: &ConvAttrs, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let ins = (0..cx.input_count()).filter_map(|p| cx.optional(p));
    if let Some(o) = ins.chain([cx.output(0)]).find(|o| o.dtype != DType::F16) {
        return Err(Unsupported::new(format!(
            "a half Conv with {:?} operands",
            o.dtype
        )));
    }
    let plan = plan(a, cx)?;
    if plan.geo.c == plan.geo.group {
        return Err(Unsupported::new(
            "a depthwise f16 Conv, whose direct kernel is f32",
        ));
    }
    if plan.total == 0 {
        return Ok(Lowering::Work(Vec::new()));
    }
    let mut work = Vec::new();
    let [bias, residual] = [2, 3].map(|port| match cx.optional(port) {
        Some(o) => Arg::Ptr(half::f32_input(cx, port, o, &mut work).at()),
        None => Arg::Null,
    });
    let acc = cx.scratch(plan.total * 4);
    work.extend(conv_products(&plan.geo, &plan.p, GemmInputs::F16, acc, cx));
    if plan.finished {
        work.push(epilogue_launch(&plan, acc, [bias, residual]));
    }
    let narrow = half::cast(
        DType::F32,
        DType::F16,
        acc.at(),
        Buf::Output(0).at(),
        plan.total,
    );
    work.push(narrow);
    Ok(Lowering::Work(work))
}

/// The GEMMs of a convolution (and im2col before them), see the module documentation: the
/// input and weight of `inputs`, into the f32 `out`.
fn conv_products(
    geo: &Geometry,
    p: &ConvParams,
    inputs: GemmInputs,
    out: Buf,
    cx: &mut Cx,
) -> Vec<Work> {
    let (n, c, o, g) = (geo.n, geo.c, geo.o, geo.group);
    let [h, wd, oh, ow] = geo.extents();
    let (taps, plane) = ((p.h.kernel * p.w.kernel) as usize, oh * ow);
    let (cg, og) = (c / g, o / g);
    let kdim = cg * taps;
    let mnk = ([og, plane, kdim], inputs);
    let size = inputs.size_bytes();
    let weight = Matrix::rows(Buf::Input(1).at(), kdim, 0);
    let out_steps = [o * plane, og * plane];
    let pointwise = taps == 1
        && (p.h.stride, p.w.stride, p.h.pad, p.w.pad) == (1, 1, 0, 0)
        && (oh, ow) == (h, wd);
    if pointwise {
        let b = Matrix::rows(Buf::Input(0).at(), plane, 0);
        let out = Matrix::rows(out.at(), plane, 0);
        let steps = [[c * plane, cg * plane], out_steps];
        return per_image_and_group(mnk, [n, g], [weight, b, out], og * kdim, steps);
    }
    let per_image = c * taps * plane;
    let images = chunk(n, per_image, size);
    let cols = cx.scratch(images * per_image * size);
    let im2col = match inputs {
        GemmInputs::F32 => "runtime_im2col",
        GemmInputs::F16 => "runtime_im2col_2",
    };
    let mut work = Vec::new();
    for first in (0..n).step_by(images) {
        let count = images.min(n - first);
        let args = vec![
            Arg::Ptr(Buf::Input(0).offset(first * c * h * wd * size)),
            Arg::I64((count * per_image) as i64),
            Arg::Pod(params::bytes(p)),
            Arg::Ptr(cols.at()),
        ];
        work.push(Work::Launch(grid_stride(im2col, count * per_image, args)));
        let b = Matrix::rows(cols.at(), plane, 0);
        let out = Matrix::rows(out.offset(first * o * plane * 4), plane, 0);
        let steps = [[per_image, kdim * plane], out_steps];
        let products = per_image_and_group(mnk, [count, g], [weight, b, out], og * kdim, steps);
        work.extend(products);
    }
    work
}

/// ONNX ConvTranspose with its fused activation: input 0 `[N, C, H, W]`, weight 1
/// `[C, O/group, kh, kw]`, optional bias 2 `[O]`; explicit pads and output padding.
pub(super) fn conv_transpose(a: &ConvTransposeAttrs, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    cx.all_f32()?;
    let (x, w) = (cx.input(0)?, weight(cx)?);
    let (&[n, c, h, wd], &[wc, og, kh, kw]) = (x.shape, w.shape) else {
        return Err(Unsupported::new(format!(
            "ConvTranspose of {:?} by {:?}, not 2-D",
            x.shape, w.shape
        )));
    };
    let g = a.group;
    if g == 0 || c == 0 || wc != c || c % g != 0 {
        return Err(Unsupported::new(format!(
            "{c} input channels, weight {:?} and group {g}",
            w.shape
        )));
    }
    let [pt, pl, pb, pr] = a.pads;
    let [oph, opw] = a.output_padding;
    let out = |[k, d, s, op, p0, p1]: [usize; 6]| {
        move |len: usize| {
            let full = s * (len - 1) + op + d * (k - 1) + 1;
            full.checked_sub(p0 + p1).filter(|&e| e > 0)
        }
    };
    let [sh, sw] = a.strides;
    let [dh, dw] = a.dilations;
    let geo = Geometry {
        n,
        c,
        o: og * g,
        group: g,
        h: axis(
            [h, a.kernel[0], kh, sh, dh, pt],
            out([kh, dh, sh, oph, pt, pb]),
        )?,
        w: axis(
            [wd, a.kernel[1], kw, sw, dw, pl],
            out([kw, dw, sw, opw, pl, pr]),
        )?,
    };
    let o = geo.o;
    let [_, _, oh, ow] = geo.extents();
    check_output(cx, [n, o, oh, ow])?;
    let ep = epilogue(a.activation, None, o, oh * ow)?;
    if n * o == 0 {
        return Ok(Lowering::Work(Vec::new()));
    }
    let p = geo.params()?;
    let (cg, in_plane, out_plane) = (c / g, h * wd, oh * ow);
    let rows = og * kh * kw;
    let weight = Matrix {
        at: Buf::Input(1).at(),
        ld: rows,
        transposed: true,
        stride: 0,
    };
    let per_image = g * rows * in_plane;
    let images = chunk(n, per_image, 4);
    let cols = cx.scratch(images * per_image * 4);
    let bias = optional_ptr(cx.optional(2), 2);
    let mut work = Vec::new();
    for first in (0..n).step_by(images) {
        let count = images.min(n - first);
        let b = Matrix::rows(Buf::Input(0).offset(first * c * in_plane * 4), in_plane, 0);
        let contributions = Matrix::rows(cols.at(), in_plane, 0);
        let steps = [[c * in_plane, cg * in_plane], [per_image, rows * in_plane]];
        let operands = [weight, b, contributions];
        work.extend(per_image_and_group(
            ([rows, in_plane, cg], GemmInputs::F32),
            [count, g],
            operands,
            cg * rows,
            steps,
        ));
        let elements = count * o * out_plane;
        let args = vec![
            Arg::Ptr(cols.at()),
            bias.clone(),
            Arg::I64(elements as i64),
            Arg::Pod(params::bytes(&p)),
            Arg::Pod(params::bytes(&ep)),
            Arg::Ptr(Buf::Output(0).offset(first * o * out_plane * 4)),
        ];
        work.push(Work::Launch(grid_stride("runtime_col2im", elements, args)));
    }
    Ok(Lowering::Work(work))
}

#[cfg(test)]
mod tests;
