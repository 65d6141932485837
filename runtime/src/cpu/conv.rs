//! 2-D convolution (ONNX Conv, NCHW, OIHW weights) with its fused epilogue
//! `act(conv(x) + bias + residual)`.
//!
//! The kernel depends on the shape. A convolution with one input channel per group (depthwise)
//! has nothing for a GEMM to reuse, so it runs as a direct loop ([`super::depthwise`]). Every
//! other one is a GEMM per image and group, `W[og × cg·kh·kw] · cols[cg·kh·kw × oh·ow]`, cut into
//! tiles of output positions (and, when there are too few, of output channels) that run in
//! parallel: each tile lays out its own slice of `cols` (im2col; a 1x1 stride-1 convolution
//! reads its input planes in place instead, and any other stride-1 one, or a deep strided one,
//! a padded copy of them, see [`super::conv_padded`]), multiplies ([`super::conv_gemm`])
//! straight into the output, and finishes its outputs with the epilogue while they are in
//! cache.

use super::buffers;
#[cfg(target_arch = "x86_64")]
use super::conv_blocked::BlockedWeights;
use super::conv_gemm::{ConvGemm, MIN_WIDTH, NR};
use super::conv_padded::padded_conv;
#[cfg(target_arch = "x86_64")]
use super::conv_shallow::ShallowWeights;
use super::conv_tasks::{min_per_job, tasks};
#[cfg(target_arch = "x86_64")]
use super::conv_winograd::WinogradWeights;
use super::depthwise::{AsIs, Dequantize, FakeQuantize, Stencil};
use super::epilogue::{Bytes, Epilogue};
use super::int8_gemm::Quantizer;
use super::isa::Isa;
use super::quant;
use super::{check_window, f32s};
use crate::RuntimeError;
use crate::{Tensor, TensorData};
use rayon::prelude::*;
use std::marker::PhantomData;
use temblor_ir::{AutoPad, ConvAttrs};

mod im2col;
mod weights;

pub(super) use im2col::{every_scalar, im2col, Tap};
use weights::Path;
pub(crate) use weights::{pack_weights, ConvWeights};

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

/// The sizes of one convolution, checked against each other.
pub(crate) struct Geometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub group: usize,
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
    /// The geometry of input `x` convolved with a weight of shape `[o, cg, kh, kw]`.
    pub fn new(a: &ConvAttrs, x: &Tensor, w: [usize; 4]) -> Result<Geometry, RuntimeError> {
        Geometry::of_dims(a, dims4(x, "input")?, w)
    }

    /// [`Geometry::new`] for an input of dims `[n, c, h, w]`.
    pub fn of_dims(
        a: &ConvAttrs,
        [n, c, h, wd]: [usize; 4],
        w: [usize; 4],
    ) -> Result<Geometry, RuntimeError> {
        let [o, cg, kh, kw] = w;
        let g = a.group;
        if g == 0 || cg * g != c || o % g != 0 {
            return Err(RuntimeError::bad_input(format!(
                "input has {c} channels and weight {w:?}, which group {g} does not fit"
            )));
        }
        check_window(a.kernel, a.strides, a.dilations, [kh, kw], &w)?;
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
                "input {:?} is smaller than the dilated kernel {w:?}",
                [n, c, h, wd]
            )));
        };
        Ok(Geometry {
            n,
            c,
            h,
            w: wd,
            o,
            group: g,
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
        })
    }

    /// The geometry of a convolution whose input dims are known when the plan is built, its
    /// SAME pads resolved for them; `None` where they do not fit the weight.
    pub fn planned(
        a: &ConvAttrs,
        [n, c, h, w]: [usize; 4],
        weight: [usize; 4],
    ) -> Option<Geometry> {
        let resolved;
        let a = match a.auto_pad {
            AutoPad::NotSet => a,
            _ => {
                resolved = a.resolved([h, w]);
                &resolved
            }
        };
        Geometry::of_dims(a, [n, c, h, w], weight).ok()
    }

    pub fn in_plane(&self) -> usize {
        self.h * self.w
    }

    pub fn out_plane(&self) -> usize {
        self.oh * self.ow
    }

    /// A 1x1 stride-1 unpadded convolution, whose output positions are its input positions.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.oh == self.h
            && self.ow == self.w
            && self.pt == 0
            && self.pl == 0
    }

    pub fn out_shape(&self) -> Vec<usize> {
        vec![self.n, self.o, self.oh, self.ow]
    }
}

/// The epilogue of convolution `a` with output `geo`, its bias and residual checked.
pub(crate) fn epilogue<'a>(
    a: &ConvAttrs,
    geo: &Geometry,
    bias: Option<&'a Tensor>,
    residual: Option<&'a Tensor>,
    isa: Isa,
) -> Result<Epilogue<'a>, RuntimeError> {
    let residual = match residual {
        Some(r) if r.shape != geo.out_shape() => {
            return Err(RuntimeError::bad_input(format!(
                "residual has shape {:?}, the output {:?}",
                r.shape,
                geo.out_shape()
            )))
        }
        Some(r) => Some(f32s(r, "residual")?),
        None => None,
    };
    Ok(Epilogue {
        isa,
        bias: bias_values(bias, geo.o)?,
        residual,
        activation: a.activation,
        affine: a.affine,
        bytes: None,
    })
}

/// The output of a convolution whose kernels (`compute`) fill an f32 buffer through `epi`: the
/// buffer as it is, or, given `bytes`, quantized by the epilogue row by row while each row is in
/// cache, for int8 layers that would otherwise quantize it in a pass of their own. The f32
/// buffer then goes straight back to the pool, still warm for the next layer's output.
pub(crate) fn output(
    geo: &Geometry,
    epi: &Epilogue,
    bytes: Option<Quantizer>,
    compute: impl FnOnce(&Epilogue) -> Vec<f32>,
) -> Tensor {
    let Some(quantizer) = bytes else {
        return Tensor::f32(geo.out_shape(), compute(epi));
    };
    let mut out = buffers::reuse_typed::<u8>(geo.n * geo.o * geo.out_plane());
    {
        let shared = SharedOut::new(&mut out);
        let out = Some(Bytes {
            quantizer,
            out: &shared,
        });
        buffers::give_back(compute(&Epilogue { bytes: out, ..*epi }));
    }
    Tensor {
        shape: geo.out_shape(),
        data: TensorData::U8(out),
    }
}

/// `packed` is [`pack_weights`] of `w`, made when the plan was built, or `None`; `quantized`,
/// when the plan lowered an int8 layer's `DequantizeLinear(QuantizeLinear(x))` input into the
/// convolution, is how `x` is quantized (`x` may then be in bytes already).
pub(crate) fn conv(
    a: &ConvAttrs,
    [x, w]: [&Tensor; 2],
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
    isa: Isa,
    lowered: (Option<&ConvWeights>, Option<Quantizer>),
) -> Result<Tensor, RuntimeError> {
    conv_to(a, [x, w], (bias, residual), isa, lowered, None)
}

/// [`conv`], its output quantized into bytes by `bytes` when given ([`output`]).
pub(crate) fn conv_to(
    a: &ConvAttrs,
    [x, w]: [&Tensor; 2],
    (bias, residual): (Option<&Tensor>, Option<&Tensor>),
    isa: Isa,
    (packed, quantized): (Option<&ConvWeights>, Option<Quantizer>),
    bytes: Option<Quantizer>,
) -> Result<Tensor, RuntimeError> {
    let geo = Geometry::new(a, x, dims4(w, "weight")?)?;
    let wv = f32s(w, "weight")?;
    let epilogue = epilogue(a, &geo, bias, residual, isa)?;
    // The stencils quantize and dequantize an int8 layer's input as they pad each plane.
    let stencil = Stencil::of(geo.group, [geo.o, geo.c / geo.group, geo.kh, geo.kw]);
    Ok(match (stencil, quantized, &x.data) {
        (Some(s), Some(quantizer), TensorData::U8(xv)) => {
            let read = Dequantize { quantizer, isa };
            output(&geo, &epilogue, bytes, |epi| {
                s.run(&geo, (xv, &read), wv, epi)
            })
        }
        (Some(s), Some(quantizer), _) => {
            let read = FakeQuantize { quantizer, isa };
            let xv = f32s(x, "input")?;
            output(&geo, &epilogue, bytes, |epi| {
                s.run(&geo, (xv, &read), wv, epi)
            })
        }
        (Some(s), None, _) => {
            let xv = f32s(x, "input")?;
            output(&geo, &epilogue, bytes, |epi| {
                s.run(&geo, (xv, &AsIs), wv, epi)
            })
        }
        (None, quantized, _) => {
            let dequantized = quantized
                .map(|q| quant::fake_quantize(q, x, isa))
                .transpose()?;
            let xv = f32s(dequantized.as_ref().unwrap_or(x), "input")?;
            let exact = quantized.is_none();
            output(&geo, &epilogue, bytes, |epi| {
                let mut out = buffers::reuse(geo.n * geo.o * geo.out_plane());
                gemm_conv(&geo, (xv, exact), wv, packed, epi, &mut out);
                out
            })
        }
    })
}

/// Whether an int8 convolution of depth `kdim` (`cg·kh·kw`) reads the phases of its padded
/// input in place ([`super::conv_padded`]) rather than laying out im2col tiles: any with a
/// window at stride 1, and strided ones deep enough to hide copying their tiles out of the
/// layout's wider rows (measured: 3 and 16 input channels at 3x3 stride 2 are faster through
/// im2col, 32 and 128 through the phases).
pub(super) fn reads_phases(geo: &Geometry, kdim: usize) -> bool {
    const STRIDED_MIN_DEPTH: usize = 256;
    !geo.is_pointwise() && ((geo.sh == 1 && geo.sw == 1) || kdim >= STRIDED_MIN_DEPTH)
}

/// Whether a float convolution reads the phases of its padded input: as [`reads_phases`],
/// and any strided one whose output is wide enough for its columns to be output positions
/// ([`MIN_WIDTH`]), which have no tiles to copy out: YOLOv8n's 3->16 stem and 16->32 stride-2
/// convolution 0.38 -> 0.35 and 0.39 -> 0.32 ms against im2col.
fn reads_phases_f32(geo: &Geometry, kdim: usize) -> bool {
    reads_phases(geo, kdim) || (!geo.is_pointwise() && geo.ow >= MIN_WIDTH)
}

/// `f` of the weight the plan packed or, for a weight that is not a plan constant, of one packed
/// now by `make`.
#[cfg(target_arch = "x86_64")]
fn packed_or<W, R>(packed: Option<&W>, make: impl FnOnce() -> W, f: impl FnOnce(&W) -> R) -> R {
    match packed {
        Some(w) => f(w),
        None => f(&make()),
    }
}

/// The convolution as tiled GEMMs; see the module documentation. `exact` is whether `xv` is
/// the layer's own input rather than an int8 layer's simulated one, whose convolution must be
/// the direct sum.
fn gemm_conv(
    geo: &Geometry,
    (xv, exact): (&[f32], bool),
    wv: &[f32],
    packed: Option<&ConvWeights>,
    epi: &Epilogue,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        let shape = [geo.o, geo.c, geo.kh, geo.kw];
        match Path::of(geo, epi.isa, exact) {
            Path::Shallow => {
                let made = || ShallowWeights::new(wv, shape);
                return packed_or(packed.and_then(|p| p.shallow.as_ref()), made, |w| {
                    super::conv_shallow::conv(geo, xv, w, epi, out)
                });
            }
            Path::Winograd => {
                let made;
                let weights = match packed.and_then(|p| p.winograd.as_ref()) {
                    Some(w) => Some(w),
                    None => {
                        made = WinogradWeights::new(wv, [geo.o, geo.c], epi.isa);
                        made.as_ref()
                    }
                };
                if let Some(w) = weights {
                    return super::conv_winograd::conv(geo, xv, w, epi, out);
                }
            }
            Path::Blocked => {
                let made = || BlockedWeights::new(wv, shape);
                return packed_or(packed.and_then(|p| p.blocked.as_ref()), made, |w| {
                    super::conv_blocked::conv(geo, xv, w, epi, out)
                });
            }
            Path::Gemm => {}
        }
    }
    let packed = packed.and_then(|p| p.gemm.as_ref());
    let cg = geo.c / geo.group;
    let og = geo.o / geo.group;
    let kdim = cg * geo.kh * geo.kw;
    let plane = geo.out_plane();
    if plane == 0 || og == 0 {
        return;
    }
    let gemms: Vec<ConvGemm> = (0..geo.group)
        .map(|gi| {
            let w = &wv[gi * og * kdim..(gi + 1) * og * kdim];
            ConvGemm::with_packed(w, og, kdim, epi.isa, packed, gi)
        })
        .collect();
    let pointwise = geo.is_pointwise();
    if reads_phases_f32(geo, kdim) {
        return padded_conv(geo, xv, &gemms, epi, out);
    }
    let shared = SharedOut::new(out);
    let plane_rows: Vec<usize> = (0..cg).map(|c| c * geo.in_plane()).collect();
    tasks(geo, kdim, plane)
        .into_par_iter()
        .with_min_len(min_per_job(og * geo.group * kdim * plane * geo.n))
        .for_each_init(Vec::new, |col, t| {
            let (m, tw) = (t.rows.1 - t.rows.0, t.cols.1 - t.cols.0);
            let first_in = (t.image * geo.c + t.group * cg) * geo.in_plane();
            let xs = &xv[first_in..first_in + cg * geo.in_plane()];
            // A pointwise convolution's input planes already are the GEMM's right-hand side.
            let col_rows: Vec<usize>;
            let (b, b_rows) = if pointwise {
                (&xs[t.cols.0..], &plane_rows[..])
            } else {
                let padded = tw.div_ceil(NR) * NR;
                col.resize(kdim * padded, 0.0);
                im2col(geo, epi.isa, cg, xs, t.cols, padded, col, 0.0);
                col_rows = (0..kdim).map(|p| p * padded).collect();
                (&col[..], &col_rows[..])
            };
            let first_oc = t.group * og + t.rows.0;
            let start = |r: usize| (t.image * geo.o + first_oc + r) * plane + t.cols.0;
            // SAFETY: tasks cover disjoint (image, channel, position) cells, so no other
            // reference to these segments of the output exists while they are written.
            let mut rows: Vec<&mut [f32]> = (0..m)
                .map(|r| unsafe { shared.segment(start(r), tw) })
                .collect();
            gemms[t.group].multiply(t.rows.0, b, b_rows, tw, &mut rows);
            for (r, row) in rows.iter_mut().enumerate() {
                epi.apply(first_oc + r, start(r), row);
            }
        });
}

/// An output buffer that parallel tasks write in disjoint segments.
pub(crate) struct SharedOut<'a, T = f32> {
    ptr: *mut T,
    len: usize,
    /// Holds the exclusive borrow of the buffer for as long as segments can be handed out.
    _buffer: PhantomData<&'a mut [T]>,
}

// SAFETY: `SharedOut` only hands out segments through `segment`, whose callers guarantee that
// concurrent segments do not overlap, so sharing it between threads cannot race.
unsafe impl<T: Send> Sync for SharedOut<'_, T> {}

impl<'a, T> SharedOut<'a, T> {
    pub fn new(out: &'a mut [T]) -> SharedOut<'a, T> {
        SharedOut {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            _buffer: PhantomData,
        }
    }

    /// Elements `start..start + len` of the buffer.
    ///
    /// # Safety
    /// No other reference to any of these elements may be alive while the segment is.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn segment(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.len, "segment outside the output");
        // SAFETY: in bounds by the assert; exclusive by the caller's guarantee.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}
