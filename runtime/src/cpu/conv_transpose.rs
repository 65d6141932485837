//! 2-D transposed convolution (ONNX ConvTranspose, NCHW, weights `[C, O/g, kH, kW]`): per image,
//! group and band of input rows, a GEMM gives every input pixel's contribution to each kernel
//! tap, and col2im adds them into the output. When the taps do not overlap (a kernel as large
//! as its stride: the 2x2 stride-2 upsampling of FPN and DB heads), each output pixel is one
//! contribution, so bands are independent parallel tasks that write their output rows once.
//! A fused activation is applied to finished output rows. Other strided ones run as ordinary
//! convolutions, one per output phase ([`super::conv_transpose_phases`]).
//! Explicit pads only: the frontend resolves `output_shape` and `auto_pad` into `pads` and
//! `output_padding`.

use super::conv::{bias_values, dims4, valid_range, SharedOut};
use super::conv_gemm::ConvGemm;
use super::conv_transpose_phases::{by_phases, PhaseWeights, Phases};
use super::epilogue::Epilogue;
use super::gemm::{matmul_strided, Threads, View};
use super::isa::Isa;
use super::{buffers, check_window, f32s};
use crate::RuntimeError;
use crate::Tensor;
use rayon::prelude::*;
use temblor_ir::ConvTransposeAttrs;

/// `prepared` is [`super::conv_transpose_phases::phase_weights`] of `w`, made when the plan was
/// built, or `None`.
pub(crate) fn conv_transpose(
    a: &ConvTransposeAttrs,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    isa: Isa,
    prepared: Option<&PhaseWeights>,
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
    let shift = bias_values(bias, o)?;
    // The bias is added with the contributions; the activation is applied to finished rows.
    let activation = Epilogue {
        isa,
        bias: None,
        residual: None,
        activation: a.activation,
        affine: None,
        bytes: None,
    };
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
    let geo = Geometry {
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
    if let Some(phases) = Phases::new(&geo) {
        let made;
        let weights = match prepared {
            Some(p) => p,
            None => {
                made = PhaseWeights::new(a, &phases.taps(), w, isa)?;
                &made
            }
        };
        return by_phases(a, &phases, weights, x, bias, isa, &geo);
    }
    let mut out = buffers::reuse(n * o * oh * ow);
    let (cg, rows) = (c / g, og * kh * kw);
    if geo.disjoint() {
        disjoint(&geo, [n, g, cg, og], xv, wv, (shift, &activation), &mut out);
        return Ok(Tensor::f32(vec![n, o, oh, ow], out));
    }
    // Bands of input rows whose contributions stay in the L2 cache between the GEMM that
    // writes them and col2im that reads them (PP-OCR's 24 -> 24 2x2 upsampling at 160x160 has
    // 10 MB of them).
    const BAND_FLOATS: usize = 128 * 1024;
    let band = (BAND_FLOATS / (rows * wd).max(1)).clamp(1, h);
    let mut cols = buffers::reuse(rows * band * wd);
    for b in 0..n {
        for gi in 0..g {
            let xs = &xv[(b * c + gi * cg) * h * wd..(b * c + (gi + 1) * cg) * h * wd];
            // The weight as stored, `[cg × rows]`, read transposed.
            let lhs = View {
                data: &wv[gi * cg * rows..(gi + 1) * cg * rows],
                rs: 1,
                cs: rows,
            };
            let first = (b * o + gi * og) * oh * ow;
            let planes = &mut out[first..first + og * oh * ow];
            planes
                .par_chunks_mut(oh * ow)
                .enumerate()
                .for_each(|(ol, dst)| dst.fill(shift.map_or(0.0, |b| b[gi * og + ol])));
            for y0 in (0..h).step_by(band) {
                let y1 = (y0 + band).min(h);
                let len = (y1 - y0) * wd;
                let rhs = View::rows(&xs[y0 * wd..], h * wd);
                let part = &mut cols[..rows * len];
                matmul_strided(rows, len, cg, lhs, rhs, part, false, Threads::Pool);
                col2im(&geo, part, (y0, y1), planes);
            }
            if a.activation.is_some() {
                planes
                    .par_chunks_mut(oh * ow)
                    .enumerate()
                    .for_each(|(ol, dst)| activation.apply(gi * og + ol, 0, dst));
            }
        }
    }
    buffers::give_back(cols);
    Ok(Tensor::f32(vec![n, o, oh, ow], out))
}

/// The sizes of one transposed convolution; `h`, `w` are the input's, `oh`, `ow` the output's,
/// and strides, dilations and pads map output positions to input ones as in Conv.
pub(super) struct Geometry {
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pt: usize,
    pub pl: usize,
}

impl Geometry {
    /// Whether every output pixel takes one tap of one input pixel: the kernel tiles the
    /// output exactly, undilated and unpadded.
    pub fn disjoint(&self) -> bool {
        (self.kh, self.kw, self.dh, self.dw, self.pt, self.pl) == (self.sh, self.sw, 1, 1, 0, 0)
            && (self.oh, self.ow) == (self.h * self.sh, self.w * self.sw)
    }
}

/// The transposed convolution of [`Geometry::disjoint`] taps, in parallel tasks of (image,
/// group, band of input rows): one GEMM gives the band's contribution to every tap, and each
/// output row of the band is its kernel row's taps interleaved, plus the bias.
fn disjoint(
    geo: &Geometry,
    [n, g, cg, og]: [usize; 4],
    xv: &[f32],
    wv: &[f32],
    (bias, activation): (Option<&[f32]>, &Epilogue),
    out: &mut [f32],
) {
    let (taps, in_plane, out_plane) = (geo.kh * geo.kw, geo.h * geo.w, geo.oh * geo.ow);
    let rows = og * taps;
    if rows == 0 || in_plane == 0 {
        return;
    }
    // The weight of each group as the GEMM's `[og·kh·kw × cg]` left-hand side.
    let transposed: Vec<Vec<f32>> = (0..g)
        .map(|gi| {
            let wg = &wv[gi * cg * rows..(gi + 1) * cg * rows];
            (0..rows * cg).map(|i| wg[i % cg * rows + i / cg]).collect()
        })
        .collect();
    let gemms: Vec<ConvGemm> = transposed
        .iter()
        .map(|w| ConvGemm::new(w, rows, cg, activation.isa))
        .collect();
    // Bands whose contributions (256 KiB) stay in the L2 cache until they are written out.
    const BAND_FLOATS: usize = 64 * 1024;
    let band = (BAND_FLOATS / (rows * geo.w)).clamp(1, geo.h);
    let tasks: Vec<(usize, usize, usize)> = (0..n)
        .flat_map(|b| (0..g).flat_map(move |gi| (0..geo.h).step_by(band).map(move |y| (b, gi, y))))
        .collect();
    let shared = SharedOut::new(out);
    tasks
        .into_par_iter()
        .for_each_init(Vec::new, |cols, (b, gi, y0)| {
            let y1 = (y0 + band).min(geo.h);
            let len = (y1 - y0) * geo.w;
            let xs = &xv[(b * g + gi) * cg * in_plane..(b * g + gi + 1) * cg * in_plane];
            let offsets: Vec<usize> = (0..cg).map(|ci| ci * in_plane + y0 * geo.w).collect();
            cols.resize(rows * len, 0.0);
            let mut parts: Vec<&mut [f32]> = cols.chunks_exact_mut(len).collect();
            gemms[gi].multiply(0, xs, &offsets, len, &mut parts);
            for ol in 0..og {
                let oc = gi * og + ol;
                let shift = bias.map_or(0.0, |bv| bv[oc]);
                let plane = (b * g * og + oc) * out_plane;
                for i in 0..geo.kh {
                    let first = (ol * geo.kh + i) * geo.kw;
                    for y in y0..y1 {
                        let oy = y * geo.kh + i;
                        // SAFETY: output row `oy` of this plane takes input row `y` alone, and
                        // tasks cover disjoint (image, group, input row) cells.
                        let line = unsafe { shared.segment(plane + oy * geo.ow, geo.ow) };
                        let src = |j: usize| &cols[(first + j) * len + (y - y0) * geo.w..][..geo.w];
                        if geo.kw == 2 {
                            let pairs = line.chunks_exact_mut(2).zip(src(0).iter().zip(src(1)));
                            pairs.for_each(|(d, (&a, &b))| {
                                d[0] = shift + a;
                                d[1] = shift + b;
                            });
                        } else {
                            for j in 0..geo.kw {
                                let dst = line[j..].iter_mut().step_by(geo.kw);
                                dst.zip(src(j)).for_each(|(d, &v)| *d = shift + v);
                            }
                        }
                        if activation.activation.is_some() {
                            activation.apply(oc, 0, line);
                        }
                    }
                }
            }
        });
}

/// Adds the contributions of input rows `y0..y1` to every kernel tap (`cols`,
/// `[og·kh·kw × (y1 - y0)·w]`) into the output planes of one group; one plane per parallel
/// task.
fn col2im(geo: &Geometry, cols: &[f32], (y0, y1): (usize, usize), planes: &mut [f32]) {
    let (band, out_plane) = ((y1 - y0) * geo.w, geo.oh * geo.ow);
    if out_plane == 0 {
        return;
    }
    planes
        .par_chunks_mut(out_plane)
        .enumerate()
        .for_each(|(ol, dst)| {
            for i in 0..geo.kh {
                let (ylo, yhi) = valid_range(geo.pt, i * geo.dh, geo.sh, geo.oh, geo.h);
                let (ylo, yhi) = (ylo.clamp(y0, y1), yhi.clamp(y0, y1));
                for j in 0..geo.kw {
                    let (xlo, xhi) = valid_range(geo.pl, j * geo.dw, geo.sw, geo.ow, geo.w);
                    let row = ((ol * geo.kh + i) * geo.kw + j) * band;
                    for y in ylo..yhi {
                        let oy = y * geo.sh + i * geo.dh - geo.pt;
                        let at = row + (y - y0) * geo.w;
                        let src = &cols[at..at + geo.w];
                        let line = &mut dst[oy * geo.ow..(oy + 1) * geo.ow];
                        for x in xlo..xhi {
                            line[x * geo.sw + j * geo.dw - geo.pl] += src[x];
                        }
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::super::conv_transpose_phases::phase_weights;
    use super::*;

    /// ONNX ConvTranspose by its definition, in f64: every input pixel adds each kernel tap's
    /// weight times itself at output `(y·sh + i·dh - pt, x·sw + j·dw - pl)`.
    fn reference(
        a: &ConvTransposeAttrs,
        x: &[f32],
        [n, c, h, w]: [usize; 4],
        k: &[f32],
        [og, kh, kw]: [usize; 3],
        bias: &[f32],
        [oh, ow]: [usize; 2],
    ) -> Vec<f64> {
        let (g, cg) = (a.group, c / a.group);
        let o = og * g;
        let mut out = vec![0.0f64; n * o * oh * ow];
        for b in 0..n {
            for oc in 0..o {
                out[(b * o + oc) * oh * ow..][..oh * ow].fill(f64::from(bias[oc]));
            }
            for ci in 0..c {
                let gi = ci / cg;
                for ol in 0..og {
                    let oc = gi * og + ol;
                    for (y, i) in (0..h).flat_map(|y| (0..kh).map(move |i| (y, i))) {
                        let oy =
                            (y * a.strides[0] + i * a.dilations[0]) as isize - a.pads[0] as isize;
                        for (xx, j) in (0..w).flat_map(|xx| (0..kw).map(move |j| (xx, j))) {
                            let ox = (xx * a.strides[1] + j * a.dilations[1]) as isize
                                - a.pads[1] as isize;
                            if oy < 0 || ox < 0 || oy as usize >= oh || ox as usize >= ow {
                                continue;
                            }
                            let xv = f64::from(x[((b * c + ci) * h + y) * w + xx]);
                            let kv = f64::from(k[((ci * og + ol) * kh + i) * kw + j]);
                            out[((b * o + oc) * oh + oy as usize) * ow + ox as usize] += xv * kv;
                        }
                    }
                }
            }
        }
        out
    }

    /// Strided transposed convolutions that split into phases (with their weights made per call
    /// and as a plan makes them) (ViT-S's 4x4 stride 2, a 3x3
    /// stride 2 with output padding, unequal strides and pads, groups), one that does not (a
    /// dilation), and the disjoint 2x2 stride 2, against the definition.
    #[test]
    fn transposed_convolutions_match_the_definition() {
        let mut next = super::super::test_values(5);
        // (n, c, h, w, og, group, kernel, strides, dilations, pads, output_padding)
        #[rustfmt::skip]
        let cases = [
            (1, 8, 5, 6, 4, 1, [4, 4], [2, 2], [1, 1], [1, 1, 1, 1], [0, 0]),
            (2, 6, 4, 5, 3, 2, [3, 3], [2, 2], [1, 1], [1, 1, 1, 1], [1, 1]),
            (1, 4, 3, 4, 5, 1, [3, 5], [3, 2], [1, 1], [1, 2, 0, 2], [0, 1]),
            (1, 16, 6, 6, 9, 1, [4, 4], [2, 2], [1, 1], [1, 1, 1, 1], [0, 0]),
            (1, 4, 4, 4, 3, 1, [3, 3], [2, 2], [2, 2], [1, 1, 1, 1], [0, 0]),
            (1, 4, 4, 5, 3, 1, [2, 2], [2, 2], [1, 1], [0, 0, 0, 0], [0, 0]),
        ];
        for (n, c, h, w, og, group, kernel, strides, dilations, pads, output_padding) in cases {
            let [kh, kw] = kernel;
            let x: Vec<f32> = (0..n * c * h * w).map(|_| next()).collect();
            let k: Vec<f32> = (0..c * og * kh * kw).map(|_| next()).collect();
            let bias: Vec<f32> = (0..og * group).map(|_| next()).collect();
            let a = ConvTransposeAttrs {
                kernel,
                strides,
                dilations,
                pads,
                output_padding,
                group,
                activation: None,
            };
            let extent = |len: usize, ax: usize| {
                strides[ax] * (len - 1) + output_padding[ax] + dilations[ax] * (kernel[ax] - 1) + 1
                    - pads[ax]
                    - pads[ax + 2]
            };
            let (oh, ow) = (extent(h, 0), extent(w, 1));
            let want = reference(&a, &x, [n, c, h, w], &k, [og, kh, kw], &bias, [oh, ow]);
            let xt = Tensor::f32(vec![n, c, h, w], x.clone());
            let kt = Tensor::f32(vec![c, og, kh, kw], k.clone());
            let bt = Tensor::f32(vec![og * group], bias.clone());
            for isa in Isa::available() {
                let prepared = phase_weights(&a, &kt, isa);
                for prepared in [None, prepared.as_ref()] {
                    let got = conv_transpose(&a, &xt, &kt, Some(&bt), isa, prepared).unwrap();
                    assert_eq!(got.shape, vec![n, og * group, oh, ow]);
                    for (i, (&g, &e)) in got.as_f32().unwrap().iter().zip(&want).enumerate() {
                        assert!(
                            (f64::from(g) - e).abs() <= 1e-4,
                            "{isa}, kernel {kernel:?}, strides {strides:?}, pads {pads:?}, \
                             group {group}, prepared {}: element {i} is {g}, the definition \
                             gives {e}",
                            prepared.is_some()
                        );
                    }
                }
            }
        }
    }
}
