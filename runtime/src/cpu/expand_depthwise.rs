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
//! counts both layers' operations against its time. Where a 1x1 projection alone reads the
//! depthwise output of a pair, the step is the projection's and runs all three
//! ([`project`]): the depthwise output is then never written whole either.

use super::buffers;
use super::conv::{conv, dims4, epilogue, pack_weights, ConvWeights, Geometry, SharedOut};
use super::isa::Isa;
use crate::{RuntimeError, Tensor};
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
    /// Where the step is the pointwise projection that alone reads the depthwise output: the
    /// depthwise convolution, run inside it ([`project`]).
    project: Option<Projected>,
}

impl ExpandDepthwise {
    /// The nodes whose work the step does besides its own.
    pub fn fused(&self) -> Vec<String> {
        let mut names = vec![self.name.clone()];
        names.extend(self.project.as_ref().map(|p| p.name.clone()));
        names
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
            project: None,
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

/// The step `fused` was lowered to, over the ports [`lower`] (`[x, w]`, `epilogue`, then the
/// expansion's weight and bias) or [`project::lower`] (the depthwise weight and bias after
/// those) lists, for convolution `a` (pads explicit): the depthwise convolution, or the
/// projection.
pub(crate) fn expand_depthwise(
    fused: &ExpandDepthwise,
    a: &ConvAttrs,
    [x, w]: [&Tensor; 2],
    epilogue: (Option<&Tensor>, Option<&Tensor>),
    [ew, eb, dw, db]: [Option<&Tensor>; 4],
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    match &fused.project {
        Some(p) => project::run(fused, p, (a, [x, w], epilogue), [ew, eb, dw, db], isa),
        None => pair(fused, a, [x, w], epilogue, [ew, eb], isa, None),
    }
}

/// Depthwise convolution `d` (pads explicit) of the expansion of `x`, finished with its bias
/// and residual; `expand` holds the expansion's weight and bias. Given `project`, the
/// projection of the depthwise output instead, on whichever path the pair takes.
fn pair(
    fused: &ExpandDepthwise,
    d: &ConvAttrs,
    [x, dw]: [&Tensor; 2],
    (bias, residual): (Option<&Tensor>, Option<&Tensor>),
    [ew, eb]: [Option<&Tensor>; 2],
    isa: Isa,
    project: Option<&project::Inputs>,
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
        let out = (residual, project);
        return channels_last_bands(&geo, (xv, c), [ew, dw], [eb, bias], attrs, out, isa);
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
        buffers::give_back_f32(mid);
        return match project {
            Some(p) => p.whole(out?, isa),
            None => out,
        };
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
    let residual = residual.map(Planes::of).transpose()?;
    let outputs = project.map_or(Ok(e), |p| p.outputs())?;
    let mut values = buffers::reuse(n * outputs * oh * ow);
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
            let res_band = residual.map(|r| r.rows(image, (b.y0, b.y1)));
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
            let part = match project {
                Some(p) => p.band(part, image, (b.y0, b.y1), isa)?,
                None => part,
            };
            let pv = part.as_f32().unwrap_or_default();
            for ch in 0..outputs {
                let start = ((image * outputs + ch) * oh + b.y0) * ow;
                // SAFETY: each band writes rows y0..y1 of its image's planes, which no other
                // band writes.
                let dst = unsafe { shared.segment(start, rows * ow) };
                dst.copy_from_slice(&pv[ch * rows * ow..][..rows * ow]);
            }
            for t in [Some(x_band), Some(mid), res_band, Some(part)]
                .into_iter()
                .flatten()
            {
                buffers::give_back_f32(t);
            }
            Ok(())
        };
        buffers::within(pool.as_ref(), run)
    })?;
    Ok(Tensor::f32(vec![n, outputs, oh, ow], values))
}

/// [`expand_depthwise`]'s bands over a pointwise expansion of `(x, c)` on AVX-512, the depthwise
/// convolution `geo` finished with `bias` and `residual`, or, given `project`, its projection:
/// [`channels_last`].
fn channels_last_bands(
    geo: &Geometry,
    (x, c): (&[f32], usize),
    [ew, dw]: [&Tensor; 2],
    [eb, bias]: [Option<&Tensor>; 2],
    [ea, d]: [&ConvAttrs; 2],
    (residual, project): (Option<&Tensor>, Option<&project::Inputs>),
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    let packed = channels_last::Packed::new(
        (super::f32s(ew, "expansion weight")?, c),
        eb.map(|b| super::f32s(b, "expansion bias")).transpose()?,
        (ea.activation, ea.affine),
        (super::f32s(dw, "depthwise weight")?, geo.kh * geo.kw),
    );
    let epi = epilogue(d, geo, bias, residual, isa)?;
    let projected = project.map(|p| p.prepare(geo, isa)).transpose()?;
    let outputs = projected.as_ref().map_or(geo.o, |p| p.outputs);
    let mut values = buffers::reuse(geo.n * outputs * geo.oh * geo.ow);
    let shared = SharedOut::new(&mut values);
    let projection = projected.as_ref().map(|p| p.projection(&shared));
    let sink = match &projection {
        Some(p) => channels_last::Sink::Project(p),
        None => channels_last::Sink::Out(&shared),
    };
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
            unsafe { channels_last::band(geo, (x, c), &packed, b, &mut scratch, &epi, &sink) };
            buffers::give_back(scratch);
        };
        buffers::within(pool.as_ref(), run)
    });
    Ok(Tensor::f32(vec![geo.n, outputs, geo.oh, geo.ow], values))
}

mod channels_last;
mod project;

pub(crate) use project::{lower as lower_projected, Projected};

/// A float NCHW tensor whose rows a band gathers.
#[derive(Clone, Copy)]
struct Planes<'a> {
    values: &'a [f32],
    dims: [usize; 4],
}

impl<'a> Planes<'a> {
    fn of(t: &'a Tensor) -> Result<Planes<'a>, RuntimeError> {
        let values = t.as_f32().ok_or_else(|| {
            RuntimeError::bad_input(format!("residual must be float32, got {}", t.dtype()))
        })?;
        Ok(Planes {
            values,
            dims: dims4(t, "residual")?,
        })
    }

    /// Rows `y0..y1` of every plane of image `image`, as a one-image tensor.
    fn rows(self, image: usize, (y0, y1): (usize, usize)) -> Tensor {
        let [_, c, h, w] = self.dims;
        let planes = &self.values[image * c * h * w..][..c * h * w];
        Tensor::f32(vec![1, c, y1 - y0, w], gather_rows(planes, h, w, (y0, y1)))
    }
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
mod tests;
