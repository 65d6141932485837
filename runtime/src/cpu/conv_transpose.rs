//! 2-D transposed convolution (ONNX ConvTranspose, NCHW, weights `[C, O/g, kH, kW]`): one GEMM
//! per image and group gives every input pixel's contribution to each kernel tap, and col2im
//! adds them into the output. Explicit pads only: the frontend resolves `output_shape` and
//! `auto_pad` into `pads` and `output_padding`.

use super::conv::{bias_values, dims4, init_output, valid_range};
use super::gemm::matmul;
use super::{check_window, f32s};
use crate::{RuntimeError, Tensor};
use temblor_ir::ConvTransposeAttrs;

pub(crate) fn conv_transpose(
    a: &ConvTransposeAttrs,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Tensor, RuntimeError> {
    let [n, c, h, wd] = dims4(x, "input")?;
    let [wc, og, kh, kw] = dims4(w, "weight")?;
    let (xv, wv) = (f32s(x, "input")?, f32s(w, "weight")?);
    let g = a.group;
    if g == 0 || wc != c || c % g != 0 {
        return Err(RuntimeError::bad_input(format!(
            "input has {c} channels and weight {:?}, which group {g} does not fit",
            w.shape
        )));
    }
    check_window(a.kernel, a.strides, a.dilations, [kh, kw], &w.shape)?;
    let o = og * g;
    let bias = bias_values(bias, o)?;
    let [sh, sw] = a.strides;
    let [dh, dw] = a.dilations;
    let [pt, pl, pb, pr] = a.pads;
    let [oph, opw] = a.output_padding;
    let extent = |len: usize, s: usize, op: usize, k: usize, d: usize, p0: usize, p1: usize| {
        let full = s * len.saturating_sub(1) + op + d * k.saturating_sub(1) + 1;
        full.checked_sub(p0 + p1).filter(|&e| e > 0 && len > 0)
    };
    let (Some(oh), Some(ow)) = (
        extent(h, sh, oph, kh, dh, pt, pb),
        extent(wd, sw, opw, kw, dw, pl, pr),
    ) else {
        return Err(RuntimeError::bad_input(format!(
            "pads {:?} leave no output for input {:?} and weight {:?}",
            a.pads, x.shape, w.shape
        )));
    };
    let (cg, in_plane, out_plane, rows) = (c / g, h * wd, oh * ow, og * kh * kw);
    let mut out = init_output(n, o, out_plane, bias);
    let mut cols = vec![0.0; rows * in_plane];
    for b in 0..n {
        for gi in 0..g {
            let xs = &xv[(b * c + gi * cg) * in_plane..(b * c + (gi + 1) * cg) * in_plane];
            matmul(
                rows,
                in_plane,
                cg,
                &wv[gi * cg * rows..],
                true,
                xs,
                &mut cols,
                false,
            );
            for ol in 0..og {
                let oc = gi * og + ol;
                let dst = &mut out[(b * o + oc) * out_plane..(b * o + oc + 1) * out_plane];
                for i in 0..kh {
                    let (ylo, yhi) = valid_range(pt, i * dh, sh, oh, h);
                    for j in 0..kw {
                        let (xlo, xhi) = valid_range(pl, j * dw, sw, ow, wd);
                        let row = ((ol * kh + i) * kw + j) * in_plane;
                        for y in ylo..yhi {
                            let oy = y * sh + i * dh - pt;
                            let src = &cols[row + y * wd..row + (y + 1) * wd];
                            let line = &mut dst[oy * ow..(oy + 1) * ow];
                            for x in xlo..xhi {
                                line[x * sw + j * dw - pl] += src[x];
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(Tensor::f32(vec![n, o, oh, ow], out))
}
