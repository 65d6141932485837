//! 2-D convolution (ONNX Conv, NCHW, OIHW weights): im2col then one GEMM per image and group.
//! A 1x1 stride-1 unpadded convolution is already a GEMM over the input, so it skips im2col;
//! a convolution with one input channel per group (depthwise) has nothing for a GEMM to reuse,
//! so it runs as a direct loop.

use super::gemm::matmul;
use super::{check_window, f32s};
use crate::{RuntimeError, Tensor};
use temblor_ir::ConvAttrs;

/// The output positions `o` in `0..out_len` whose input position `o * stride + offset - pad`
/// falls inside `0..in_len`, as a half-open range.
pub(crate) fn valid_range(
    pad: usize,
    offset: usize,
    stride: usize,
    in_len: usize,
    out_len: usize,
) -> (usize, usize) {
    let base = offset as isize - pad as isize;
    let s = stride as isize;
    let lo = if base < 0 { (-base + s - 1) / s } else { 0 };
    let last = in_len as isize - 1 - base;
    let hi = if last < 0 { 0 } else { last / s + 1 };
    let lo = (lo as usize).min(out_len);
    (lo, (hi as usize).clamp(lo, out_len))
}

/// Checks that `t` is 4-D and returns its dims.
pub(crate) fn dims4(t: &Tensor, what: &str) -> Result<[usize; 4], RuntimeError> {
    <[usize; 4]>::try_from(t.shape.as_slice()).map_err(|_| {
        RuntimeError::bad_input(format!("{what} must be 4-D, got shape {:?}", t.shape))
    })
}

/// Checks the bias, if any, against `channels` output channels.
pub(crate) fn bias_values(
    bias: Option<&Tensor>,
    channels: usize,
) -> Result<Option<&[f32]>, RuntimeError> {
    let Some(b) = bias else { return Ok(None) };
    let v = f32s(b, "bias")?;
    if v.len() != channels || b.shape.len() != 1 {
        return Err(RuntimeError::bad_input(format!(
            "bias has shape {:?}, expected [{channels}]",
            b.shape
        )));
    }
    Ok(Some(v))
}

/// Output planes filled with each channel's bias (or zero), ready to accumulate into.
pub(crate) fn init_output(
    n: usize,
    channels: usize,
    plane: usize,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    match bias {
        Some(b) => {
            let mut out = Vec::with_capacity(n * channels * plane);
            for _ in 0..n {
                for &v in b {
                    out.extend(std::iter::repeat_n(v, plane));
                }
            }
            out
        }
        None => vec![0.0; n * channels * plane],
    }
}

pub(crate) fn conv(
    a: &ConvAttrs,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
) -> Result<Tensor, RuntimeError> {
    if residual.is_some() || a.activation.is_some() {
        return Err(RuntimeError::unsupported(
            "fused convolution epilogues are not supported yet",
        ));
    }
    let [n, c, h, wd] = dims4(x, "input")?;
    let [o, cg, kh, kw] = dims4(w, "weight")?;
    let (xv, wv) = (f32s(x, "input")?, f32s(w, "weight")?);
    let g = a.group;
    if g == 0 || cg * g != c || o % g != 0 {
        return Err(RuntimeError::bad_input(format!(
            "input has {c} channels and weight {:?}, which group {g} does not fit",
            w.shape
        )));
    }
    check_window(a.kernel, a.strides, a.dilations, [kh, kw], &w.shape)?;
    let bias = bias_values(bias, o)?;
    let [sh, sw] = a.strides;
    let [dh, dw] = a.dilations;
    let [pt, pl, pb, pr] = a.pads;
    let extent = |len: usize, p0: usize, p1: usize, k: usize, d: usize, s: usize| {
        let span = d * (k.max(1) - 1) + 1;
        (len + p0 + p1).checked_sub(span).map(|r| r / s + 1)
    };
    let (Some(oh), Some(ow)) = (
        extent(h, pt, pb, kh, dh, sh),
        extent(wd, pl, pr, kw, dw, sw),
    ) else {
        return Err(RuntimeError::bad_input(format!(
            "input {:?} is smaller than the dilated kernel {:?}",
            x.shape, w.shape
        )));
    };
    let geo = Geometry {
        c,
        h,
        w: wd,
        kh,
        kw,
        oh,
        ow,
        sh,
        sw,
        dh,
        dw,
        pt,
        pl,
    };
    let (og, plane, kdim) = (o / g, oh * ow, cg * kh * kw);
    let mut out = init_output(n, o, plane, bias);
    if cg == 1 {
        depthwise(&geo, n, o, xv, wv, &mut out);
    } else {
        let direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && a.pads == [0; 4];
        let mut col = if direct {
            Vec::new()
        } else {
            vec![0.0; kdim * plane]
        };
        for b in 0..n {
            for gi in 0..g {
                let xs = &xv[(b * c + gi * cg) * h * wd..(b * c + (gi + 1) * cg) * h * wd];
                let rhs: &[f32] = if direct {
                    xs
                } else {
                    im2col(&geo, cg, xs, &mut col);
                    &col
                };
                let dst = &mut out[(b * o + gi * og) * plane..(b * o + (gi + 1) * og) * plane];
                matmul(
                    og,
                    plane,
                    kdim,
                    &wv[gi * og * kdim..],
                    false,
                    rhs,
                    dst,
                    true,
                );
            }
        }
    }
    Ok(Tensor::f32(vec![n, o, oh, ow], out))
}

struct Geometry {
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    pt: usize,
    pl: usize,
}

/// Lays out the receptive fields of `cg` input planes as a `[cg*kh*kw, oh*ow]` matrix.
fn im2col(geo: &Geometry, cg: usize, xs: &[f32], col: &mut [f32]) {
    let plane = geo.oh * geo.ow;
    for ci in 0..cg {
        let src = &xs[ci * geo.h * geo.w..(ci + 1) * geo.h * geo.w];
        for i in 0..geo.kh {
            let (ylo, yhi) = valid_range(geo.pt, i * geo.dh, geo.sh, geo.h, geo.oh);
            for j in 0..geo.kw {
                let (xlo, xhi) = valid_range(geo.pl, j * geo.dw, geo.sw, geo.w, geo.ow);
                let row = ((ci * geo.kh + i) * geo.kw + j) * plane;
                let dst = &mut col[row..row + plane];
                dst.fill(0.0);
                for y in ylo..yhi {
                    let iy = y * geo.sh + i * geo.dh - geo.pt;
                    let line = &src[iy * geo.w..(iy + 1) * geo.w];
                    for x in xlo..xhi {
                        dst[y * geo.ow + x] = line[x * geo.sw + j * geo.dw - geo.pl];
                    }
                }
            }
        }
    }
}

/// One input channel per group: each output channel reads a single input plane.
fn depthwise(geo: &Geometry, n: usize, o: usize, xv: &[f32], wv: &[f32], out: &mut [f32]) {
    let per_group = o / geo.c;
    let plane = geo.oh * geo.ow;
    for b in 0..n {
        for oc in 0..o {
            let src = &xv[(b * geo.c + oc / per_group) * geo.h * geo.w..][..geo.h * geo.w];
            let dst = &mut out[(b * o + oc) * plane..(b * o + oc + 1) * plane];
            let k = &wv[oc * geo.kh * geo.kw..(oc + 1) * geo.kh * geo.kw];
            for i in 0..geo.kh {
                let (ylo, yhi) = valid_range(geo.pt, i * geo.dh, geo.sh, geo.h, geo.oh);
                for j in 0..geo.kw {
                    let (xlo, xhi) = valid_range(geo.pl, j * geo.dw, geo.sw, geo.w, geo.ow);
                    let kv = k[i * geo.kw + j];
                    for y in ylo..yhi {
                        let iy = y * geo.sh + i * geo.dh - geo.pt;
                        let line = &src[iy * geo.w..(iy + 1) * geo.w];
                        let row = &mut dst[y * geo.ow..(y + 1) * geo.ow];
                        for x in xlo..xhi {
                            row[x] += kv * line[x * geo.sw + j * geo.dw - geo.pl];
                        }
                    }
                }
            }
        }
    }
}
