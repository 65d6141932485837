//! A pointwise convolution that widens its input (MobileNetV2's expansion) and the depthwise
//! convolution that alone reads it, run band by band so that the wide intermediate never
//! exists whole.
//!
//! CenterFace's first expansion, 16 -> 96 channels at 240x320, writes 29.5 MB that its stride-2
//! depthwise convolution reads back once: at one thread the two took 4.8 and 2.7 ms of the
//! model's 31, both waiting on memory (17% and 32% of the roofline). Here each band of the
//! depthwise convolution's output rows first runs the expansion over the input rows the band's
//! windows read (a few more than the band, the halo, computed again by the next band), into a
//! buffer that stays in cache, then the depthwise convolution over that buffer. Both are the
//! plan's own kernels ([`super::conv::conv`]) on the band's rows, and each of their outputs is
//! computed from the same values in the same order as over the whole tensor, so the results
//! are the unfused plan's, bit for bit.
//!
//! The plan fuses a pair when it is prepared ([`lower`]); its step is the depthwise layer's,
//! and names the expansion among the work it does (`StepInfo::fused`), so that a profile
//! counts both layers' operations against its time.

use super::buffers;
use super::conv::{conv, dims4, pack_weights, ConvWeights, SharedOut};
use super::isa::Isa;
use crate::{RuntimeError, Tensor, TensorData};
use rayon::prelude::*;
use temblor_ir::{ConvAttrs, DType, Graph, NodeId, Op, ValueRef};

/// Bytes of the intermediate one band computes: about the L2 caches of two cores, so that a
/// band's expansion is still in cache when its depthwise convolution reads it (1 and 4 MiB
/// bands measured 2-3% slower on CenterFace).
const BAND_BYTES: usize = 1 << 21;

/// The largest intermediate (one image's) computed whole, as the unfused pair would: below this
/// the recomputed halo rows cost more than the memory traffic saved (PicoDet COCO at 416, whose
/// largest expansion is 4 MB, ran 3-4% slower banded; CenterFace 24.7 ms with its 11 MB ones
/// whole against 25.7 banded, and 27.0 with its 29.5 MB one whole too).
const WHOLE_BYTES: usize = 8 << 20;

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

/// What depthwise convolution `id` reads when the plan fuses it with the pointwise
/// convolution that makes its input: the expansion's input, the depthwise weight, bias and
/// residual (ports 0 to 3, as an unfused convolution reads them), then the expansion's weight
/// and bias (ports 4 and 5). `None` when the pair does not qualify: the expansion must be a
/// float 1x1 convolution of one group, stride 1 and no padding (any auto_pad is none then), without a residual, whose
/// output only this depthwise convolution reads and the graph does not return, and not known
/// to be at most [`WHOLE_BYTES`] an image; the depthwise convolution one channel per group,
/// with a constant weight.
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
    let pointwise = e.group == 1 && e.kernel == [1, 1] && e.strides == [1, 1] && e.pads == [0; 4];
    let only_reader = g.consumers(mid) == [(id, 0)] && !g.outputs.iter().any(|o| o.value == mid);
    let float = [x, mid]
        .iter()
        .all(|&v| g.value_type(v).dtype == DType::F32)
        && [dw, weight]
            .iter()
            .all(|w| w.dtype == DType::F32 && !w.is_shape_only())
        && !matches!(g.node(x.node).op, Op::DequantizeLinear { .. });
    let shape_fits = weight.dims.len() == 4 && weight.dims[0] == o && d.group == o;
    if !(pointwise && only_reader && float && shape_fits) || g.input(mid.node, 3).is_some() {
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
        .and_then(|w| pack_weights(e, &w, isa));
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

/// The rows of one band: the depthwise output rows `y0..y1`, the input rows `r0..r1` their
/// windows read, and the padding rows above and below those.
struct Band {
    y0: usize,
    y1: usize,
    r0: usize,
    r1: usize,
    above: usize,
    below: usize,
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
    let [n, c, h, w] = dims4(x, "input")?;
    let [e, ..] = dims4(ew, "expansion weight")?;
    let ([kh, _], [sh, _], [dh, _]) = (d.kernel, d.strides, d.dilations);
    let span = kh.max(1).saturating_sub(1) * dh + 1;
    let [pt, _, pb, _] = d.pads;
    let out_rows = (h + pt + pb).checked_sub(span).map(|r| r / sh.max(1) + 1);
    let row_bytes = e * w * std::mem::size_of::<f32>();
    let per_band = (BAND_BYTES / row_bytes.max(1)).saturating_sub(span) / sh.max(1) + 1;
    let whole = |x: &Tensor| -> Result<Tensor, RuntimeError> {
        let mid = conv(
            &fused.expand,
            [x, ew],
            eb,
            None,
            isa,
            (fused.weights.as_ref(), None),
        )?;
        let out = conv(d, [&mid, dw], bias, residual, isa, (None, None));
        if let TensorData::F32(v) = mid.data {
            buffers::give_back(v);
        }
        out
    };
    // One band would be the whole tensor; padding as tall as the window leaves a band with no
    // input rows, which the unfused order handles as it always did.
    let small = row_bytes * h <= WHOLE_BYTES;
    let oh = match out_rows {
        Some(oh) if !small && oh > per_band && pt < span && pb < span && sh > 0 => oh,
        _ => return whole(x),
    };
    let bands: Vec<Band> = (0..oh)
        .step_by(per_band)
        .map(|y0| {
            let y1 = (y0 + per_band).min(oh);
            let top = (y0 * sh) as isize - pt as isize;
            let bottom = ((y1 - 1) * sh + span) as isize - pt as isize;
            let (r0, r1) = (top.max(0) as usize, (bottom.min(h as isize)) as usize);
            Band {
                y0,
                y1,
                r0,
                r1,
                above: (r0 as isize - top) as usize,
                below: (bottom - r1 as isize) as usize,
            }
        })
        .collect();
    let xv = x.as_f32().ok_or_else(|| {
        RuntimeError::bad_input(format!("input must be float32, got {}", x.dtype()))
    })?;
    let residual = match residual {
        Some(r) => {
            let rv = r.as_f32().ok_or_else(|| {
                RuntimeError::bad_input(format!("residual must be float32, got {}", r.dtype()))
            })?;
            Some((rv, dims4(r, "residual")?))
        }
        None => None,
    };
    let kw = d.kernel[1];
    let ow = (w + d.pads[1] + d.pads[3])
        .checked_sub(kw.max(1).saturating_sub(1) * d.dilations[1] + 1)
        .map(|r| r / d.strides[1].max(1) + 1)
        .ok_or_else(|| {
            RuntimeError::bad_input(format!("input {:?} is narrower than the window", x.shape))
        })?;
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
            let x_band = Tensor::f32(
                vec![1, c, b.r1 - b.r0, w],
                gather_rows(&xv[image * c * h * w..][..c * h * w], h, w, (b.r0, b.r1)),
            );
            let mid = conv(&fused.expand, [&x_band, ew], eb, None, isa, (fused.weights.as_ref(), None))?;
            let mut attrs = d.clone();
            attrs.pads[0] = b.above;
            attrs.pads[2] = b.below;
            let res_band = residual.map(|(rv, [_, rc, roh, rw])| {
                let plane = &rv[image * rc * roh * rw..][..rc * roh * rw];
                Tensor::f32(vec![1, rc, b.y1 - b.y0, rw], gather_rows(plane, roh, rw, (b.y0, b.y1)))
            });
            let part = conv(&attrs, [&mid, dw], bias, res_band.as_ref(), isa, (None, None))?;
            let rows = b.y1 - b.y0;
            if part.shape != [1, e, rows, ow] {
                return Err(RuntimeError::internal(format!(
                    "a band of the fused depthwise convolution made {:?}, expected [1, {e}, {rows}, {ow}]",
                    part.shape
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
            for t in [Some(x_band), Some(mid), res_band, Some(part)].into_iter().flatten() {
                if let TensorData::F32(v) = t.data {
                    buffers::give_back(v);
                }
            }
            Ok(())
        };
        // The band's buffers come from the run's pool on whichever thread runs it.
        match &pool {
            Some(p) => p.scope(run),
            None => run(),
        }
    })?;
    Ok(Tensor::f32(vec![n, e, oh, ow], values))
}

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
    use temblor_ir::{Activation, AutoPad, ConvAttrs};

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
    /// one after the other: stride 1 and 2, uneven padding, a window of 5, a residual, two
    /// images, and intermediates of 5 to 7 bands (2 MiB each) above the size computed whole.
    #[test]
    fn bands_give_the_bits_of_the_unfused_pair() {
        let isa = Isa::detect();
        let mut next = super::super::test_values(29);
        // (n, c, h, w, e, k, stride, pads, residual)
        let cases = [
            (1, 16, 121, 200, 96, 3, 2, [1, 1, 1, 1], false),
            (2, 8, 101, 160, 144, 3, 1, [1, 1, 1, 1], true),
            (1, 24, 140, 128, 120, 5, 2, [2, 1, 1, 2], false),
        ];
        for (n, c, h, w, e, k, stride, pads, with_residual) in cases {
            assert!(
                e * h * w * 4 > super::WHOLE_BYTES,
                "{c}->{e} {h}x{w} is computed whole"
            );
            let expand = attrs(1, 1, [0; 4], 1);
            let dw_attrs = attrs(k, stride, pads, e);
            let x = Tensor::f32(
                vec![n, c, h, w],
                (0..n * c * h * w).map(|_| next()).collect(),
            );
            let ew = Tensor::f32(vec![e, c, 1, 1], (0..e * c).map(|_| next()).collect());
            let eb = Tensor::f32(vec![e], (0..e).map(|_| next()).collect());
            let dw = Tensor::f32(vec![e, 1, k, k], (0..e * k * k).map(|_| next()).collect());
            let db = Tensor::f32(vec![e], (0..e).map(|_| next()).collect());
            let packed = pack_weights(&expand, &ew, isa);
            let mid = conv(
                &expand,
                [&x, &ew],
                Some(&eb),
                None,
                isa,
                (packed.as_ref(), None),
            )
            .expect("expansion");
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
