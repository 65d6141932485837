//! DeformSample (ops_lib_deform_sample, deform_sample.cu), DeformConv (that sampling into
//! scratch, then a grouped GEMM per image with the known weight and runtime_conv_epilogue for
//! the bias, as runtime/src/cpu/deform_conv.rs computes it) and bilinear, zero-padded 2-D
//! GridSample (ops_lib_grid_sample, grid_sample.cu).

use super::super::blas::{product, Matrix};
use super::super::conv::EpilogueParams;
use super::super::elementwise::ActivationParams;
use super::super::params::{self, Pod};
use super::super::{grid_stride, Arg, At, Buf, Cx, Lowering, Operand, Unsupported, Work};
use super::{check_output, f32_input, int};
use temblor_ir::{DeformConvAttrs, GridSampleMode, GridSamplePadding};

/// The most scratch DeformConv's sampled columns take at a time: the images past it take
/// turns.
const SCRATCH_BYTES: usize = 256 << 20;

/// deform_sample.cuh's `DeformParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct DeformParams {
    pub channels: i32,
    pub height: i32,
    pub width: i32,
    pub kernel_h: i32,
    pub kernel_w: i32,
    pub stride_h: i32,
    pub stride_w: i32,
    pub pad_top: i32,
    pub pad_left: i32,
    pub dilation_h: i32,
    pub dilation_w: i32,
    pub offset_groups: i32,
    pub out_h: i32,
    pub out_w: i32,
}

/// grid_sample.cuh's `GridSampleParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct GridSampleParams {
    pub channels: i32,
    pub height: i32,
    pub width: i32,
    pub out_h: i32,
    pub out_w: i32,
    pub align_corners: i32,
}

// SAFETY: repr(C), fourteen 4-byte fields.
unsafe impl Pod for DeformParams {}
// SAFETY: repr(C), six 4-byte fields.
unsafe impl Pod for GridSampleParams {}

/// The sampling of a deformable convolution: x (input 0) `[N, C, H, W]`, its offsets and
/// optional mask (their ports given), checked as the CPU kernel checks them.
struct Sampling {
    n: usize,
    p: DeformParams,
    offset: usize,
    mask: Option<usize>,
}

impl Sampling {
    fn new(
        a: &DeformConvAttrs,
        cx: &Cx,
        offset: usize,
        mask: Option<usize>,
    ) -> Result<Sampling, Unsupported> {
        let x = f32_input(cx, 0, 4, "the input")?;
        let &[n, c, h, w] = x.shape else {
            unreachable!("f32_input checked the rank")
        };
        let ([kh, kw], [sh, sw], [dh, dw]) = (a.kernel, a.strides, a.dilations);
        let og = a.offset_group;
        if og == 0 || c % og != 0 || [kh, kw, sh, sw, dh, dw].contains(&0) {
            return Err(Unsupported::new(format!(
                "{c} channels in {og} offset groups, kernel {:?}, strides {:?}, dilations {:?}",
                a.kernel, a.strides, a.dilations
            )));
        }
        let [pt, pl, pb, pr] = a.pads;
        let extent = |len: usize, p0: usize, p1: usize, k: usize, d: usize, s: usize| {
            (len + p0 + p1)
                .checked_sub(d * (k - 1) + 1)
                .map(|r| r / s + 1)
        };
        let (Some(oh), Some(ow)) = (extent(h, pt, pb, kh, dh, sh), extent(w, pl, pr, kw, dw, sw))
        else {
            return Err(Unsupported::new("an input smaller than the dilated kernel"));
        };
        let taps = kh * kw;
        let expect = |port: usize, what: &str, shape: [usize; 4]| {
            let t = f32_input(cx, port, 4, what)?;
            match t.shape == shape {
                true => Ok(()),
                false => Err(Unsupported::new(format!(
                    "{what} {:?}, expected {shape:?}",
                    t.shape
                ))),
            }
        };
        expect(offset, "offset", [n, og * taps * 2, oh, ow])?;
        if let Some(m) = mask {
            expect(m, "mask", [n, og * taps, oh, ow])?;
        }
        if h * w == 0 {
            // The kernel reads an outside corner as a zero weight on the plane's first value.
            return Err(Unsupported::new("an empty input plane"));
        }
        // Flat positions in a plane and the channel index of the output are ints in the kernel.
        int(h * w)?;
        int(c * taps)?;
        let p = DeformParams {
            channels: int(c)?,
            height: int(h)?,
            width: int(w)?,
            kernel_h: int(kh)?,
            kernel_w: int(kw)?,
            stride_h: int(sh)?,
            stride_w: int(sw)?,
            pad_top: int(pt)?,
            pad_left: int(pl)?,
            dilation_h: int(dh)?,
            dilation_w: int(dw)?,
            offset_groups: int(og)?,
            out_h: int(oh)?,
            out_w: int(ow)?,
        };
        Ok(Sampling { n, p, offset, mask })
    }

    fn c(&self) -> usize {
        self.p.channels as usize
    }

    fn taps(&self) -> usize {
        (self.p.kernel_h * self.p.kernel_w) as usize
    }

    fn plane(&self) -> usize {
        (self.p.out_h * self.p.out_w) as usize
    }

    /// Elements of one image's columns, `[C*kH*kW, oH*oW]`.
    fn per_image(&self) -> usize {
        self.c() * self.taps() * self.plane()
    }

    /// The sampling of `count` images from `first` into `to`.
    fn launch(&self, first: usize, count: usize, to: Buf) -> Work {
        let image = |port: usize, channels: usize| {
            Arg::Ptr(Buf::Input(port).offset(first * channels * self.plane() * 4))
        };
        let og_taps = self.p.offset_groups as usize * self.taps();
        let in_image = self.c() * (self.p.height * self.p.width) as usize;
        let args = vec![
            Arg::Ptr(Buf::Input(0).offset(first * in_image * 4)),
            image(self.offset, og_taps * 2),
            self.mask.map_or(Arg::Null, |m| image(m, og_taps)),
            Arg::I32(count as i32),
            Arg::Pod(params::bytes(&self.p)),
            Arg::Ptr(to.at()),
        ];
        Work::Launch(grid_stride(
            "ops_lib_deform_sample",
            count * self.per_image(),
            args,
        ))
    }
}

/// DeformSample: x, offset, optional mask; output `[N, C*kH*kW, oH, oW]`.
pub(super) fn deform_sample(a: &DeformConvAttrs, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let s = Sampling::new(a, cx, 1, cx.optional(2).map(|_| 2))?;
    let (c, taps, p) = (s.c(), s.taps(), s.p);
    check_output(cx, 0, &[s.n, c * taps, p.out_h as usize, p.out_w as usize])?;
    if s.n * s.per_image() == 0 {
        return Ok(Lowering::Work(Vec::new()));
    }
    int(s.n)?;
    Ok(Lowering::Work(vec![s.launch(0, s.n, Buf::Output(0))]))
}

/// DeformConv: x, weight `[O, C/group, kH, kW]` (known), offset, optional bias `[O]`, optional
/// mask; output `[N, O, oH, oW]`.
pub(super) fn deform_conv(a: &DeformConvAttrs, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let w = weight(cx)?;
    let s = Sampling::new(a, cx, 2, cx.optional(4).map(|_| 4))?;
    let (c, taps, plane) = (s.c(), s.taps(), s.plane());
    let &[o, cg, kh, kw] = w.shape else {
        unreachable!("f32_input checked the rank")
    };
    let g = a.group;
    if g == 0 || cg * g != c || o % g != 0 || [kh, kw] != a.kernel {
        return Err(Unsupported::new(format!(
            "{c} input channels, weight {:?}, group {g} and kernel {:?}",
            w.shape, a.kernel
        )));
    }
    let (oh, ow) = (s.p.out_h as usize, s.p.out_w as usize);
    check_output(cx, 0, &[s.n, o, oh, ow])?;
    let bias = cx.optional(3);
    if let Some(b) = bias {
        f32_input(cx, 3, 1, "the bias")?;
        if b.shape != [o] {
            return Err(Unsupported::new(format!(
                "bias {:?} for {o} channels",
                b.shape
            )));
        }
    }
    let total = s.n * o * plane;
    if total == 0 {
        return Ok(Lowering::Work(Vec::new()));
    }
    if cg * taps == 0 {
        // No columns to multiply: the output is the bias alone, which the CPU's GEMM leaves.
        return Err(Unsupported::new("a convolution over no input elements"));
    }
    let per_image = s.per_image();
    let images = (SCRATCH_BYTES / 4 / per_image).clamp(1, s.n);
    int(images)?;
    let cols = cx.scratch(images * per_image * 4);
    let (og, kdim) = (o / g, cg * taps);
    let mut work = Vec::new();
    for first in (0..s.n).step_by(images) {
        let count = images.min(s.n - first);
        work.push(s.launch(first, count, cols));
        let out = Buf::Output(0).offset(first * o * plane * 4);
        work.extend(products(
            [og, plane, kdim],
            [count, g],
            cols,
            out,
            [c * taps, o],
        ));
    }
    if bias.is_some() {
        let ep = EpilogueParams {
            act: ActivationParams {
                kind: 0,
                alpha: 0.0,
                beta: 0.0,
            },
            has_affine: 0,
            scale: 1.0,
            shift: 0.0,
            channels: int(o)?,
            pad: 0,
            plane: plane as i64,
        };
        let args = vec![
            Arg::Ptr(Buf::Output(0).at()),
            Arg::Ptr(Buf::Input(3).at()),
            Arg::Null,
            Arg::I64(total as i64),
            Arg::Pod(params::bytes(&ep)),
        ];
        work.push(Work::Launch(grid_stride(
            "runtime_conv_epilogue",
            total,
            args,
        )));
    }
    Ok(Lowering::Work(work))
}

/// The weight (input 1), f32 `[O, C/group, kH, kW]` and known before the run.
fn weight<'a>(cx: &Cx<'a>) -> Result<Operand<'a>, Unsupported> {
    let w = f32_input(cx, 1, 4, "the weight")?;
    match w.known {
        Some(_) => Ok(w),
        None => Err(Unsupported::new("a weight computed in the run")),
    }
}

/// Per image of `count` and group of `g`, weight rows `[og, kdim]` times the group's columns
/// `[kdim, plane]` into the group's output channels: one GEMM batched over the images when
/// there is one group (the weight shared), else one per image batched over the groups.
/// `[rows, o]` are the column rows and output channels of one image.
fn products(
    [og, plane, kdim]: [usize; 3],
    [count, g]: [usize; 2],
    cols: Buf,
    out: At,
    [rows, o]: [usize; 2],
) -> Vec<Work> {
    let weight = |stride| Matrix::rows(Buf::Input(1).at(), kdim, stride);
    let shifted = |at: At, elements: usize| at.buf.offset(at.bytes + elements * 4);
    if g == 1 {
        let b = Matrix::rows(cols.at(), plane, rows * plane);
        let c = Matrix::rows(out, plane, o * plane);
        let gemm = product([og, plane, kdim], count, [weight(0), b, c], (1.0, 0.0));
        return vec![Work::Gemm(gemm)];
    }
    (0..count)
        .map(|i| {
            let b = Matrix::rows(shifted(cols.at(), i * rows * plane), plane, kdim * plane);
            let c = Matrix::rows(shifted(out, i * o * plane), plane, og * plane);
            let gemm = product([og, plane, kdim], g, [weight(og * kdim), b, c], (1.0, 0.0));
            Work::Gemm(gemm)
        })
        .collect()
}

/// GridSample, bilinear with zeros padding over 2-D maps: x `[N, C, H, W]`, grid
/// `[N, oH, oW, 2]`; output `[N, C, oH, oW]`.
pub(super) fn grid_sample(
    mode: GridSampleMode,
    padding: GridSamplePadding,
    align_corners: bool,
    cx: &mut Cx,
) -> Result<Lowering, Unsupported> {
    if mode != GridSampleMode::Linear || padding != GridSamplePadding::Zeros {
        return Err(Unsupported::new(format!(
            "{mode:?} sampling with {padding:?} padding: the kernel is bilinear with zeros"
        )));
    }
    let x = f32_input(cx, 0, 4, "the input (2-D maps only)")?;
    let &[n, c, h, w] = x.shape else {
        unreachable!("f32_input checked the rank")
    };
    let grid = f32_input(cx, 1, 4, "the grid")?;
    let &[gn, oh, ow, two] = grid.shape else {
        unreachable!("f32_input checked the rank")
    };
    if gn != n || two != 2 {
        return Err(Unsupported::new(format!(
            "grid {:?} for input {:?}",
            grid.shape, x.shape
        )));
    }
    check_output(cx, 0, &[n, c, oh, ow])?;
    let total = n * c * oh * ow;
    if total == 0 {
        return Ok(Lowering::Work(Vec::new()));
    }
    int(h * w)?;
    let p = GridSampleParams {
        channels: int(c)?,
        height: int(h)?,
        width: int(w)?,
        out_h: int(oh)?,
        out_w: int(ow)?,
        align_corners: i32::from(align_corners),
    };
    let args = vec![
        Arg::Ptr(Buf::Input(0).at()),
        Arg::Ptr(Buf::Input(1).at()),
        Arg::I32(int(n)?),
        Arg::Pod(params::bytes(&p)),
        Arg::Ptr(Buf::Output(0).at()),
    ];
    Ok(Lowering::Work(vec![Work::Launch(grid_stride(
        "ops_lib_grid_sample",
        total,
        args,
    ))]))
}
