//! 2-D transposed convolution (ONNX ConvTranspose, NCHW, weights `[C, O/g, kH, kW]`): per image,
//! group and band of input rows, a GEMM gives every input pixel's contribution to each kernel
//! tap, and col2im adds them into the output. When the taps do not overlap (a kernel as large
//! as its stride: the 2x2 stride-2 upsampling of FPN and DB heads), each output pixel is one
//! contribution, so bands are independent parallel tasks that write their output rows once.
//! A fused activation is applied to finished output rows.
//! Explicit pads only: the frontend resolves `output_shape` and `auto_pad` into `pads` and
//! `output_padding`.

use super::conv::{bias_values, conv, dims4, pack_weights, valid_range, SharedOut};
use super::conv_gemm::{ConvGemm, PackedWeights};
use super::epilogue::Epilogue;
use super::gemm::{matmul_strided, Threads, View};
use super::isa::Isa;
use super::{buffers, check_window, f32s};
use crate::RuntimeError;
use crate::{Tensor, TensorData};
use rayon::prelude::*;
use temblor_ir::{AutoPad, ConvAttrs, ConvTransposeAttrs};

/// `prepared` is [`phase_weights`] of `w`, made when the plan was built, or `None`.
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
    let bias_tensor = bias;
    let bias = bias_values(bias, o)?;
    // The bias is added with the contributions; the activation is applied to finished rows.
    let activation = Epilogue {
        isa,
        bias: None,
        residual: None,
        activation: a.activation,
        affine: None,
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
        return by_phases(a, &phases, weights, x, bias_tensor, isa, &geo);
    }
    let mut out = buffers::reuse(n * o * oh * ow);
    let (cg, rows) = (c / g, og * kh * kw);
    if geo.disjoint() {
        disjoint(&geo, [n, g, cg, og], xv, wv, (bias, &activation), &mut out);
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
                .for_each(|(ol, dst)| dst.fill(bias.map_or(0.0, |b| b[gi * og + ol])));
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
struct Geometry {
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

impl Geometry {
    /// Whether every output pixel takes one tap of one input pixel: the kernel tiles the
    /// output exactly, undilated and unpadded.
    fn disjoint(&self) -> bool {
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

/// How a strided transposed convolution splits into `sh·sw` ordinary ones, one per output phase
/// `(a, b)` (the outputs at rows `a, a + sh, ...` and columns `b, b + sw, ...`): output row
/// `sh·q + a` takes kernel rows `i ≡ a + pt (mod sh)` only, from input rows `q + const - m`,
/// which is a stride-1 convolution with those kernel rows reversed. Each then runs on the
/// convolution kernels, and no contribution is added into the output twice: the GEMM plus
/// col2im path ran ViT-S's 4x4 stride-2 decoder at 80 GFLOP/s, a third of its time.
struct Phases {
    rows: Vec<AxisPhase>,
    cols: Vec<AxisPhase>,
}

/// One phase along one axis: kernel taps `first, first + stride, ...` (`taps` of them), the
/// stride-1 convolution's pads, and its output length.
#[derive(Clone, Copy)]
struct AxisPhase {
    first: usize,
    taps: usize,
    pads: (usize, usize),
    len: usize,
}

impl Phases {
    /// `None` where the split does not apply or would not pay: no stride, a dilation, taps that
    /// do not overlap ([`disjoint`] writes those once already), or a phase with no taps or
    /// that would need a negative pad (a crop).
    fn new(geo: &Geometry) -> Option<Phases> {
        if geo.sh * geo.sw == 1 || (geo.dh, geo.dw) != (1, 1) || geo.disjoint() {
            return None;
        }
        let axis = |k: usize, s: usize, p0: usize, input: usize, output: usize| {
            axis_taps(k, s, p0)
                .into_iter()
                .enumerate()
                .map(|(a, (first, taps))| {
                    let len = output.checked_sub(a)?.div_ceil(s);
                    let shift = (a + p0 - first) / s;
                    let lo = (taps.checked_sub(1)?).checked_sub(shift)?;
                    let hi = (len + taps).checked_sub(1 + input + lo)?;
                    (taps > 0 && len > 0).then_some(AxisPhase {
                        first,
                        taps,
                        pads: (lo, hi),
                        len,
                    })
                })
                .collect::<Option<Vec<_>>>()
        };
        Some(Phases {
            rows: axis(geo.kh, geo.sh, geo.pt, geo.h, geo.oh)?,
            cols: axis(geo.kw, geo.sw, geo.pl, geo.w, geo.ow)?,
        })
    }
}

impl Phases {
    /// Per axis, each phase's first tap and tap count.
    fn taps(&self) -> [Vec<(usize, usize)>; 2] {
        let taps = |ax: &[AxisPhase]| ax.iter().map(|a| (a.first, a.taps)).collect();
        [taps(&self.rows), taps(&self.cols)]
    }
}

/// Per phase `a` of an axis with kernel `k`, stride `s` and leading pad `p0`: the first kernel
/// tap it takes (`≡ a + p0 mod s`) and how many (`first, first + s, ...` below `k`). These do
/// not depend on the input's size, so a plan can make the phases' weights once.
fn axis_taps(k: usize, s: usize, p0: usize) -> Vec<(usize, usize)> {
    (0..s)
        .map(|a| {
            let first = (a + p0) % s;
            (first, k.saturating_sub(first).div_ceil(s))
        })
        .collect()
}

/// Each output phase's Conv weight `[o, cg, taps, taps]` and its packing, row phases outer.
#[derive(Debug)]
pub(crate) struct PhaseWeights {
    taps: [Vec<(usize, usize)>; 2],
    kernels: Vec<(Tensor, Option<PackedWeights>)>,
}

impl PhaseWeights {
    /// The weights of the phases `taps` gives, from ConvTranspose's `[c, og, kh, kw]`, each
    /// phase's kernel rows and columns reversed, in one pass: a source tap row of `kh·kw`
    /// floats feeds every phase, so reading it once per phase read the weight `sh·sw` times.
    fn new(
        a: &ConvTransposeAttrs,
        taps: &[Vec<(usize, usize)>; 2],
        w: &Tensor,
        isa: Isa,
    ) -> Result<PhaseWeights, RuntimeError> {
        let [c, og, kh, kw] = dims4(w, "weight")?;
        let wv = f32s(w, "weight")?;
        let ([sh, sw], g) = (a.strides, a.group);
        let (cg, o) = (c / g, og * g);
        let place = |ax: &[(usize, usize)], s: usize, i: usize| {
            let p = ax.iter().position(|&(first, _)| first == i % s)?;
            let (first, taps) = ax[p];
            Some((p, taps.checked_sub(1 + (i - first) / s)?))
        };
        let row_place: Vec<_> = (0..kh).map(|i| place(&taps[0], sh, i)).collect();
        let col_place: Vec<_> = (0..kw).map(|j| place(&taps[1], sw, j)).collect();
        let mut kernels: Vec<Vec<f32>> = taps[0]
            .iter()
            .flat_map(|&(_, mh)| {
                taps[1]
                    .iter()
                    .map(move |&(_, mw)| vec![0.0; o * cg * mh * mw])
            })
            .collect();
        for oc in 0..o {
            let (gi, ol) = (oc / og, oc % og);
            for ci in 0..cg {
                let src = &wv[((gi * cg + ci) * og + ol) * kh * kw..][..kh * kw];
                for (i, row) in src.chunks_exact(kw).enumerate() {
                    let Some((pa, t)) = row_place[i] else {
                        continue;
                    };
                    for (j, &v) in row.iter().enumerate() {
                        let Some((pb, u)) = col_place[j] else {
                            continue;
                        };
                        let (mh, mw) = (taps[0][pa].1, taps[1][pb].1);
                        kernels[pa * taps[1].len() + pb][((oc * cg + ci) * mh + t) * mw + u] = v;
                    }
                }
            }
        }
        let kernels = kernels
            .into_iter()
            .enumerate()
            .map(|(p, k)| {
                let (mh, mw) = (taps[0][p / taps[1].len()].1, taps[1][p % taps[1].len()].1);
                let k = Tensor::f32(vec![o, cg, mh, mw], k);
                let attrs = ConvAttrs {
                    kernel: [mh, mw],
                    strides: [1, 1],
                    dilations: [1, 1],
                    pads: [0; 4],
                    auto_pad: AutoPad::NotSet,
                    group: g,
                    activation: None,
                    affine: None,
                };
                let packed = pack_weights(&attrs, &k, isa);
                (k, packed)
            })
            .collect();
        Ok(PhaseWeights {
            taps: taps.clone(),
            kernels,
        })
    }
}

/// [`PhaseWeights`] of a constant `w`, made once when a plan is built; `None` where the
/// transposed convolution does not split into phases.
pub(crate) fn phase_weights(a: &ConvTransposeAttrs, w: &Tensor, isa: Isa) -> Option<PhaseWeights> {
    let [_, _, kh, kw] = dims4(w, "weight").ok()?;
    let ([sh, sw], [pt, pl, _, _]) = (a.strides, a.pads);
    if sh * sw == 1 || a.dilations != [1, 1] || a.group == 0 {
        return None;
    }
    let taps = [axis_taps(kh, sh, pt), axis_taps(kw, sw, pl)];
    if taps.iter().flatten().any(|&(_, n)| n == 0) {
        return None;
    }
    PhaseWeights::new(a, &taps, w, isa).ok()
}

/// The transposed convolution as the convolutions of [`Phases`], their outputs interleaved.
fn by_phases(
    a: &ConvTransposeAttrs,
    phases: &Phases,
    weights: &PhaseWeights,
    x: &Tensor,
    bias: Option<&Tensor>,
    isa: Isa,
    geo: &Geometry,
) -> Result<Tensor, RuntimeError> {
    if weights.taps != phases.taps() {
        return Err(RuntimeError::internal(
            "the plan's phase weights do not fit the transposed convolution",
        ));
    }
    let [n, _, _, _] = dims4(x, "input")?;
    let o = weights.kernels.first().map_or(0, |(k, _)| k.shape[0]);
    let (sh, sw) = (geo.sh, geo.sw);
    let mut out = buffers::reuse(n * o * geo.oh * geo.ow);
    for (pa, rows) in phases.rows.iter().enumerate() {
        for (pb, cols) in phases.cols.iter().enumerate() {
            let attrs = ConvAttrs {
                kernel: [rows.taps, cols.taps],
                strides: [1, 1],
                dilations: [1, 1],
                pads: [rows.pads.0, cols.pads.0, rows.pads.1, cols.pads.1],
                auto_pad: AutoPad::NotSet,
                group: a.group,
                activation: a.activation,
                affine: None,
            };
            let (k, packed) = &weights.kernels[pa * sw + pb];
            let part = conv(&attrs, [x, k], bias, None, isa, packed.as_ref())?;
            let TensorData::F32(part) = part.data else {
                return Err(RuntimeError::internal("a convolution gave no floats"));
            };
            let (ph, pw) = (rows.len, cols.len);
            out.par_chunks_mut(geo.oh * geo.ow)
                .zip(part.par_chunks(ph * pw))
                .for_each(|(dst, src)| {
                    for (q, line) in src.chunks_exact(pw).enumerate() {
                        let row = &mut dst[(sh * q + pa) * geo.ow..][..geo.ow];
                        let dst = row[pb..].iter_mut().step_by(sw);
                        dst.zip(line).for_each(|(d, &v)| *d = v);
                    }
                });
            buffers::give_back(part);
        }
    }
    Ok(Tensor::f32(vec![n, o, geo.oh, geo.ow], out))
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
