//! Depthwise convolution (one input channel per group): every output channel is a small
//! stencil over one input plane, so it runs as a direct loop, in parallel over output planes.
//! A convolution with only a few output channels (a detection head's 96 -> 1 objectness conv)
//! runs on the same stencils, summed over its input channels (see [`few_outputs`]).
//!
//! Each input plane is first copied into a zero-padded f32 scratch plane, so the stencil needs
//! no boundary handling; the copy is also where an input is read as the layer reads it (see
//! [`Reader`]: a bf16 layer's input widened, an int8 layer's quantized and dequantized). With a
//! column stride above 1 each padded row is stored de-interleaved into its stride phases, so
//! that every tap reads a contiguous run. Outputs are then computed
//! a block of rows and a vector of columns at a time by the kernels of [`super::stencil`], and
//! each block of rows is finished with the epilogue while it is still in L1.

use super::buffers;
use super::conv::{Geometry, Tap};
use super::conv_gemm::MR;
use super::conv_tasks::min_per_job;
use super::epilogue::Epilogue;
use super::int8_gemm::Quantizer;
use super::isa::Isa;
use super::quant;
use super::stencil::{Block, LANES, ROWS};
use crate::bf16;
use rayon::prelude::*;

/// How the stencils read an input plane of elements of type `X` into f32 as they pad it, so
/// that a layer whose input is converted first (a bf16 layer's widened, an int8 layer's
/// quantized and dequantized) reads it as it is, without a converted copy of the whole tensor.
pub(crate) trait Reader<X: Copy>: Sync {
    /// `dst[i]` is `src[i]` read.
    fn read_into(&self, src: &[X], dst: &mut [f32]);

    /// `src` read, into `buf` unless it is f32 already.
    fn plane<'a>(&self, src: &'a [X], buf: &'a mut Vec<f32>) -> &'a [f32] {
        buf.resize(src.len(), 0.0);
        self.read_into(src, buf);
        buf
    }
}

/// Values read as they are: f32, or bf16 widened (exactly, its bits shifted into the upper
/// half).
pub(crate) struct AsIs;

impl Reader<f32> for AsIs {
    fn read_into(&self, src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(&src[..dst.len()]);
    }

    fn plane<'a>(&self, src: &'a [f32], _: &'a mut Vec<f32>) -> &'a [f32] {
        src
    }
}

impl Reader<bf16> for AsIs {
    fn read_into(&self, src: &[bf16], dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = f32::from_bits((s.to_bits() as u32) << 16);
        }
    }
}

/// An int8 layer's `DequantizeLinear(QuantizeLinear(x))`: the very values of the standalone
/// pass (`quant::fake_quantize`), compiled for the plan's instruction set (in baseline x86-64
/// its rounding is a library call per element).
pub(crate) struct FakeQuantize {
    pub quantizer: Quantizer,
    pub isa: Isa,
}

impl Reader<f32> for FakeQuantize {
    fn read_into(&self, src: &[f32], dst: &mut [f32]) {
        quant::fake_quantize_row(self.quantizer, self.isa, src, dst);
    }
}

/// The same values when the layer before quantized them already ([`super::conv::output`]):
/// the bytes dequantized.
pub(crate) struct Dequantize {
    pub quantizer: Quantizer,
    pub isa: Isa,
}

impl Reader<u8> for Dequantize {
    fn read_into(&self, src: &[u8], dst: &mut [f32]) {
        quant::dequantize_row(self.quantizer, self.isa, src, dst);
    }
}

/// The convolutions the stencils run, whatever the layer's precision: a GEMM has too little to
/// reuse in them (a depthwise one has one input channel a group; a few outputs over a window
/// fill few rows of the GEMM's panels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stencil {
    Depthwise,
    FewOutputs,
}

impl Stencil {
    /// The stencil of a convolution of `group` groups and weight `[o, cg, kh, kw]`, if any.
    pub fn of(group: usize, [o, cg, kh, kw]: [usize; 4]) -> Option<Stencil> {
        if cg == 1 {
            Some(Stencil::Depthwise)
        } else if group == 1 && o < MR && kh * kw > 1 {
            Some(Stencil::FewOutputs)
        } else {
            None
        }
    }

    /// The `[n, o, oh, ow]` output of the convolution `geo`, reading its input as `input`
    /// says; `wv` is its f32 weight.
    pub fn run<X: Copy + Sync>(
        self,
        geo: &Geometry,
        input: (&[X], &impl Reader<X>),
        wv: &[f32],
        epi: &Epilogue,
    ) -> Vec<f32> {
        let len = geo.n * geo.o * geo.out_plane();
        match self {
            // The depthwise kernel writes every output; `few_outputs` sums into its output.
            Stencil::Depthwise => {
                let mut out = buffers::reuse(len);
                depthwise(geo, input, wv, epi, &mut out);
                out
            }
            Stencil::FewOutputs => {
                let mut out = buffers::zeros(len);
                few_outputs(geo, input, wv, epi, &mut out);
                out
            }
        }
    }
}

/// `out` receives the `[n, o, oh, ow]` output; `wv` holds the `[o, 1, kh, kw]` weight.
pub(crate) fn depthwise<X: Copy + Sync>(
    geo: &Geometry,
    (xv, read): (&[X], &impl Reader<X>),
    wv: &[f32],
    epi: &Epilogue,
    out: &mut [f32],
) {
    let isa = epi.isa;
    let plane = geo.out_plane();
    if plane == 0 {
        return;
    }
    let per_input = geo.o / geo.c;
    let taps = geo.kh * geo.kw;
    let pads = Padded::new(geo);
    let min_len = min_per_job(out.len() * taps);
    out.par_chunks_mut(plane)
        .enumerate()
        .with_min_len(min_len)
        .for_each_init(
            <(Vec<f32>, Vec<f32>)>::default,
            |(scratch, read_buf), (index, dst)| {
                let (image, oc) = (index / geo.o, index % geo.o);
                let first = (image * geo.c + oc / per_input) * geo.in_plane();
                let src = &xv[first..first + geo.in_plane()];
                let kernel = &wv[oc * taps..(oc + 1) * taps];
                pads.fill(geo, isa, src, (read, read_buf), scratch);
                let mut y = 0;
                while y < geo.oh {
                    let rows = ROWS.min(geo.oh - y);
                    let block = &mut dst[y * geo.ow..(y + rows) * geo.ow];
                    pads.compute(isa, scratch, kernel, y, rows, block);
                    // The block's rows are contiguous: one epilogue call for all of them (a call
                    // per row cost as much as the stencil on narrow planes).
                    epi.apply(oc, index * plane + y * geo.ow, block);
                    y += rows;
                }
            },
        );
}

/// A group-1 convolution with few output channels, as the sum over input channels of depthwise
/// stencils. As a GEMM it would fill few rows of each register block and lay out an im2col
/// matrix of `c * kh * kw` rows for a handful of outputs; here each input plane is padded once
/// and read in L1. Threads take contiguous runs of input channels and sum into planes of their
/// own, added in channel order afterwards, so the result does not depend on scheduling.
pub(crate) fn few_outputs<X: Copy + Sync>(
    geo: &Geometry,
    (xv, read): (&[X], &impl Reader<X>),
    wv: &[f32],
    epi: &Epilogue,
    out: &mut [f32],
) {
    let isa = epi.isa;
    let plane = geo.out_plane();
    if plane == 0 || geo.c == 0 {
        return;
    }
    let taps = geo.kh * geo.kw;
    let pads = Padded::new(geo);
    let run = geo.c.div_ceil(rayon::current_num_threads()).max(1);
    for (image, dst) in out.chunks_exact_mut(geo.o * plane).enumerate() {
        let partials: Vec<Vec<f32>> = (0..geo.c)
            .step_by(run)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|c0| {
                let mut sum = vec![0.0f32; geo.o * plane];
                let (mut scratch, mut read_buf) = (Vec::new(), Vec::new());
                let mut block = vec![0.0f32; ROWS * geo.ow];
                for c in c0..(c0 + run).min(geo.c) {
                    let first = (image * geo.c + c) * geo.in_plane();
                    let src = &xv[first..first + geo.in_plane()];
                    pads.fill(geo, isa, src, (read, &mut read_buf), &mut scratch);
                    for oc in 0..geo.o {
                        let kernel = &wv[(oc * geo.c + c) * taps..][..taps];
                        let mut y = 0;
                        while y < geo.oh {
                            let rows = ROWS.min(geo.oh - y);
                            let stencil = &mut block[..rows * geo.ow];
                            pads.compute(isa, &scratch, kernel, y, rows, stencil);
                            let at = oc * plane + y * geo.ow;
                            for (s, v) in sum[at..at + rows * geo.ow].iter_mut().zip(&*stencil) {
                                *s += v;
                            }
                            y += rows;
                        }
                    }
                }
                sum
            })
            .collect();
        for part in &partials {
            for (d, v) in dst.iter_mut().zip(part) {
                *d += v;
            }
        }
        for (oc, out_plane) in dst.chunks_exact_mut(plane).enumerate() {
            epi.apply(oc, (image * geo.o + oc) * plane, out_plane);
        }
    }
}

/// Layout of the zero-padded, phase-split copy of one input plane.
struct Padded {
    /// Length of one stride phase of a padded row.
    phase: usize,
    /// Length of one padded row (all its phases).
    stride: usize,
    /// Number of padded rows.
    rows: usize,
    /// Scratch offset of every tap, relative to the first input element of an output row.
    offsets: Vec<usize>,
    /// Scratch offset between consecutive output rows.
    step: usize,
    /// See [`Block::square`].
    square: Option<usize>,
    sw: usize,
    pt: usize,
    pl: usize,
    h: usize,
    w: usize,
}

impl Padded {
    fn new(geo: &Geometry) -> Padded {
        let sw = geo.sw.max(1);
        let width = geo.ow.div_ceil(LANES) * LANES;
        let reach = geo.kw.max(1).saturating_sub(1) * geo.dw;
        let phase = width + reach / sw + 1;
        let stride = sw * phase;
        let rows = (geo.oh.max(1) - 1) * geo.sh + geo.kh.max(1).saturating_sub(1) * geo.dh + 1;
        let offsets = (0..geo.kh)
            .flat_map(|i| {
                (0..geo.kw).map(move |j| {
                    let c = j * geo.dw;
                    i * geo.dh * stride + (c % sw) * phase + c / sw
                })
            })
            .collect();
        Padded {
            phase,
            stride,
            rows,
            offsets,
            step: geo.sh * stride,
            square: (geo.kh == geo.kw && [geo.sh, geo.sw, geo.dh, geo.dw] == [1; 4])
                .then_some(geo.kh),
            sw,
            pt: geo.pt,
            pl: geo.pl,
            h: geo.h,
            w: geo.w,
        }
    }

    /// Copies the input plane `src`, as `read` reads it (into `buf` where it converts), into
    /// `scratch`, zero-padded and phase-split. The padding is never written, so a scratch
    /// buffer of the right size already holds its zeros.
    fn fill<X: Copy>(
        &self,
        geo: &Geometry,
        isa: Isa,
        src: &[X],
        (read, buf): (&impl Reader<X>, &mut Vec<f32>),
        scratch: &mut Vec<f32>,
    ) {
        // The whole plane read at once: row by row, the calls cost more than the reading on
        // PicoDet's 13x13 planes.
        let src = read.plane(src, buf);
        if scratch.len() != self.rows * self.stride {
            scratch.clear();
            scratch.resize(self.rows * self.stride, 0.0);
        }
        let first = self.pt.min(self.rows);
        let count = if self.w == 0 {
            0
        } else {
            self.h.min(self.rows - first)
        };
        let rows = scratch[first * self.stride..].chunks_exact_mut(self.stride);
        for (prow, line) in rows.take(count).zip(src.chunks_exact(geo.w.max(1))) {
            if self.sw == 1 {
                let n = self.w.min(self.stride.saturating_sub(self.pl));
                prow[self.pl..self.pl + n].copy_from_slice(&line[..n]);
            } else if self.sw == 2 {
                self.split_pairs(prow, line, isa);
            } else {
                for x0 in 0..self.sw.min(self.w) {
                    let c = x0 + self.pl;
                    let (p, k) = (c % self.sw, c / self.sw);
                    if k >= self.phase {
                        continue;
                    }
                    let dst = &mut prow[p * self.phase + k..(p + 1) * self.phase];
                    for (d, &v) in dst.iter_mut().zip(line[x0..].iter().step_by(self.sw)) {
                        *d = v;
                    }
                }
            }
        }
    }

    /// One padded row of a stride-2 convolution: input column `x` goes to phase `(x + pl) % 2`
    /// at index `(x + pl) / 2`, each phase gathered 16 floats a permute on AVX-512 (a loop over
    /// pairs of columns that the baseline build could not vectorize well took 58% of a 96-channel
    /// 3x3 stride-2 depthwise convolution over 52x52, 3.5x onnxruntime's time).
    fn split_pairs(&self, prow: &mut [f32], line: &[f32], isa: Isa) {
        let (even, odd) = prow.split_at_mut(self.phase);
        let (first, second) = if self.pl.is_multiple_of(2) {
            (even, odd)
        } else {
            (odd, even)
        };
        // Column 2i lands at `first[i]`, column 2i+1 at `second[i]`, where they have room.
        let first = first.get_mut(self.pl / 2..).unwrap_or_default();
        let second = second.get_mut(self.pl.div_ceil(2)..).unwrap_or_default();
        let evens = line.len().div_ceil(2).min(first.len());
        let odds = (line.len() / 2).min(second.len());
        f32::every(line, 2, &mut first[..evens], isa);
        f32::every(
            line.get(1..).unwrap_or_default(),
            2,
            &mut second[..odds],
            isa,
        );
    }

    /// Computes `rows` (1 to [`ROWS`]) output rows from `y` into `out`.
    fn compute(
        &self,
        isa: Isa,
        scratch: &[f32],
        kernel: &[f32],
        y: usize,
        rows: usize,
        out: &mut [f32],
    ) {
        debug_assert_eq!(out.len() % rows, 0);
        let block = Block {
            scratch,
            offsets: &self.offsets,
            kernel,
            base: y * self.step,
            step: self.step,
            ow: out.len() / rows,
            square: self.square,
        };
        block.run(isa, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain per-tap loop with boundary checks: the reference.
    fn reference(geo: &Geometry, x: &[f32], k: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0f32; geo.out_plane()];
        for y in 0..geo.oh {
            for ox in 0..geo.ow {
                let mut acc = 0.0f32;
                for i in 0..geo.kh {
                    for j in 0..geo.kw {
                        let iy = (y * geo.sh + i * geo.dh).checked_sub(geo.pt);
                        let ix = (ox * geo.sw + j * geo.dw).checked_sub(geo.pl);
                        if let (Some(iy), Some(ix)) = (iy, ix) {
                            if iy < geo.h && ix < geo.w {
                                acc += k[i * geo.kw + j] * x[iy * geo.w + ix];
                            }
                        }
                    }
                }
                out[y * geo.ow + ox] = acc;
            }
        }
        out
    }

    fn run(geo: &Geometry, x: &[f32], k: &[f32], isa: Isa) -> Vec<f32> {
        let pads = Padded::new(geo);
        let mut scratch = Vec::new();
        let mut out = vec![0.0f32; geo.out_plane()];
        // Twice, so the second pass runs on a reused scratch buffer.
        for _ in 0..2 {
            pads.fill(geo, isa, x, (&AsIs, &mut Vec::new()), &mut scratch);
            let mut y = 0;
            while y < geo.oh {
                let rows = ROWS.min(geo.oh - y);
                let block = &mut out[y * geo.ow..(y + rows) * geo.ow];
                pads.compute(isa, &scratch, k, y, rows, block);
                y += rows;
            }
        }
        out
    }

    #[test]
    fn matches_reference() {
        // (h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr)
        let cases = [
            (13, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),
            (12, 21, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2),
            (9, 11, 3, 5, 2, 3, 2, 1, 0, 3, 1, 0),
            (7, 30, 3, 3, 1, 2, 1, 2, 2, 0, 0, 2),
            (5, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0),
            (6, 9, 4, 2, 3, 1, 1, 3, 1, 2, 3, 1),
            // 5x5 at unit stride, rows in blocks of 6, 6 and 1, columns past a vector.
            (13, 37, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2),
            // Stride 2 with an odd left pad (the usual 3x3), odd and even widths.
            (10, 19, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1),
            (8, 20, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0),
            (9, 37, 5, 5, 2, 2, 1, 1, 2, 3, 2, 1),
        ];
        let mut next = super::super::test_values(1);
        for (h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr) in cases {
            let oh = (h + pt + pb - dh * (kh - 1) - 1) / sh + 1;
            let ow = (w + pl + pr - dw * (kw - 1) - 1) / sw + 1;
            let geo = Geometry {
                n: 1,
                c: 1,
                h,
                w,
                o: 1,
                group: 1,
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
            let x: Vec<f32> = (0..h * w).map(|_| next()).collect();
            let k: Vec<f32> = (0..kh * kw).map(|_| next()).collect();
            let want = reference(&geo, &x, &k);
            for isa in Isa::available() {
                let got = run(&geo, &x, &k, isa);
                for (g, e) in got.iter().zip(&want) {
                    assert!(
                        (g - e).abs() <= 1e-6,
                        "{g} vs {e} for {h}x{w} k{kh}x{kw} s{sh},{sw}"
                    );
                }
            }
        }
    }

    #[test]
    fn few_outputs_sum_the_stencils_of_every_input_channel() {
        let mut next = super::super::test_values(7);
        // (n, c, o, h, w, k, stride, pad): odd sizes, more channels than threads, two images.
        for (n, c, o, h, w, k, s, p) in [(2, 5, 1, 9, 13, 5, 1, 2), (1, 7, 3, 11, 8, 3, 2, 1)] {
            let plane = |len: usize| (len + 2 * p - k) / s + 1;
            let geo = Geometry {
                n,
                c,
                h,
                w,
                o,
                group: 1,
                kh: k,
                kw: k,
                oh: plane(h),
                ow: plane(w),
                sh: s,
                sw: s,
                dh: 1,
                dw: 1,
                pt: p,
                pl: p,
            };
            let single = Geometry {
                c: 1,
                o: 1,
                n: 1,
                ..geo
            };
            let x: Vec<f32> = (0..n * c * h * w).map(|_| next()).collect();
            let wv: Vec<f32> = (0..o * c * k * k).map(|_| next()).collect();
            let bias: Vec<f32> = (0..o).map(|_| next()).collect();
            let epi = Epilogue {
                isa: Isa::detect(),
                bias: Some(&bias),
                residual: None,
                activation: None,
                affine: None,
                bytes: None,
            };
            let out_plane = geo.out_plane();
            let mut got = vec![0.0f32; n * o * out_plane];
            few_outputs(&geo, (&x, &AsIs), &wv, &epi, &mut got);
            for image in 0..n {
                for oc in 0..o {
                    let mut want = vec![bias[oc]; out_plane];
                    for ch in 0..c {
                        let xs = &x[(image * c + ch) * h * w..][..h * w];
                        let ks = &wv[(oc * c + ch) * k * k..][..k * k];
                        for (acc, v) in want.iter_mut().zip(reference(&single, xs, ks)) {
                            *acc += v;
                        }
                    }
                    let have = &got[(image * o + oc) * out_plane..][..out_plane];
                    for (g, e) in have.iter().zip(&want) {
                        assert!((g - e).abs() <= 1e-5, "{g} vs {e}");
                    }
                }
            }
        }
    }
}
