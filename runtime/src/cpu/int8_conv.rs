//! Convolutions of int8 layers computed in integers. A precision plan's int8 layer reads
//! `DequantizeLinear(QuantizeLinear(x))` with a per-tensor scale and a weight of int8 constants
//! behind a `DequantizeLinear` with zero points 0 (see `temblor_precision::legalize`; the QDQ
//! models onnxruntime's quantizer writes have the same form). Run as written, that is three
//! float passes over the activations, a dequantization of the weight, and a float convolution.
//! When the plan is prepared, [`lower`] recognizes the form and the convolution then reads `x`
//! itself: it quantizes `x` once, and each tile (`tiled_conv.rs`) packs its byte columns (from the stride's phases
//! of the padded bytes in place, as the float path reads floats, or from im2col tiles where
//! that path takes them), multiplies them by the weight packed once ([`super::int8_gemm`]), and
//! scales the exact integer sums by `x_scale · w_scale[o]` before the float epilogue. The
//! result is the simulation's up to the rounding of the float sums the simulation adds, which
//! the integer sums do not have.
//!
//! The stencil convolutions ([`Stencil`]: depthwise, and few outputs over a window) have too
//! little for a GEMM to reuse. Depthwise ones, and those of one output channel, whose window
//! [`super::int8_depthwise`] takes sum in integers over planes padded in bytes
//! ([`lower_depthwise`]); the others keep their float kernels, and read `x` and quantize and
//! dequantize it as they pad each plane ([`stencil_input`]), the simulation's very values.

use super::buffers;
use super::conv::{epilogue, output, reads_phases, Geometry};
use super::conv_padded::Phases;
use super::depthwise::Stencil;
use super::f32s;
#[cfg(target_arch = "x86_64")]
use super::int8_blocked::{self, Int8BlockedWeights};
use super::int8_depthwise::Int8Depthwise;
use super::int8_gemm::{pack_columns, Int8Weights, Quantizer, Scaling};
use super::isa::Isa;
use super::quant;
use super::tiled_conv::{self, Scratch, Source, TileGemm};
use crate::{RuntimeError, Tensor, TensorData};
use std::cell::RefCell;
use temblor_ir::{ConvAttrs, DType, Graph, NodeId, Op, ValueRef};

thread_local! {
    /// Each thread's byte columns, their packed form, and float sums to scatter.
    static SCRATCH: Scratch<u8, u8> = const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
    /// The quantized input of the convolution this thread runs and its padded phases, kept
    /// between layers for the same reason: fresh, they were zeroed on every layer.
    static INPUT: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// An int8 convolution, prepared: the integer weight, how the input is quantized and the scale
/// of each output channel's integer sums.
#[derive(Debug)]
pub(crate) struct Int8Conv {
    weights: Int8Weights,
    /// The weight in channel blocks, for the convolutions the blocked path may take.
    #[cfg(target_arch = "x86_64")]
    blocked: Option<Int8BlockedWeights>,
    shape: [usize; 4],
    quantizer: Quantizer,
    scales: Vec<f32>,
}

/// The largest depth whose sums cannot overflow 32 bits: each product is at most 255 · 128.
const MAX_DEPTH: usize = (i32::MAX / (255 * 128)) as usize;

/// Conv `id` as an int8 convolution, with the float value it quantizes, when it has the form of
/// the module documentation; `None` leaves it to the simulation.
pub(crate) fn lower(g: &Graph, id: NodeId) -> Option<(Int8Conv, ValueRef)> {
    let Op::Conv(a) = &g.node(id).op else {
        return None;
    };
    let (x, quantizer) = quantized_input(g, g.input(id, 0)?)?;
    let (shape, weight, w_scales) = int8_weight(g, g.input(id, 1)?)?;
    let [o, cg, kh, kw] = shape;
    let k = cg * kh * kw;
    // The stencil convolutions run as `lower_depthwise` or `stencil_input` says.
    let stencil = Stencil::of(a.group, shape).is_some();
    if stencil || a.group == 0 || o % a.group != 0 || k == 0 || k > MAX_DEPTH {
        return None;
    }
    Some((
        Int8Conv::new(&weight, shape, a.group, quantizer, &w_scales),
        x,
    ))
}

impl Int8Conv {
    /// How the convolution quantizes its input.
    pub fn quantizer(&self) -> Quantizer {
        self.quantizer
    }

    /// The convolution of int8 weight `weight` (`shape`, `group` groups, scales per tensor or
    /// per output channel) over inputs quantized by `quantizer`.
    fn new(
        weight: &[i8],
        shape: [usize; 4],
        group: usize,
        quantizer: Quantizer,
        w_scales: &[f32],
    ) -> Int8Conv {
        let [o, cg, kh, kw] = shape;
        let scales = sum_scales(quantizer, w_scales, o);
        Int8Conv {
            weights: Int8Weights::new(weight, o / group, cg * kh * kw),
            #[cfg(target_arch = "x86_64")]
            blocked: Int8BlockedWeights::for_conv(
                weight,
                shape,
                group,
                quantizer.offset(),
                &scales,
            ),
            shape,
            quantizer,
            scales,
        }
    }
}

/// The scale of each of `o` output channels' integer sums, `x_scale · w_scale[o]`, from weight
/// scales per tensor or per channel.
fn sum_scales(quantizer: Quantizer, w_scales: &[f32], o: usize) -> Vec<f32> {
    (0..o)
        .map(|c| quantizer.scale * w_scales[if w_scales.len() == 1 { 0 } else { c }])
        .collect()
}

/// Conv `id` as an int8 depthwise convolution, or one of a single output channel, in integers
/// ([`super::int8_depthwise`]), with the float value it quantizes, when it has the form of the
/// module documentation and a window that kernel takes.
pub(crate) fn lower_depthwise(g: &Graph, id: NodeId) -> Option<(Int8Depthwise, ValueRef)> {
    let Op::Conv(a) = &g.node(id).op else {
        return None;
    };
    let (x, quantizer) = quantized_input(g, g.input(id, 0)?)?;
    let (shape, weight, w_scales) = int8_weight(g, g.input(id, 1)?)?;
    let form = Stencil::of(a.group, shape);
    let depthwise = form == Some(Stencil::Depthwise) && a.group == shape[0];
    let one_output = form == Some(Stencil::FewOutputs) && shape[0] == 1 && a.group == 1;
    if !(depthwise || one_output) {
        return None;
    }
    let window = (a.strides, a.dilations);
    let scales = sum_scales(quantizer, &w_scales, shape[0]);
    Int8Depthwise::new(&weight, shape, window, quantizer, scales).map(|d| (d, x))
}

/// Conv `id`'s quantized input, `DequantizeLinear(QuantizeLinear(x))`, with how `x` is
/// quantized, when the convolution runs on the float stencils (depthwise, or few outputs over
/// a window: too little for a GEMM to reuse): they quantize and dequantize `x` as they pad each
/// plane, instead of a pass over the tensor before them (a tenth of PicoDet's int8 plan).
pub(crate) fn stencil_input(g: &Graph, id: NodeId) -> Option<(ValueRef, Quantizer)> {
    let Op::Conv(a) = &g.node(id).op else {
        return None;
    };
    let (x, quantizer) = quantized_input(g, g.input(id, 0)?)?;
    let dims = g.value_type(g.input(id, 1)?).shape.known()?;
    let shape: [usize; 4] = dims.as_slice().try_into().ok()?;
    Stencil::of(a.group, shape).map(|_| (x, quantizer))
}

/// A constant's single f32 value.
fn scalar(g: &Graph, v: Option<ValueRef>) -> Option<f32> {
    match g.constant(v?)?.to_f32()?.as_slice() {
        &[s] if s.is_finite() && s > 0.0 => Some(s),
        _ => None,
    }
}

/// A zero point: `(value, dtype)` of a one-element int8 or uint8 constant, `(0, None)` when
/// absent.
fn zero_point(g: &Graph, v: Option<ValueRef>) -> Option<(i32, Option<DType>)> {
    let Some(v) = v else {
        return Some((0, None));
    };
    let w = g.constant(v)?;
    match (w.dtype, &w.data[..]) {
        (DType::I8, &[b]) => Some((b as i8 as i32, Some(DType::I8))),
        (DType::U8, &[b]) => Some((b as i32, Some(DType::U8))),
        _ => None,
    }
}

/// `DequantizeLinear(QuantizeLinear(x))` per tensor with one scale and zero point: `x` and how
/// it is quantized.
pub(crate) fn quantized_input(g: &Graph, dq: ValueRef) -> Option<(ValueRef, Quantizer)> {
    let Op::DequantizeLinear { .. } = g.node(dq.node).op else {
        return None;
    };
    let q = g.input(dq.node, 0)?;
    let Op::QuantizeLinear { .. } = g.node(q.node).op else {
        return None;
    };
    let scale = scalar(g, g.input(q.node, 1))?;
    let zero = zero_point(g, g.input(q.node, 2))?;
    let same = scalar(g, g.input(dq.node, 1)).map(f32::to_bits) == Some(scale.to_bits())
        && zero_point(g, g.input(dq.node, 2)) == Some(zero);
    let signed = match g.value_type(q).dtype {
        DType::I8 => true,
        DType::U8 => false,
        _ => return None,
    };
    let x = g.input(q.node, 0)?;
    (same && g.value_type(x).dtype == DType::F32).then_some((
        x,
        Quantizer {
            scale,
            zero: zero.0,
            signed,
        },
    ))
}

/// `DequantizeLinear` of a constant 4-D int8 weight with zero points 0, per tensor or per
/// output channel: its shape, values and scales.
fn int8_weight(g: &Graph, dq: ValueRef) -> Option<([usize; 4], Vec<i8>, Vec<f32>)> {
    let Op::DequantizeLinear { axis } = g.node(dq.node).op else {
        return None;
    };
    let w = g.constant(g.input(dq.node, 0)?)?;
    let shape: [usize; 4] = w.dims.as_slice().try_into().ok()?;
    if w.dtype != DType::I8 || w.is_shape_only() {
        return None;
    }
    let scales = g.constant(g.input(dq.node, 1)?)?.to_f32()?;
    let per_channel = scales.len() == shape[0] && (axis == 0 || axis == -4);
    if !(scales.len() == 1 || per_channel) || scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return None;
    }
    if let Some(z) = g.input(dq.node, 2) {
        let z = g.constant(z)?;
        if z.dtype != DType::I8 || z.data.iter().any(|&b| b != 0) {
            return None;
        }
    }
    let values = w.data.iter().map(|&b| b as i8).collect();
    Some((shape, values, scales))
}

/// Runs `conv` on the float input `x`, or on `x` quantized already (bytes, by the layer before:
/// [`super::conv::output`]); `a` has explicit pads. The output is f32, or quantized by `bytes`.
pub(crate) fn conv(
    a: &ConvAttrs,
    conv: &Int8Conv,
    x: &Tensor,
    (bias, residual): (Option<&Tensor>, Option<&Tensor>),
    isa: Isa,
    bytes: Option<Quantizer>,
) -> Result<Tensor, RuntimeError> {
    let geo = Geometry::new(a, x, conv.shape)?;
    let epi = epilogue(a, &geo, bias, residual, isa)?;
    let kdim = conv.weights.k();
    if geo.out_plane() == 0 || geo.o == 0 {
        return Ok(output(&geo, &epi, bytes, |_| Vec::new()));
    }
    // Taken, not borrowed, across the parallel tasks: a thread waiting for them may run a
    // concurrent run's convolution meanwhile, which then finds none and makes its own. The
    // part of each that a layer uses is wholly written before it is read, so only a buffer's
    // growth is zeroed ([`at_least`]).
    let (mut quantized, mut padded) = INPUT.take();
    let input: &[u8] = match &x.data {
        TensorData::U8(b) => b,
        _ => {
            // Quantized once here, not per tile: a 3x3 convolution reads each input 9 times,
            // and QuantizeLinear's division (by the reciprocal where that is exact) is the
            // costliest instruction on the way.
            let xv = f32s(x, "input")?;
            let quantized = at_least(&mut quantized, xv.len());
            quant::quantize_to_bytes(isa, conv.quantizer, xv, quantized);
            quantized
        }
    };
    let offset = conv.quantizer.offset() as u8;
    let out = output(&geo, &epi, bytes, |epi| {
        #[cfg(target_arch = "x86_64")]
        if let Some(weights) = conv
            .blocked
            .as_ref()
            .filter(|_| int8_blocked::takes(&geo, isa))
        {
            let mut out = buffers::reuse(geo.n * geo.o * geo.out_plane());
            int8_blocked::conv(&geo, (input, offset), weights, epi, &mut padded, &mut out);
            return out;
        }
        // The tiles finish their sums in scratch when only bytes are kept.
        let mut out = if epi.bytes_only() {
            Vec::new()
        } else {
            buffers::reuse(geo.n * geo.o * geo.out_plane())
        };
        // As the float path does, windows at stride 1 (and deep strided ones) read the phases
        // of the padded bytes in place; padding is the zero point's byte.
        let phases = reads_phases(&geo, kdim).then(|| Phases::new(&geo));
        let padded = match &phases {
            Some(phases) => {
                let padded = at_least(&mut padded, phases.len(&geo));
                phases.fill(&geo, isa, input, padded, offset);
                &padded[..]
            }
            None => &[],
        };
        let source = Source {
            input,
            phases: phases.as_ref().map(|p| (p, padded)),
            zero: offset,
        };
        tiled_conv::run(conv, &geo, isa, source, epi, &mut out, &SCRATCH);
        out
    });
    INPUT.set((quantized, padded));
    Ok(out)
}

/// The first `len` elements of `v`, grown to them if shorter. `v` keeps its length otherwise:
/// shortened, the next longer layer zeroed the difference again, 1% of PicoDet's int8 plan.
fn at_least(v: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if v.len() < len {
        v.resize(len, 0);
    }
    &mut v[..len]
}

impl TileGemm for Int8Conv {
    type Elem = u8;
    type Packed = u8;
    const BYTES_PER_DEPTH: usize = 1;

    fn depth(&self) -> usize {
        self.weights.k()
    }

    fn pack(&self, isa: Isa, src: &[u8], rows: &[usize], n: usize, dst: &mut Vec<u8>) {
        pack_columns(isa, src, rows, n, dst);
    }

    fn multiply(
        &self,
        isa: Isa,
        at: (usize, usize),
        first_oc: usize,
        packed: &[u8],
        out: &mut [&mut [f32]],
    ) {
        let scaling = Scaling {
            offset: self.quantizer.offset(),
            scales: &self.scales[first_oc..first_oc + out.len()],
        };
        self.weights.multiply(isa, at, packed, scaling, out);
    }
}

#[cfg(test)]
mod tests {
    use super::super::isa::Isa;
    use super::*;
    use temblor_ir::{Activation, AutoPad};

    /// The blocked int8 path (VNNI, channel blocks) gives the GEMM path's outputs bit for bit:
    /// the integer sums are exact in any order and become floats the same way. Shapes past a
    /// whole block of inputs and outputs, strided and not, with a partial last tile, int8 and
    /// uint8 inputs, per-channel weight scales, and the SiLU epilogue over a bias.
    #[test]
    fn blocked_int8_convolutions_equal_the_gemm_path() {
        let isa = Isa::detect();
        #[cfg(target_arch = "x86_64")]
        let skip = !isa.vnni();
        #[cfg(not(target_arch = "x86_64"))]
        let skip = true;
        if skip {
            eprintln!("skipped: no AVX-512 VNNI here, so the blocked int8 path never runs");
            return;
        }
        let mut next = super::super::test_values(23);
        // (n, c, h, w, o, kh, kw, strides, pads, signed input)
        let cases = [
            (1, 16, 10, 10, 32, 3, 3, [1, 1], [1, 1, 1, 1], true),
            (2, 20, 9, 7, 40, 3, 3, [2, 2], [1, 0, 1, 1], false),
            (1, 64, 6, 11, 112, 3, 3, [1, 1], [0, 1, 2, 1], true),
            (1, 35, 12, 12, 48, 5, 5, [2, 1], [2, 2, 2, 2], true),
        ];
        for (n, c, h, w, o, kh, kw, strides, pads, signed) in cases {
            let x: Vec<f32> = (0..n * c * h * w).map(|_| 4.0 * next()).collect();
            let weight: Vec<i8> = (0..o * c * kh * kw)
                .map(|_| (next() * 127.0).round() as i8)
                .collect();
            let w_scales: Vec<f32> = (0..o).map(|i| 0.01 + 0.001 * i as f32).collect();
            let quantizer = Quantizer {
                scale: 0.03,
                zero: if signed { -3 } else { 121 },
                signed,
            };
            let bias = Tensor::f32(vec![o], (0..o).map(|_| next()).collect());
            let attrs = ConvAttrs {
                kernel: [kh, kw],
                strides,
                dilations: [1, 1],
                pads,
                auto_pad: AutoPad::NotSet,
                group: 1,
                activation: Some(Activation::Silu),
                affine: None,
            };
            let xt = Tensor::f32(vec![n, c, h, w], x);
            let shape = [o, c, kh, kw];
            let blocked = Int8Conv::new(&weight, shape, 1, quantizer, &w_scales);
            let geo = Geometry::new(&attrs, &xt, shape).expect("geometry");
            assert!(
                blocked.blocked.is_some() && int8_blocked::takes(&geo, isa),
                "{c}->{o} {h}x{w}: not a convolution the blocked path takes"
            );
            let gemm = Int8Conv {
                blocked: None,
                ..Int8Conv::new(&weight, shape, 1, quantizer, &w_scales)
            };
            let run = |conv: &Int8Conv| {
                let out =
                    super::conv(&attrs, conv, &xt, (Some(&bias), None), isa, None).expect("conv");
                out.as_f32().expect("f32").to_vec()
            };
            let (got, want) = (run(&blocked), run(&gemm));
            assert_eq!(got.len(), want.len());
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    e.to_bits(),
                    "{c}->{o} {h}x{w}: element {i}: {g} vs {e}"
                );
            }
        }
    }
}
