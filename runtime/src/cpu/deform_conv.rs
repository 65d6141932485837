//! Deformable convolution (ONNX DeformConv 19, deformable conv v2): each kernel tap reads the
//! input at its regular position moved by a learned offset, bilinearly interpolated with zeros
//! outside the map and scaled by an optional mask. The taps are gathered into a deformable
//! im2col matrix, and one GEMM per image and group does the rest, as for Conv. DeformSample is
//! that matrix alone, one per image, as a tensor.

use super::conv::{bias_values, dims4, init_output};
use super::gemm::matmul;
use super::{check_window, f32s};
use crate::RuntimeError;
use crate::Tensor;
use rayon::prelude::*;
use temblor_ir::DeformConvAttrs;

/// A bilinear read of one plane: four flat positions and their weights, the mask folded in.
/// Corners outside the plane have weight zero. Positions are 32-bit to halve the memory the
/// taps stream through; `execute` refuses larger planes.
#[derive(Clone, Copy, Default)]
struct Tap {
    pos: [u32; 4],
    w: [f32; 4],
}

impl Tap {
    fn at(y: f32, x: f32, height: usize, width: usize, scale: f32) -> Tap {
        let (h, w) = (height as f32, width as f32);
        if !(y > -1.0 && y < h && x > -1.0 && x < w) {
            return Tap::default();
        }
        let (y0, x0) = (y.floor(), x.floor());
        let (ly, lx) = (y - y0, x - x0);
        let (hy, hx) = (1.0 - ly, 1.0 - lx);
        let mut tap = Tap::default();
        let corners = [
            (y0, x0, hy * hx),
            (y0, x0 + 1.0, hy * lx),
            (y0 + 1.0, x0, ly * hx),
            (y0 + 1.0, x0 + 1.0, ly * lx),
        ];
        for (i, (cy, cx, cw)) in corners.into_iter().enumerate() {
            if cy >= 0.0 && cy < h && cx >= 0.0 && cx < w {
                tap.pos[i] = (cy as usize * width + cx as usize) as u32;
                tap.w[i] = cw * scale;
            }
        }
        tap
    }

    fn read(&self, plane: &[f32]) -> f32 {
        self.w[0] * plane[self.pos[0] as usize]
            + self.w[1] * plane[self.pos[1] as usize]
            + self.w[2] * plane[self.pos[2] as usize]
            + self.w[3] * plane[self.pos[3] as usize]
    }
}

/// Extents of one deformable convolution, checked against each other.
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    offset_groups: usize,
}

impl Geometry {
    fn taps(&self) -> usize {
        self.kh * self.kw
    }

    fn plane(&self) -> usize {
        self.oh * self.ow
    }
}

/// The taps of kernel position `(ki, kj)` at every output position, for offset group `og` of
/// image `b`.
fn kernel_taps(
    a: &DeformConvAttrs,
    geo: &Geometry,
    offset: &[f32],
    mask: Option<&[f32]>,
    (b, og): (usize, usize),
    (ki, kj): (usize, usize),
) -> Vec<Tap> {
    let plane = geo.plane();
    let k = ki * geo.kw + kj;
    let off_base = ((b * geo.offset_groups + og) * geo.taps() + k) * 2 * plane;
    let (dy, dx) = (
        &offset[off_base..off_base + plane],
        &offset[off_base + plane..off_base + 2 * plane],
    );
    let mask = mask.map(|m| &m[((b * geo.offset_groups + og) * geo.taps() + k) * plane..][..plane]);
    let mut taps = Vec::with_capacity(plane);
    for i in 0..geo.oh {
        let base_y = (i * a.strides[0] + ki * a.dilations[0]) as f32 - a.pads[0] as f32;
        for j in 0..geo.ow {
            let base_x = (j * a.strides[1] + kj * a.dilations[1]) as f32 - a.pads[1] as f32;
            let p = i * geo.ow + j;
            let scale = mask.map_or(1.0, |m| m[p]);
            taps.push(Tap::at(base_y + dy[p], base_x + dx[p], geo.h, geo.w, scale));
        }
    }
    taps
}

/// The deformable receptive fields of image `b` as a `[c*kh*kw, oh*ow]` matrix.
fn deformable_im2col(
    a: &DeformConvAttrs,
    geo: &Geometry,
    image: &[f32],
    offset: &[f32],
    mask: Option<&[f32]>,
    b: usize,
    col: &mut [f32],
) {
    let (plane, kk, hw) = (geo.plane(), geo.taps(), geo.h * geo.w);
    let per_group = geo.c / geo.offset_groups;
    for og in 0..geo.offset_groups {
        let rows = &mut col[og * per_group * kk * plane..(og + 1) * per_group * kk * plane];
        // One kernel position at a time, so its taps stay in cache while every channel of the
        // group reads them.
        for k in 0..kk {
            let taps = kernel_taps(a, geo, offset, mask, (b, og), (k / geo.kw, k % geo.kw));
            rows.par_chunks_mut(kk * plane)
                .enumerate()
                .for_each(|(ci, dst)| {
                    let src = &image[(og * per_group + ci) * hw..][..hw];
                    for (d, t) in dst[k * plane..(k + 1) * plane].iter_mut().zip(&taps) {
                        *d = t.read(src);
                    }
                });
        }
    }
}

fn bad(msg: String) -> RuntimeError {
    RuntimeError::bad_input(msg)
}

/// The sampling operands of a deformable convolution, checked against each other and the
/// attributes' window.
struct Sampling<'a> {
    geo: Geometry,
    x: &'a [f32],
    offset: &'a [f32],
    mask: Option<&'a [f32]>,
}

impl<'a> Sampling<'a> {
    fn new(
        a: &DeformConvAttrs,
        x: &'a Tensor,
        offset: &'a Tensor,
        mask: Option<&'a Tensor>,
    ) -> Result<Sampling<'a>, RuntimeError> {
        let [n, c, h, wd] = dims4(x, "input")?;
        let [kh, kw] = a.kernel;
        let og = a.offset_group;
        if og == 0 || c % og != 0 {
            return Err(bad(format!(
                "{c} input channels do not divide into {og} offset groups"
            )));
        }
        if a.strides.contains(&0) || a.dilations.contains(&0) {
            return Err(bad("strides and dilations must be positive".into()));
        }
        if u32::try_from(h * wd).is_err() {
            return Err(RuntimeError::unsupported(format!(
                "input planes of {h}x{wd} are too large for a deformable convolution"
            )));
        }
        let extent = |len: usize, p0: usize, p1: usize, k: usize, d: usize, s: usize| {
            (len + p0 + p1)
                .checked_sub(d * (k.max(1) - 1) + 1)
                .map(|r| r / s + 1)
        };
        let [pt, pl, pb, pr] = a.pads;
        let (Some(oh), Some(ow)) = (
            extent(h, pt, pb, kh, a.dilations[0], a.strides[0]),
            extent(wd, pl, pr, kw, a.dilations[1], a.strides[1]),
        ) else {
            return Err(bad(format!(
                "input {:?} is smaller than the dilated kernel {:?}",
                x.shape, a.kernel
            )));
        };
        let geo = Geometry {
            n,
            c,
            h,
            w: wd,
            kh,
            kw,
            oh,
            ow,
            offset_groups: og,
        };
        let kk = geo.taps();
        if offset.shape != [n, og * kk * 2, oh, ow] {
            return Err(bad(format!(
                "offset has shape {:?}, expected {:?}",
                offset.shape,
                [n, og * kk * 2, oh, ow]
            )));
        }
        let mask = match mask {
            Some(m) if m.shape == [n, og * kk, oh, ow] => Some(f32s(m, "mask")?),
            Some(m) => {
                return Err(bad(format!(
                    "mask has shape {:?}, expected {:?}",
                    m.shape,
                    [n, og * kk, oh, ow]
                )))
            }
            None => None,
        };
        Ok(Sampling {
            geo,
            x: f32s(x, "input")?,
            offset: f32s(offset, "offset")?,
            mask,
        })
    }

    /// Elements of one image's im2col matrix, `[c*kh*kw, oh*ow]`.
    fn col_len(&self) -> usize {
        self.geo.c * self.geo.taps() * self.geo.plane()
    }

    /// Writes image `b`'s im2col matrix into `col`.
    fn im2col(&self, a: &DeformConvAttrs, b: usize, col: &mut [f32]) {
        let image_len = self.geo.c * self.geo.h * self.geo.w;
        let image = &self.x[b * image_len..(b + 1) * image_len];
        deformable_im2col(a, &self.geo, image, self.offset, self.mask, b, col);
    }
}

/// Inputs: x `[N,C,H,W]`, offset `[N,offset_group*kH*kW*2,oH,oW]` (dy then dx per tap),
/// optional mask `[N,offset_group*kH*kW,oH,oW]`. Output: `[N, C*kH*kW, oH, oW]`, each image's
/// deformable im2col matrix.
pub(crate) fn sample(
    a: &DeformConvAttrs,
    x: &Tensor,
    offset: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor, RuntimeError> {
    let s = Sampling::new(a, x, offset, mask)?;
    let len = s.col_len();
    let mut out = vec![0.0; s.geo.n * len];
    for (b, col) in out.chunks_exact_mut(len.max(1)).enumerate() {
        s.im2col(a, b, col);
    }
    let geo = &s.geo;
    Ok(Tensor::f32(
        vec![geo.n, geo.c * geo.taps(), geo.oh, geo.ow],
        out,
    ))
}

/// Inputs: x `[N,C,H,W]`, w `[O,C/group,kH,kW]`, offset `[N,offset_group*kH*kW*2,oH,oW]` (dy
/// then dx per tap), optional bias `[O]`, optional mask `[N,offset_group*kH*kW,oH,oW]`.
pub(crate) fn execute(
    a: &DeformConvAttrs,
    x: &Tensor,
    w: &Tensor,
    offset: &Tensor,
    bias: Option<&Tensor>,
    mask: Option<&Tensor>,
) -> Result<Tensor, RuntimeError> {
    let [_, c, _, _] = dims4(x, "input")?;
    let [o, cg, kh, kw] = dims4(w, "weight")?;
    let wv = f32s(w, "weight")?;
    let g = a.group;
    if g == 0 || cg * g != c || o % g != 0 {
        return Err(bad(format!(
            "input has {c} channels and weight {:?}, which group {g} does not fit",
            w.shape
        )));
    }
    check_window(a.kernel, a.strides, a.dilations, [kh, kw], &w.shape)?;
    let s = Sampling::new(a, x, offset, mask)?;
    let (n, plane) = (s.geo.n, s.geo.plane());
    let (kdim, og_out) = (cg * s.geo.taps(), o / g);
    let bias = bias_values(bias, o)?;
    let mut out = init_output(n, o, plane, bias);
    let mut col = vec![0.0; s.col_len()];
    for b in 0..n {
        s.im2col(a, b, &mut col);
        for gi in 0..g {
            matmul(
                og_out,
                plane,
                kdim,
                &wv[gi * og_out * kdim..],
                &col[gi * kdim * plane..],
                &mut out[(b * o + gi * og_out) * plane..(b * o + (gi + 1) * og_out) * plane],
                true,
            );
        }
    }
    Ok(Tensor::f32(vec![n, o, s.geo.oh, s.geo.ow], out))
}
