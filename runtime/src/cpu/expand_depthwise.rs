//! A convolution that widens its input (MobileNetV2's pointwise expansion, or a stem) and the
//! depthwise convolution that alone reads it, run band by band so that the wide intermediate
//! never exists whole.
//!
//! CenterFace's first expansion, 16 -> 96 channels at 240x320, writes 29.5 MB that its stride-2
//! depthwise convolution reads back once: at one thread the two took 4.8 and 2.7 ms of the
//! model's 31, both waiting on memory (17% and 32% of the roofline). Here each band of the
//! depthwise convolution's output rows first runs the expansion over the input rows the band's
//! windows read (a few more than the band, the halo, computed again by the next band) from the
//! input rows those read, into a buffer that stays in cache, then the depthwise convolution
//! over that buffer. The stem before CenterFace's first depthwise convolution (3 -> 32, stride
//! 2, 9.8 MB out) runs the same way. Both are the
//! plan's own kernels ([`super::conv::conv`]) on the band's rows, and each of their outputs is
//! computed from the same values in the same order as over the whole tensor, so the results
//! are the unfused plan's, bit for bit. On AVX-512 a pointwise expansion's pair runs in
//! channels-last blocks instead ([`channels_last`]), with the same bits.
//!
//! The plan fuses a pair when it is prepared ([`lower`]); its step is the depthwise layer's,
//! and names the expansion among the work it does (`StepInfo::fused`), so that a profile
//! counts both layers' operations against its time.

use super::buffers;
use super::conv::{conv, dims4, epilogue, pack_weights, ConvWeights, Geometry, SharedOut};
use super::isa::Isa;
use crate::{RuntimeError, Tensor, TensorData};
use rayon::prelude::*;
use temblor_ir::{AutoPad, ConvAttrs, DType, Graph, NodeId, Op, ValueRef};

/// Bytes of the intermediate one band computes: about the L2 caches of two cores, so that a
/// band's expansion is still in cache when its depthwise convolution reads it (1 and 4 MiB
/// bands measured 2-3% slower on CenterFace).
const BAND_BYTES: usize = 1 << 21;

/// The largest intermediate (one image's) computed whole, as the unfused pair would: below this
/// the recomputed halo rows cost more than the memory traffic saved (PicoDet COCO at 416, whose
/// largest expansion is 4 MB, ran 3-4% slower banded; CenterFace 24.7 ms with its 11 MB ones
/// whole against 25.7 banded, and 27.0 with its 29.5 MB one whole too).
const WHOLE_BYTES: usize = 8 << 20;

/// Whether a pair with expansion `ea` runs in channels-last blocks ([`channels_last`]).
fn in_channels_last(ea: &ConvAttrs, isa: Isa) -> bool {
    isa.avx512()
        && ea.kernel == [1, 1]
        && ea.strides == [1, 1]
        && ea.pads == [0; 4]
        && ea.group == 1
}

/// The expansion of a fused pair: its attributes, and its weight packed for the GEMM path.
#[derive(Debug)]
pub(crate) struct ExpandDepthwise {
    expand: ConvAttrs,
    weights: Option<ConvWeights>,
    /// The expansion's node name, for the plan's steps.
    name: String,
}

impl ExpandDepthwise {
    pub fn expansion(&self) -> &str {
        &self.name
    }
}

/// What depthwise convolution `id` reads when the plan fuses it with the convolution that makes
/// its input (the expansion): the expansion's input, the depthwise weight, bias and residual
/// (ports 0 to 3, as an unfused convolution reads them), then the expansion's weight and bias
/// (ports 4 and 5). `None` when the pair does not qualify: the expansion must be a float
/// convolution with explicit pads (a band adjusts them; so must the depthwise convolution's
/// be, unless the expansion keeps its input's size) and a constant weight, without a
/// residual, whose output only this depthwise convolution reads and the graph does not return,
/// and not known to be at most [`WHOLE_BYTES`] an image; the depthwise convolution one channel
/// per group, with a constant weight.
pub(crate) fn lower(
    g: &Graph,
    id: NodeId,
    isa: Isa,
) -> Option<(ExpandDepthwise, Vec<Option<ValueRef>>)> {
    let Op::Conv(d) = &g.node(id).op else {
        return None;
    };
    let mid = g.input(id, 0)?;
    let dw = g.constant(g.input(id, 1)?)?;
    let &[o, 1, _, _] = dw.dims.as_slice() else {
        return None;
    };
    let Op::Conv(e) = &g.node(mid.node).op else {
        return None;
    };
    let x = g.input(mid.node, 0)?;
    let ew = g.input(mid.node, 1)?;
    let weight = g.constant(ew)?;
    // Explicit pads, which a band adjusts (auto_pad of a 1x1 stride-1 convolution pads nothing),
    // and the depthwise convolution's too unless its input has the expansion's input's size:
    // the step resolves them against the input it reads.
    let pointwise = e.kernel == [1, 1] && e.strides == [1, 1] && e.pads == [0; 4];
    let explicit = pointwise || (e.auto_pad == AutoPad::NotSet && d.auto_pad == AutoPad::NotSet);
    let only_reader = g.consumers(mid) == [(id, 0)] && !g.outputs.iter().any(|o| o.value == mid);
    let float = [x, mid]
        .iter()
        .all(|&v| g.value_type(v).dtype == DType::F32)
        && [dw, weight]
            .iter()
            .all(|w| w.dtype == DType::F32 && !w.is_shape_only())
        && !matches!(g.node(x.node).op, Op::DequantizeLinear { .. });
    let shape_fits = weight.dims.len() == 4 && weight.dims[0] == o && d.group == o;
    if !(explicit && only_reader && float && shape_fits) || g.input(mid.node, 3).is_some() {
        return None;
    }
    // An intermediate known to be small runs whole anyway: the pair stays two steps, each
    // with its own time and value.
    if let Some(&[_, e, h, w]) = g.value_type(mid).shape.known().as_deref() {
        if e * h * w * std::mem::size_of::<f32>() <= WHOLE_BYTES {
            return None;
        }
    }
    let packed = Tensor::from_weight(weight)
        .ok()
        .and_then(|w| pack_weights(e, &w, isa, None));
    let reads = vec![
        Some(x),
        g.input(id, 1),
        g.input(id, 2),
        g.input(id, 3),
        Some(ew),
        g.input(mid.node, 2),
    ];
    Some((
        ExpandDepthwise {
            expand: e.clone(),
            weights: packed,
            name: g.node(mid.node).name.clone(),
        },
        reads,
    ))
}

/// The rows a run of output rows `y0..y1` of a convolution reads along its height: input rows
/// `first..end` (within the input's `len`), and the padding rows above and below them.
#[derive(Clone, Copy, Debug)]
struct Rows {
    first: usize,
    end: usize,
    above: usize,
    below: usize,
}

impl Rows {
    /// For a window of `span` rows at `stride`, `pad` rows above the input.
    fn read_by(
        (y0, y1): (usize, usize),
        stride: usize,
        span: usize,
        pad: usize,
        len: usize,
    ) -> Rows {
        let top = (y0 * stride) as isize - pad as isize;
        let bottom = ((y1 - 1) * stride + span) as isize - pad as isize;
        let (first, end) = (top.clamp(0, len as isize), bottom.clamp(0, len as isize));
        Rows {
            first: first as usize,
            end: end.max(first) as usize,
            above: (first - top).max(0) as usize,
            below: (bottom - end).max(0) as usize,
        }
    }

    /// Attributes `a` over these rows alone: their padding above and below.
    fn attrs(self, a: &ConvAttrs) -> ConvAttrs {
        let mut a = a.clone();
        a.pads[0] = self.above;
        a.pads[2] = self.below;
        a
    }
}

/// One band: depthwise output rows `y0..y1`, the intermediate rows they read, and the input
/// rows those read.
struct Band {
    y0: usize,
    y1: usize,
    mid: Rows,
    input: Rows,
}

/// Height of a convolution's output over `len` rows: window `span`, `stride`, pads.
fn extent(
    len: usize,
    (before, after): (usize, usize),
    span: usize,
    stride: usize,
) -> Option<usize> {
    (len + before + after)
        .checked_sub(span)
        .map(|r| r / stride.max(1) + 1)
}

/// The rows a window of `k` taps `dilation` apart covers.
fn span(k: usize, dilation: usize) -> usize {
    k.max(1).saturating_sub(1) * dilation + 1
}

/// Depthwise convolution `d` (pads explicit) of the expansion of `x`, finished with its bias
/// and residual; `expand` holds the expansion's weight and bias.
pub(crate) fn expand_depthwise(
    fused: &ExpandDepthwise,
    d: &ConvAttrs,
    [x, dw]: [&Tensor; 2],
    (bias, residual): (Option<&Tensor>, Option<&Tensor>),
    [ew, eb]: [Option<&Tensor>; 2],
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    let ew = ew.ok_or_else(|| RuntimeError::internal("a fused expansion without its weight"))?;
    let ea = &fused.expand;
    let expand =
        |x: &Tensor, a: &ConvAttrs| conv(a, [x, ew], eb, None, isa, (fused.weights.as_ref(), None));
    let [n, c, h, w] = dims4(x, "input")?;
    let geo = Geometry::new(ea, x, dims4(ew, "expansion weight")?)?;
    let (e, hm, wm) = (geo.o, geo.oh, geo.ow);
    let (span_e, span_d) = (
        span(ea.kernel[0], ea.dilations[0]),
        span(d.kernel[0], d.dilations[0]),
    );
    let [pt, pl, pb, pr] = d.pads;
    let (sh, sw) = (d.strides[0].max(1), d.strides[1].max(1));
    let row_bytes = e * wm * std::mem::size_of::<f32>();
    let floats = || {
        x.as_f32().ok_or_else(|| {
            RuntimeError::bad_input(format!("input must be float32, got {}", x.dtype()))
        })
    };
    // Rows of any padding suit the ring of intermediate rows; below the size the plan fuses
    // (sizes may be symbolic), it runs whole all the same.
    if in_channels_last(ea, isa) && row_bytes * hm > WHOLE_BYTES {
        let xv = floats()?;
        let geo = Geometry::of_dims(d, [n, e, hm, wm], dims4(dw, "depthwise weight")?)?;
        let attrs = [ea, d];
        return channels_last_bands(&geo, (xv, c), [ew, dw], [eb, bias], attrs, residual, isa);
    }
    let per_band = (BAND_BYTES / row_bytes.max(1)).saturating_sub(span_d) / sh + 1;
    // Small enough to run whole (the plan fuses only larger ones, but sizes may be symbolic),
    // or one band would be the whole tensor, or padding as tall as the window leaves a band
    // with no rows: the unfused order, as it always ran.
    let banded = extent(hm, (pt, pb), span_d, sh)
        .filter(|&oh| row_bytes * hm > WHOLE_BYTES && oh > per_band && pt < span_d && pb < span_d);
    let (Some(oh), Some(ow)) = (
        banded,
        extent(wm, (pl, pr), span(d.kernel[1], d.dilations[1]), sw),
    ) else {
        let mid = expand(x, ea)?;
        let out = conv(d, [&mid, dw], bias, residual, isa, (None, None));
        if let TensorData::F32(v) = mid.data {
            buffers::give_back(v);
        }
        return out;
    };
    let xv = floats()?;
    let bands: Vec<Band> = (0..oh)
        .step_by(per_band)
        .map(|y0| {
            let y1 = (y0 + per_band).min(oh);
            let mid = Rows::read_by((y0, y1), sh, span_d, pt, hm);
            let input = Rows::read_by((mid.first, mid.end), ea.strides[0], span_e, ea.pads[0], h);
            Band { y0, y1, mid, input }
        })
        .collect();
    let residual = match residual {
        Some(r) => {
            let rv = r.as_f32().ok_or_else(|| {
                RuntimeError::bad_input(format!("residual must be float32, got {}", r.dtype()))
            })?;
            Some((rv, dims4(r, "residual")?))
        }
        None => None,
    };
    let mut values = buffers::reuse(n * e * oh * ow);
    let shared = SharedOut::new(&mut values);
    let pool = buffers::current();
    let work: Vec<(usize, &Band)> = (0..n)
        .flat_map(|i| bands.iter().map(move |b| (i, b)))
        .collect();
    // Bands run in parallel, each on one thread and its kernels' threads: a band's two kernels
    // alone are too short to keep two threads busy.
    work.par_iter().try_for_each(|&(image, b)| {
        let run = || -> Result<(), RuntimeError> {
            let (i0, i1) = (b.input.first, b.input.end);
            let x_band = Tensor::f32(
                vec![1, c, i1 - i0, w],
                gather_rows(&xv[image * c * h * w..][..c * h * w], h, w, (i0, i1)),
            );
            let mid = expand(&x_band, &b.input.attrs(ea))?;
            let res_band = residual.map(|(rv, [_, rc, roh, rw])| {
                let plane = &rv[image * rc * roh * rw..][..rc * roh * rw];
                Tensor::f32(
                    vec![1, rc, b.y1 - b.y0, rw],
                    gather_rows(plane, roh, rw, (b.y0, b.y1)),
                )
            });
            let part = conv(
                &b.mid.attrs(d),
                [&mid, dw],
                bias,
                res_band.as_ref(),
                isa,
                (None, None),
            )?;
            let rows = b.y1 - b.y0;
            if mid.shape[2] != b.mid.end - b.mid.first || part.shape != [1, e, rows, ow] {
                return Err(RuntimeError::internal(format!(
                    "a band of the fused depthwise convolution made {:?} from {:?}, expected \
                     [1, {e}, {rows}, {ow}] from {} rows",
                    part.shape,
                    mid.shape,
                    b.mid.end - b.mid.first
                )));
            }
            let pv = part.as_f32().unwrap_or_default();
            for ch in 0..e {
                let start = ((image * e + ch) * oh + b.y0) * ow;
                // SAFETY: each band writes rows y0..y1 of its image's planes, which no other
                // band writes.
                let dst = unsafe { shared.segment(start, rows * ow) };
                dst.copy_from_slice(&pv[ch * rows * ow..][..rows * ow]);
            }
            for t in [Some(x_band), Some(mid), res_band, Some(part)]
                .into_iter()
                .flatten()
            {
                if let TensorData::F32(v) = t.data {
                    buffers::give_back(v);
                }
            }
            Ok(())
        };
        buffers::within(pool.as_ref(), run)
    })?;
    Ok(Tensor::f32(vec![n, e, oh, ow], values))
}

/// [`expand_depthwise`]'s bands over a pointwise expansion of `(x, c)` on AVX-512, the depthwise
/// convolution `geo` finished with `bias` and `residual`: [`channels_last`].
#[allow(clippy::too_many_arguments)]
fn channels_last_bands(
    geo: &Geometry,
    (x, c): (&[f32], usize),
    [ew, dw]: [&Tensor; 2],
    [eb, bias]: [Option<&Tensor>; 2],
    [ea, d]: [&ConvAttrs; 2],
    residual: Option<&Tensor>,
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    let packed = channels_last::Packed::new(
        (super::f32s(ew, "expansion weight")?, c),
        eb.map(|b| super::f32s(b, "expansion bias")).transpose()?,
        (ea.activation, ea.affine),
        (super::f32s(dw, "depthwise weight")?, geo.kh * geo.kw),
    );
    let epi = epilogue(d, geo, bias, residual, isa)?;
    let mut values = buffers::reuse(geo.n * geo.o * geo.oh * geo.ow);
    let shared = SharedOut::new(&mut values);
    // About two bands a thread: each computes the intermediate rows above its first output
    // row's window again.
    let per_image = (2 * rayon::current_num_threads())
        .div_ceil(geo.n)
        .min(geo.oh);
    let work: Vec<channels_last::Band> = (0..geo.n)
        .flat_map(|image| {
            (0..per_image).map(move |k| channels_last::Band {
                image,
                y0: k * geo.oh / per_image,
                y1: (k + 1) * geo.oh / per_image,
            })
        })
        .filter(|b| b.y1 > b.y0)
        .collect();
    let pool = buffers::current();
    work.par_iter().for_each(|b| {
        let run = || {
            let mut scratch = buffers::reuse(channels_last::scratch_len(geo, packed.blocks));
            // SAFETY: the caller checked AVX-512F; the bands' output rows are disjoint.
            unsafe { channels_last::band(geo, (x, c), &packed, b, &mut scratch, &epi, &shared) };
            buffers::give_back(scratch);
        };
        buffers::within(pool.as_ref(), run)
    });
    Ok(Tensor::f32(vec![geo.n, geo.o, geo.oh, geo.ow], values))
}

mod channels_last;

/// Rows `r0..r1` of every `h`-by-`w` plane of `planes`, planes one after another.
fn gather_rows(planes: &[f32], h: usize, w: usize, (r0, r1): (usize, usize)) -> Vec<f32> {
    let count = planes.len() / (h * w).max(1);
    let mut out = buffers::reuse(count * (r1 - r0) * w);
    for (dst, src) in out
        .chunks_exact_mut((r1 - r0) * w)
        .zip(planes.chunks_exact(h * w))
    {
        dst.copy_from_slice(&src[r0 * w..r1 * w]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::conv::{conv, pack_weights};
    use super::super::isa::Isa;
    use super::{expand_depthwise, ExpandDepthwise};
    use crate::Tensor;
    use temblor_ir::{Activation, Affine, AutoPad, ConvAttrs};

    fn attrs(k: usize, stride: usize, pads: [usize; 4], group: usize) -> ConvAttrs {
        ConvAttrs {
            kernel: [k, k],
            strides: [stride; 2],
            dilations: [1, 1],
            pads,
            auto_pad: AutoPad::NotSet,
            group,
            activation: Some(Activation::Relu),
            affine: None,
        }
    }

    /// Band by band, the pair gives the bits of the expansion and the depthwise convolution run
    /// one after the other: pointwise, stem and 3x3 expansions, depthwise strides 1 and 2,
    /// uneven padding on both, a window of 5, a dilation, a residual, two images, channels
    /// past a whole block, rows past a whole vector of positions, activations other than ReLU
    /// and an affine after one (on AVX-512, the pointwise pairs run in channels-last blocks),
    /// and intermediates of 5 or more bands (2 MiB each) above the size computed whole.
    #[test]
    fn bands_give_the_bits_of_the_unfused_pair() {
        let isa = Isa::detect();
        let mut next = super::super::test_values(29);
        // (n, c, h, w, e, expansion (k, stride, pads), depthwise (k, stride, pads), residual)
        let pointwise = (1, 1, [0; 4]);
        let cases = [
            (1, 16, 121, 200, 96, pointwise, (3, 2, [1, 1, 1, 1]), false),
            (2, 8, 101, 160, 144, pointwise, (3, 1, [1, 1, 1, 1]), true),
            (1, 24, 140, 128, 120, pointwise, (5, 2, [2, 1, 1, 2]), false),
            // Dilated by 2 (below), with HardSwish and an affine after the expansion.
            (1, 16, 240, 200, 48, pointwise, (3, 1, [2, 2, 2, 2]), false),
            // A stem, and a 3x3 expansion with uneven padding.
            (
                1,
                3,
                520,
                520,
                32,
                (3, 2, [1, 1, 1, 1]),
                (3, 1, [1, 1, 1, 1]),
                false,
            ),
            (
                1,
                8,
                150,
                140,
                104,
                (3, 1, [0, 1, 2, 1]),
                (3, 2, [1, 0, 1, 1]),
                true,
            ),
        ];
        for (i, (n, c, h, w, e, (ek, es, epads), (k, stride, pads), with_residual)) in
            cases.into_iter().enumerate()
        {
            let mut expand = attrs(ek, es, epads, 1);
            let mut dw_attrs = attrs(k, stride, pads, e);
            // Activations other than ReLU on the second and fourth cases.
            if i == 1 {
                expand.activation = Some(Activation::Clip { min: 0.0, max: 6.0 });
                dw_attrs.activation = Some(Activation::Silu);
            }
            if i == 3 {
                expand.activation = Some(Activation::HardSwish);
                expand.affine = Some(Affine {
                    scale: 0.75,
                    shift: -0.25,
                });
                dw_attrs.activation = None;
                dw_attrs.dilations = [2, 2];
            }
            let x = Tensor::f32(
                vec![n, c, h, w],
                (0..n * c * h * w).map(|_| next()).collect(),
            );
            let ew = Tensor::f32(
                vec![e, c, ek, ek],
                (0..e * c * ek * ek).map(|_| next()).collect(),
            );
            let eb = Tensor::f32(vec![e], (0..e).map(|_| next()).collect());
            let dw = Tensor::f32(vec![e, 1, k, k], (0..e * k * k).map(|_| next()).collect());
            let db = Tensor::f32(vec![e], (0..e).map(|_| next()).collect());
            let packed = pack_weights(&expand, &ew, isa, None);
            let mid = conv(
                &expand,
                [&x, &ew],
                Some(&eb),
                None,
                isa,
                (packed.as_ref(), None),
            )
            .expect("expansion");
            let [_, _, hm, wm] = <[usize; 4]>::try_from(mid.shape.as_slice()).expect("4-D");
            assert!(
                e * hm * wm * 4 > super::WHOLE_BYTES,
                "{c}->{e} {hm}x{wm} runs whole"
            );
            let plain = conv(&dw_attrs, [&mid, &dw], Some(&db), None, isa, (None, None))
                .expect("depthwise");
            let residual = with_residual.then(|| {
                let len = plain.shape.iter().product();
                Tensor::f32(plain.shape.clone(), (0..len).map(|_| next()).collect())
            });
            let want = conv(
                &dw_attrs,
                [&mid, &dw],
                Some(&db),
                residual.as_ref(),
                isa,
                (None, None),
            )
            .expect("depthwise");
            let fused = ExpandDepthwise {
                expand,
                weights: packed,
                name: "expansion".to_string(),
            };
            let got = expand_depthwise(
                &fused,
                &dw_attrs,
                [&x, &dw],
                (Some(&db), residual.as_ref()),
                [Some(&ew), Some(&eb)],
                isa,
            )
            .expect("fused");
            assert_eq!(got.shape, want.shape);
            let (g, wv) = (got.as_f32().expect("f32"), want.as_f32().expect("f32"));
            let differ = g
                .iter()
                .zip(wv)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(
                differ, 0,
                "{c}->{e} {h}x{w} k{k} s{stride}: {differ} outputs differ"
            );
        }
    }
}
