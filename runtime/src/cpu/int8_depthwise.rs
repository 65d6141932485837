//! Depthwise convolutions of int8 layers computed in integers. Each output is an exact sum
//! over its window of `(q - zero) · w`, from the quantized input bytes (stored as
//! [`super::int8_gemm`] stores them: `q + 128` for int8) and the int8 weight; the sum then
//! becomes a float as on the GEMM path, `(Σ byte · w - offset · Σ w) · x_scale · w_scale[c]`,
//! before the float epilogue.
//!
//! Each input plane is laid out padded in bytes, padding being the byte that stands for 0, so
//! it adds exactly 0. With AVX-512 VNNI and VBMI, 16 outputs of a row take, per kernel row and
//! per 4 taps of it, one byte permutation (`vpermb`: lane `l` gathers the 4 input bytes its
//! output's taps read, `l · stride + 4q ..`) and one `vpdpbusd` (those 4 bytes times the 4
//! weight bytes, added to the lane): a 3x3 window is 3 of each where the float stencil does 9
//! multiply-adds, and the input is read in bytes, a quarter of the floats. Elsewhere a portable
//! loop adds the same integers, so every machine gives the same bits.
//!
//! A convolution with one output channel over several input channels (a detector head's
//! 5x5 convolutions to one map) is the sum of such planes, one per input channel: its sums
//! are added in integers, then become floats once. On the float stencil, with its input
//! dequantized as it padded each plane, those layers were slower than in the fp32 plan.

use super::buffers;
use super::conv::{epilogue, output, Geometry, SharedOut};
use super::conv_tasks::min_per_job;
use super::epilogue::Epilogue;
use super::int8_gemm::Quantizer;
use super::isa::Isa;
use super::quant;
use crate::{RuntimeError, Tensor, TensorData};
use rayon::prelude::*;
use temblor_ir::ConvAttrs;

/// Outputs one vector holds.
const LANES: usize = 16;
/// Output vectors computed side by side, so that the sums' dependency chains overlap.
const BLOCKS: usize = 4;
/// Outputs finished by one epilogue call, while they are in L1: whole rows, at least
/// [`ROWS`] of them. Four rows a call were seven calls for a 26x26 plane, and with them their
/// loops' tails; with a plane in one call or two, PicoDet's 26x26 and 13x13 depthwise layers
/// took a fifth less time.
const BAND: usize = 2048;
/// What padding and finishing a plane costs, in multiply-adds, for [`min_per_job`].
const PLANE_COST: usize = 4096;
/// The fewest output rows finished by one epilogue call.
const ROWS: usize = 4;
/// The widest kernel row: two words of 4 taps.
const MAX_KW: usize = 8;
/// The window whose first 4 rows [`vnni`] reads by columns: 5 words a column where rows of
/// two words take 8.
const COLUMNS_WINDOW: (usize, usize) = (5, 5);
/// The most taps whose sums, and their difference from `offset · Σ w`, cannot overflow 32 bits:
/// each term is at most 255 · 128 in magnitude, and the two sums' terms add to at most 255 · 255.
const MAX_TAPS: usize = (i32::MAX / (255 * 255)) as usize;

/// An int8 depthwise convolution (one input channel and one output channel a group), or one of
/// a single output channel and group, prepared: the weight as 4-byte words, and what turns each
/// output channel's sums into floats.
#[derive(Debug)]
pub(crate) struct Int8Depthwise {
    /// `[c][kh][quads]` little-endian words of 4 weight bytes, `c` each input channel; taps
    /// past `kw` weigh 0.
    words: Vec<i32>,
    /// Words per kernel row.
    quads: usize,
    /// For 5x5 windows, `[c][5]` words of a column's first 4 taps, one per column of the
    /// window, for [`vnni`]'s kernel of such windows; empty otherwise.
    columns: Vec<i32>,
    /// `offset · Σ w` of each output channel.
    fix: Vec<i32>,
    /// `x_scale · w_scale[o]`.
    scales: Vec<f32>,
    shape: [usize; 4],
    quantizer: Quantizer,
}

impl Int8Depthwise {
    /// The depthwise convolution of int8 weight `weight` (`[c, 1, kh, kw]`), or the
    /// convolution of one output channel (`[1, c, kh, kw]`, one group), over inputs quantized
    /// by `quantizer`, its sums scaled by `scales` (one per output channel), when its window
    /// fits: strides of at most 2 along rows, no dilation, rows of at most [`MAX_KW`] taps (the
    /// vector kernel's reach) and at most [`MAX_TAPS`] in all an output sums. Other such
    /// convolutions keep the float stencils.
    pub fn new(
        weight: &[i8],
        shape: [usize; 4],
        (strides, dilations): ([usize; 2], [usize; 2]),
        quantizer: Quantizer,
        scales: Vec<f32>,
    ) -> Option<Int8Depthwise> {
        let [o, cg, kh, kw] = shape;
        let fits = (cg == 1 || o == 1) && kw <= MAX_KW && cg * kh * kw <= MAX_TAPS;
        let fits = fits && strides[1] <= 2 && dilations == [1, 1];
        let sizes = weight.len() == o * cg * kh * kw && scales.len() == o;
        if !fits || !sizes || o * cg == 0 || kh == 0 || kw == 0 || strides.contains(&0) {
            return None;
        }
        let quads = kw.div_ceil(4);
        let mut words = Vec::with_capacity(o * cg * kh * quads);
        for window in weight.chunks_exact(kh * kw) {
            for row in window.chunks_exact(kw) {
                for quad in row.chunks(4) {
                    let mut bytes = [0u8; 4];
                    for (b, &w) in bytes.iter_mut().zip(quad) {
                        *b = w as u8;
                    }
                    words.push(i32::from_le_bytes(bytes));
                }
            }
        }
        let columns = if (kh, kw) == COLUMNS_WINDOW {
            weight
                .chunks_exact(kh * kw)
                .flat_map(|w| {
                    (0..kw)
                        .map(move |j| i32::from_le_bytes([0, 1, 2, 3].map(|r| w[r * kw + j] as u8)))
                })
                .collect()
        } else {
            Vec::new()
        };
        let offset = quantizer.offset();
        let fix = weight
            .chunks_exact(cg * kh * kw)
            .map(|w| offset * w.iter().map(|&v| i32::from(v)).sum::<i32>())
            .collect();
        Some(Int8Depthwise {
            words,
            quads,
            columns,
            fix,
            scales,
            shape,
            quantizer,
        })
    }

    /// How the convolution quantizes its input.
    pub fn quantizer(&self) -> Quantizer {
        self.quantizer
    }
}

/// Layout of one input plane padded in bytes: every row long enough for the vector kernel's
/// 64-byte loads at each block of outputs.
struct Padded {
    stride: usize,
    rows: usize,
}

impl Padded {
    fn new(geo: &Geometry) -> Padded {
        let width = geo.ow.div_ceil(LANES * BLOCKS) * LANES * BLOCKS;
        Padded {
            stride: width * geo.sw + 64,
            rows: (geo.oh.max(1) - 1) * geo.sh + geo.kh,
        }
    }

    /// Copies input plane `src` (bytes, or floats quantized on the way) into `dst`, the
    /// padding the byte `offset`. A `dst` of this layout's size holds an earlier plane of the
    /// same layer (each call of [`planes`] starts its tasks' scratch empty), whose padding is
    /// this one's, so only the input's part is written again: writing the whole plane each
    /// time was 2% of PicoDet's int8 plan.
    fn fill(&self, geo: &Geometry, src: Plane, q: Quantizer, isa: Isa, dst: &mut Vec<u8>) {
        let offset = q.offset() as u8;
        if dst.len() != self.rows * self.stride {
            dst.clear();
            dst.resize(self.rows * self.stride, offset);
        }
        let (w, first) = (geo.w, geo.pt.min(self.rows));
        let count = if w == 0 {
            0
        } else {
            geo.h.min(self.rows - first)
        };
        let end = (geo.pl + w).min(self.stride);
        let n = end.saturating_sub(geo.pl);
        for (r, row) in dst[first * self.stride..]
            .chunks_exact_mut(self.stride)
            .take(count)
            .enumerate()
        {
            let row = &mut row[geo.pl.min(end)..end];
            match src {
                Plane::Bytes(b) => row.copy_from_slice(&b[r * w..r * w + n]),
                Plane::Floats(x) => quant::bytes_of_row(isa, q, &x[r * w..r * w + n], row),
            }
        }
    }
}

/// One input plane as the layer before left it.
#[derive(Clone, Copy)]
enum Plane<'a> {
    Bytes(&'a [u8]),
    Floats(&'a [f32]),
}

/// Runs `conv` (attributes `a`, explicit pads) on `x`: bytes quantized by the layer before
/// ([`super::conv::output`]), or floats it quantizes as it pads each plane. The output is f32,
/// or quantized by `bytes`.
pub(crate) fn run(
    a: &ConvAttrs,
    conv: &Int8Depthwise,
    x: &Tensor,
    (bias, residual): (Option<&Tensor>, Option<&Tensor>),
    isa: Isa,
    bytes: Option<Quantizer>,
) -> Result<Tensor, RuntimeError> {
    let geo = Geometry::new(a, x, conv.shape)?;
    let epi = epilogue(a, &geo, bias, residual, isa)?;
    let input = match &x.data {
        TensorData::U8(b) => Plane::Bytes(b),
        _ => Plane::Floats(super::f32s(x, "input")?),
    };
    Ok(output(&geo, &epi, bytes, |epi| {
        // Rows finished in scratch when only bytes are kept.
        let mut out = if epi.bytes_only() {
            Vec::new()
        } else {
            buffers::reuse(geo.n * geo.o * geo.out_plane())
        };
        if geo.out_plane() > 0 {
            let layer = Layer::new(&geo, conv, input, epi.isa);
            if conv.shape[1] == 1 {
                planes(&layer, epi, &mut out);
            } else {
                channel_sums(&layer, epi, &mut out);
            }
        }
        out
    }))
}

/// What both forms read their planes with: the layer, its input, and how a plane is padded.
struct Layer<'a> {
    geo: &'a Geometry,
    conv: &'a Int8Depthwise,
    input: Plane<'a>,
    pads: Padded,
    isa: Isa,
    /// Whether the vector kernel runs ([`vector_kernel`]).
    simd: bool,
}

impl<'a> Layer<'a> {
    fn new(geo: &'a Geometry, conv: &'a Int8Depthwise, input: Plane<'a>, isa: Isa) -> Self {
        Layer {
            geo,
            conv,
            input,
            pads: Padded::new(geo),
            isa,
            simd: vector_kernel(isa),
        }
    }

    /// Pads input plane `index` (of `[n, c]`) into `scratch` ([`Padded::fill`]).
    fn pad(&self, index: usize, scratch: &mut Vec<u8>) {
        let (at, len) = (index * self.geo.in_plane(), self.geo.in_plane());
        let src = match self.input {
            Plane::Bytes(b) => Plane::Bytes(&b[at..at + len]),
            Plane::Floats(f) => Plane::Floats(&f[at..at + len]),
        };
        self.pads
            .fill(self.geo, src, self.conv.quantizer, self.isa, scratch);
    }

    /// Input channel `c`'s weight words, its sums scaled as output channel `o`'s.
    fn channel(&self, c: usize, o: usize) -> Channel<'a> {
        let per_row = self.conv.shape[2] * self.conv.quads;
        let kw = self.conv.shape[3];
        Channel {
            words: &self.conv.words[c * per_row..(c + 1) * per_row],
            quads: self.conv.quads,
            columns: self.conv.columns.get(c * kw..(c + 1) * kw).unwrap_or(&[]),
            fix: self.conv.fix[o],
            scale: self.conv.scales[o],
        }
    }

    /// Output row `y` of a plane padded into `scratch`, by `channel`.
    fn row(&self, channel: &Channel, scratch: &[u8], y: usize, out: Out) {
        let (geo, stride) = (self.geo, self.pads.stride);
        channel.row(
            geo,
            self.simd,
            (&scratch[y * geo.sh * stride..], stride),
            out,
        );
    }
}

/// The `[n, c, oh, ow]` output into `out` (empty when the epilogue stores bytes only), in
/// parallel over the planes.
fn planes(layer: &Layer, epi: &Epilogue, out: &mut [f32]) {
    let geo = layer.geo;
    let plane = geo.out_plane();
    // A plane costs about as much to pad and finish as 4K multiply-adds: PicoDet's 7x7
    // planes, 1,225 of them each, took 17 µs a layer on one thread when counted by their
    // multiply-adds alone.
    let min_len = min_per_job(geo.n * geo.c * (plane * geo.kh * geo.kw + PLANE_COST));
    let shared = SharedOut::new(out);
    let band_rows = (BAND / geo.ow).max(ROWS);
    (0..geo.n * geo.c)
        .into_par_iter()
        .with_min_len(min_len)
        .for_each_init(
            || (Vec::<u8>::new(), Vec::<f32>::new()),
            |(scratch, rows), index| {
                let c = index % geo.c;
                layer.pad(index, scratch);
                let channel = layer.channel(c, c);
                for y0 in (0..geo.oh).step_by(band_rows) {
                    let len = band_rows.min(geo.oh - y0) * geo.ow;
                    let start = index * plane + y0 * geo.ow;
                    let band = if epi.bytes_only() {
                        rows.resize(len, 0.0);
                        &mut rows[..]
                    } else {
                        // SAFETY: each task writes the rows of its own plane, once.
                        unsafe { shared.segment(start, len) }
                    };
                    for (dy, row) in band.chunks_exact_mut(geo.ow).enumerate() {
                        layer.row(&channel, scratch, y0 + dy, Out::Floats(row));
                    }
                    epi.apply(c, start, band);
                }
            },
        );
}

/// The output of one channel's row: its outputs as floats, or its sums added to integer ones.
enum Out<'a> {
    Floats(&'a mut [f32]),
    Sums(&'a mut [i32]),
}

impl Out<'_> {
    fn len(&self) -> usize {
        match self {
            Out::Floats(o) => o.len(),
            Out::Sums(o) => o.len(),
        }
    }
}

/// The `[n, 1, oh, ow]` output of a convolution of one output channel into `out` (empty when
/// the epilogue stores bytes only): each thread adds a share of the input channels' sums into
/// a plane of integers of its own, and the planes are added and finished at the end.
fn channel_sums(layer: &Layer, epi: &Epilogue, out: &mut [f32]) {
    let geo = layer.geo;
    let plane = geo.out_plane();
    let macs = geo.c * (plane * geo.kh * geo.kw + PLANE_COST);
    let shares = if min_per_job(macs) == 1 {
        rayon::current_num_threads().min(geo.c)
    } else {
        1
    };
    // The one output channel's conversion of the added sums.
    let finish = layer.channel(0, 0);
    for image in 0..geo.n {
        let partial: Vec<Vec<i32>> = (0..shares)
            .into_par_iter()
            .map(|share| {
                let mut sums = vec![0i32; plane];
                let mut scratch = Vec::new();
                for c in share * geo.c / shares..(share + 1) * geo.c / shares {
                    layer.pad(image * geo.c + c, &mut scratch);
                    let channel = layer.channel(c, 0);
                    for (y, row) in sums.chunks_exact_mut(geo.ow).enumerate() {
                        layer.row(&channel, &scratch, y, Out::Sums(row));
                    }
                }
                sums
            })
            .collect();
        let start = image * plane;
        let mut rows = Vec::new();
        let dst = if epi.bytes_only() {
            rows = buffers::reuse(plane);
            &mut rows[..]
        } else {
            &mut out[start..start + plane]
        };
        for (i, v) in dst.iter_mut().enumerate() {
            *v = finish.value(partial.iter().map(|p| p[i]).sum::<i32>());
        }
        epi.apply(0, start, dst);
        buffers::give_back(rows);
    }
}

/// One channel's weight words and float conversion.
struct Channel<'a> {
    words: &'a [i32],
    quads: usize,
    /// [`Int8Depthwise::columns`]' words of the channel.
    columns: &'a [i32],
    fix: i32,
    scale: f32,
}

impl Channel<'_> {
    #[inline(always)]
    fn value(&self, sum: i32) -> f32 {
        (sum - self.fix) as f32 * self.scale
    }

    /// One output row from the padded rows starting at `input` (`stride` bytes apart), by the
    /// vector kernel where `simd` (the caller checked [`vector_kernel`]).
    fn row(&self, geo: &Geometry, simd: bool, input: (&[u8], usize), out: Out) {
        #[cfg(target_arch = "x86_64")]
        if simd {
            // SAFETY: `vector_kernel` checked the instructions; the padded rows hold the 64
            // bytes every block loads (`Padded::new`).
            return unsafe { vnni::row(geo, self, input, out) };
        }
        let _ = simd;
        portable_row(geo, self, input, out);
    }
}

/// Whether the vector kernel runs on `isa`: AVX-512 VNNI (which the plan's `Isa` says) and
/// VBMI's byte permutation.
fn vector_kernel(isa: Isa) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        isa.vnni() && std::arch::is_x86_feature_detected!("avx512vbmi")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        false
    }
}

/// One output row from the padded rows starting at `input` (`stride` bytes apart): the same
/// integer sums as the vector kernel.
fn portable_row(geo: &Geometry, ch: &Channel, (input, stride): (&[u8], usize), mut out: Out) {
    for x in 0..out.len() {
        let mut sum = 0i32;
        for r in 0..geo.kh {
            let row = &input[r * stride + x * geo.sw..];
            for (q, &word) in ch.words[r * ch.quads..(r + 1) * ch.quads]
                .iter()
                .enumerate()
            {
                for (b, w) in word.to_le_bytes().into_iter().enumerate() {
                    sum += i32::from(row[4 * q + b]) * i32::from(w as i8);
                }
            }
        }
        match &mut out {
            Out::Floats(o) => o[x] = ch.value(sum),
            Out::Sums(o) => o[x] += sum,
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni;

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_ir::AutoPad;

    /// Every instruction set (the vector kernel where the machine has it, the portable loop
    /// everywhere) gives, bit for bit, the sums written from the definition: over each window
    /// (of one input channel, or of all for a single output channel), `Σ (q - zero) · w` of
    /// QuantizeLinear's `q` with padding 0, times `x_scale · w_scale[o]`.
    /// Strides 1 and 2, windows of one and two words a row, asymmetric pads, rows past one
    /// block of 64 outputs with tails, two images, int8 and uint8, bytes and floats in.
    #[test]
    fn depthwise_sums_are_exact_on_every_instruction_set() {
        let mut next = super::super::test_values(7);
        // (n, c, h, w, kh, kw, strides, pads [t, l, b, r], signed, one output channel over
        // all `c` instead of one for each)
        let cases = [
            (1, 5, 9, 11, 3, 3, [1, 1], [1, 1, 1, 1], true, false),
            (2, 3, 19, 131, 5, 5, [2, 2], [2, 2, 2, 2], false, false),
            (1, 4, 7, 70, 3, 3, [2, 2], [0, 1, 1, 0], true, false),
            (1, 2, 12, 67, 7, 7, [1, 1], [3, 3, 3, 3], false, false),
            (1, 3, 5, 40, 1, 8, [1, 2], [0, 4, 0, 3], true, false),
            (2, 6, 13, 29, 5, 5, [1, 1], [2, 2, 2, 2], true, true),
            (1, 40, 9, 70, 3, 3, [2, 2], [1, 1, 1, 1], false, true),
            (1, 8, 7, 7, 5, 5, [1, 1], [2, 2, 2, 2], true, false),
        ];
        for (n, c, h, w, kh, kw, strides, pads, signed, one) in cases {
            let x: Vec<f32> = (0..n * c * h * w).map(|_| 3.0 * next()).collect();
            let weight: Vec<i8> = (0..c * kh * kw)
                .map(|_| (next() * 254.0).round() as i8)
                .collect();
            let o = if one { 1 } else { c };
            let w_scales: Vec<f32> = (0..o).map(|i| 0.02 + 0.003 * i as f32).collect();
            let q = Quantizer {
                scale: 0.025,
                zero: if signed { -5 } else { 117 },
                signed,
            };
            let attrs = ConvAttrs {
                kernel: [kh, kw],
                strides,
                dilations: [1, 1],
                pads,
                auto_pad: AutoPad::NotSet,
                group: if one { 1 } else { c },
                activation: None,
                affine: None,
            };
            let shape = if one { [1, c, kh, kw] } else { [c, 1, kh, kw] };
            let scales = w_scales.iter().map(|s| q.scale * s).collect();
            let conv = Int8Depthwise::new(&weight, shape, (strides, [1, 1]), q, scales)
                .expect("a window the kernel takes");
            let floats = Tensor::f32(vec![n, c, h, w], x.clone());
            let mut bytes = vec![0u8; x.len()];
            quant::bytes_of_row(Isa::detect(), q, &x, &mut bytes);
            let geo = Geometry::new(&attrs, &floats, shape).expect("geometry");
            let quantized = |i: usize| i64::from(bytes[i]) - i64::from(q.offset());
            // The input channels each output sums over.
            let reads = |oc: usize| if one { 0..c } else { oc..oc + 1 };
            let mut want = Vec::new();
            for (image, oc, y, xo) in (0..n).flat_map(|i| {
                (0..o).flat_map(move |oc| {
                    (0..geo.oh).flat_map(move |y| (0..geo.ow).map(move |xo| (i, oc, y, xo)))
                })
            }) {
                let mut sum = 0i64;
                for ch in reads(oc) {
                    for (r, s) in (0..kh).flat_map(|r| (0..kw).map(move |s| (r, s))) {
                        let iy = (y * strides[0] + r) as isize - pads[0] as isize;
                        let ix = (xo * strides[1] + s) as isize - pads[1] as isize;
                        if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                            let at = ((image * c + ch) * h + iy as usize) * w + ix as usize;
                            sum += quantized(at) * i64::from(weight[(ch * kh + r) * kw + s]);
                        }
                    }
                }
                want.push(sum as f32 * (q.scale * w_scales[oc]));
            }
            let inputs = [
                floats,
                Tensor {
                    shape: vec![n, c, h, w],
                    data: TensorData::U8(bytes.clone()),
                },
            ];
            for isa in Isa::available() {
                for input in &inputs {
                    let out = run(&attrs, &conv, input, (None, None), isa, None).expect("runs");
                    let got = out.as_f32().expect("f32");
                    assert_eq!(got.len(), want.len());
                    for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(
                            g.to_bits(),
                            e.to_bits(),
                            "{isa:?} {kh}x{kw} stride {strides:?} over {h}x{w}: output {i}: \
                             {g} vs {e}"
                        );
                    }
                }
            }
        }
    }
}
