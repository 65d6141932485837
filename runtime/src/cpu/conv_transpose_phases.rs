//! A strided transposed convolution as ordinary ones, one per output phase, on the
//! convolution kernels ([`super::conv`]), their outputs interleaved: see [`Phases`]. The
//! phases' weights depend on the kernel, strides and pads only, so a plan makes and packs them
//! once for a constant weight ([`phase_weights`]).

use super::conv::{conv, dims4, pack_weights, ConvWeights};
use super::conv_transpose::Geometry;
use super::isa::Isa;
use super::{buffers, f32s};
use crate::{RuntimeError, Tensor, TensorData};
use rayon::prelude::*;
use temblor_ir::{AutoPad, ConvAttrs, ConvTransposeAttrs};

/// How a strided transposed convolution splits into `sh·sw` ordinary ones, one per output phase
/// `(a, b)` (the outputs at rows `a, a + sh, ...` and columns `b, b + sw, ...`): output row
/// `sh·q + a` takes kernel rows `i ≡ a + pt (mod sh)` only, from input rows `q + const - m`,
/// which is a stride-1 convolution with those kernel rows reversed. Each then runs on the
/// convolution kernels, and no contribution is added into the output twice: the GEMM plus
/// col2im path ran ViT-S's 4x4 stride-2 decoder at 80 GFLOP/s, a third of its time.
pub(super) struct Phases {
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
    pub fn new(geo: &Geometry) -> Option<Phases> {
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

    /// Per axis, each phase's first tap and tap count.
    pub fn taps(&self) -> [Vec<(usize, usize)>; 2] {
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
    kernels: Vec<(Tensor, Option<ConvWeights>)>,
}

impl PhaseWeights {
    /// The weights of the phases `taps` gives, from ConvTranspose's `[c, og, kh, kw]`, each
    /// phase's kernel rows and columns reversed, in one pass: a source tap row of `kh·kw`
    /// floats feeds every phase, so reading it once per phase read the weight `sh·sw` times.
    pub fn new(
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
                let packed = pack_weights(&attrs, &k, isa, None);
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
pub(super) fn by_phases(
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
    let mut parts = Vec::with_capacity(phases.rows.len() * sw);
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
            let part = conv(&attrs, [x, k], bias, None, isa, (packed.as_ref(), None))?;
            let TensorData::F32(part) = part.data else {
                return Err(RuntimeError::internal("a convolution gave no floats"));
            };
            parts.push(part);
        }
    }
    // Each output row whole from its phases' lines, while it is in cache: phase by phase,
    // every phase wrote into every cache line of the output (ViT-S's last 4x4 decoder layer,
    // 4 MB of output: 7.5% of its time).
    let mut out = buffers::reuse(n * o * geo.oh * geo.ow);
    out.par_chunks_mut(geo.oh * geo.ow)
        .enumerate()
        .for_each(|(plane, dst)| {
            for (oy, row) in dst.chunks_exact_mut(geo.ow).enumerate() {
                let (q, pa) = (oy / sh, oy % sh);
                let ph = phases.rows[pa].len;
                let line = |pb: usize| {
                    let pw = phases.cols[pb].len;
                    &parts[pa * sw + pb][(plane * ph + q) * pw..][..pw]
                };
                // Two phases of one width interleave as pairs, which vectorizes.
                if let [a, b] = &phases.cols[..] {
                    if a.len == b.len && geo.ow == 2 * a.len {
                        let pairs = row.chunks_exact_mut(2).zip(line(0).iter().zip(line(1)));
                        pairs.for_each(|(d, (&l, &r))| {
                            d[0] = l;
                            d[1] = r;
                        });
                        continue;
                    }
                }
                for pb in 0..sw {
                    let dst = row[pb..].iter_mut().step_by(sw);
                    dst.zip(line(pb)).for_each(|(d, &v)| *d = v);
                }
            }
        });
    parts.into_iter().for_each(buffers::give_back);
    Ok(Tensor::f32(vec![n, o, geo.oh, geo.ow], out))
}
