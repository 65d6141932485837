//! A fused pair with a pointwise expansion, band by band in channels-last blocks on AVX-512.
//!
//! Over NCHW each band ran the expansion's GEMM, a separate pass of its epilogue, the
//! depthwise convolution (for stride 2 after splitting every row into its two phases) and a
//! copy of the band into the output; bands of 2 MiB recomputed the rows of their windows'
//! halo. Here the intermediate's rows are laid out `[column][channel]`, channels padded to
//! whole blocks of 16, with the depthwise convolution's padding around them, in a ring of the
//! rows one window spans:
//! - the expansion computes 8 positions by up to 3 channel blocks in registers, from
//!   broadcasts of the NCHW input and vectors of the weight, adds the bias in registers (and
//!   a ReLU), and any other activation runs over each finished row;
//! - the depthwise convolution takes each tap as a vector of 16 channels at any stride, for 8
//!   positions at a time, transposes 16 positions into the output's 16 channel rows, adding
//!   a bias and a ReLU in registers before storing them, or, for any other epilogue, the
//!   convolution's own epilogue finishes each row.
//!
//! In CenterFace at two threads its 16 -> 96 expansion and stride-2 depthwise pair went from
//! 4.7-4.9 to 2.6-2.8 ms (medians), and the sum of its layers' fastest runs from 28.5-29.4 to
//! 25.6-26.1 ms. Intermediates under 8 MiB stay unfused: one band a thread lost to the
//! unfused kernels there (PicoDet COCO 13.0 -> 14.2 ms fused from 0.5 MiB).
//!
//! Every value is summed as the unfused kernels sum it: the expansion from zero over the input
//! channels in order, as the GEMM path's kernel does; the depthwise taps from zero in
//! row-major order, as its stencils do; and the epilogues are theirs. So the results are the
//! unfused pair's, bit for bit.

use super::super::buffers;
use super::super::conv::{Geometry, SharedOut};
use super::super::conv_blocked::avx512::transpose16;
use super::super::conv_gemm::ConvGemm;
use super::super::epilogue::{finish, Epilogue};
use std::arch::x86_64::{
    __m512, _mm512_add_ps, _mm512_cmp_ps_mask, _mm512_fmadd_ps, _mm512_loadu_ps,
    _mm512_mask_mov_ps, _mm512_mask_storeu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
    _CMP_LT_OQ,
};
use temblor_ir::{Activation, Affine};

/// Channels per block: one vector.
const LANES: usize = 16;
/// Expansion outputs per tile: 8 positions by up to 3 blocks keep 24 sums in registers.
const TILE: usize = 8;
const BLOCKS: usize = 3;

/// The pair's weights in the layouts the kernels read.
pub(super) struct Packed {
    /// Channel blocks of the intermediate.
    pub blocks: usize,
    /// The expansion's weight `[c][blocks·16]`, zero past its outputs.
    pub expand: Vec<f32>,
    /// Its bias over `blocks·16` channels, zero past its outputs.
    pub bias: Option<Vec<f32>>,
    pub activation: Option<Activation>,
    pub affine: Option<Affine>,
    /// The depthwise weight `[blocks][kh·kw][16]`, zero past its channels.
    pub depthwise: Vec<f32>,
}

impl Packed {
    /// `expand` is `[e, c]` (a 1x1 weight), `bias` `[e]`, `depthwise` `[e, kh·kw]`.
    pub fn new(
        (expand, c): (&[f32], usize),
        bias: Option<&[f32]>,
        (activation, affine): (Option<Activation>, Option<Affine>),
        (depthwise, taps): (&[f32], usize),
    ) -> Packed {
        let e = depthwise.len() / taps;
        let blocks = e.div_ceil(LANES);
        let width = blocks * LANES;
        let mut w = vec![0.0; c * width];
        for (o, row) in expand.chunks_exact(c).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                w[i * width + o] = v;
            }
        }
        let bias = bias.map(|b| {
            let mut v = vec![0.0; width];
            v[..e].copy_from_slice(b);
            v
        });
        let mut d = vec![0.0; blocks * taps * LANES];
        for (o, k) in depthwise.chunks_exact(taps).enumerate() {
            for (t, &v) in k.iter().enumerate() {
                d[((o / LANES) * taps + t) * LANES + o % LANES] = v;
            }
        }
        Packed {
            blocks,
            expand: w,
            bias,
            activation,
            affine,
            depthwise: d,
        }
    }
}

impl Packed {
    /// Whether the expansion's activation is a ReLU alone, which its tiles apply in registers.
    fn relu_in_registers(&self) -> bool {
        self.activation == Some(Activation::Relu) && self.affine.is_none()
    }
}

/// One band: depthwise output rows `y0..y1` of image `image`.
pub(super) struct Band {
    pub image: usize,
    pub y0: usize,
    pub y1: usize,
}

/// The padded width of the intermediate's rows: every column a tap reads, and every column of
/// the intermediate.
fn padded_width(geo: &Geometry) -> usize {
    ((geo.ow - 1) * geo.sw + (geo.kw - 1) * geo.dw + 1).max(geo.pl + geo.w)
}

/// Rows of the intermediate a window spans, which the ring of [`band`] holds.
fn span(geo: &Geometry) -> usize {
    (geo.kh - 1) * geo.dh + 1
}

/// Floats of the ring of intermediate rows a band keeps.
fn ring_len(geo: &Geometry, blocks: usize) -> usize {
    span(geo) * padded_width(geo) * blocks * LANES
}

/// Floats of the `scratch` of [`band`]: the ring, and the slack to start it on a cache line.
pub(super) fn scratch_len(geo: &Geometry, blocks: usize) -> usize {
    ring_len(geo, blocks) + LANES - 1
}

/// Where a band's depthwise rows go.
pub(super) enum Sink<'a> {
    /// Into the whole NCHW depthwise output.
    Out(&'a SharedOut<'a, f32>),
    /// Through a pointwise projection that alone reads them ([`Projection`]).
    Project(&'a Projection<'a>),
}

/// A 1x1 convolution of the depthwise output (the projection of an inverted residual block),
/// run over a few of a band's finished depthwise rows at a time while they are in cache, so
/// that the depthwise output, the widest tensor of the block, never reaches memory.
pub(super) struct Projection<'a> {
    /// Its weight, `outputs` rows by the depthwise channels.
    pub gemm: &'a ConvGemm<'a>,
    pub outputs: usize,
    /// Its epilogue (bias, residual, activation), over its whole output.
    pub epi: &'a Epilogue<'a>,
    /// Its whole NCHW output, the depthwise output's height and width.
    pub out: &'a SharedOut<'a, f32>,
}

/// Floats of depthwise rows a band keeps for its projection: 512 KiB, in L2 beside the ring.
const PROJECTED_FLOATS: usize = 1 << 17;

/// Computes band `b` of the depthwise convolution `geo` (its input the intermediate) of the
/// expansion of `x` (the whole NCHW input, `c` channels of `geo.h × geo.w`) into `sink`,
/// finished with `epi`. The intermediate's padded rows (row `r` is row
/// `r - pt` of the intermediate, or zeros) are computed once each, in order, into a ring in
/// `scratch` of the rows one window spans: output row `y` reads padded rows `y·sh + i·dh`, so
/// each new row replaces one no later output row reads. Only a band's first rows are also
/// computed by the band above.
///
/// # Safety
/// AVX-512F must be available, and no other call may write band `b`'s rows of the sink's
/// output.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn band(
    geo: &Geometry,
    (x, c): (&[f32], usize),
    w: &Packed,
    b: &Band,
    scratch: &mut [f32],
    epi: &Epilogue,
    sink: &Sink,
) {
    let width = w.blocks * LANES;
    let wp = padded_width(geo);
    let row = wp * width;
    let ring = span(geo);
    assert!(scratch.len() == scratch_len(geo, w.blocks));
    // On a cache line, each vector of 16 channels the depthwise taps load is one line; off
    // it, two (CenterFace's three pointwise pairs 7-18% faster, fastest runs).
    let skip = scratch.as_ptr().align_offset(64).min(LANES - 1);
    let scratch = &mut scratch[skip..][..ring_len(geo, w.blocks)];
    assert!(w.expand.len() == c * width && x.len() >= (b.image + 1) * c * geo.h * geo.w);
    let plane = geo.h * geo.w;
    let image = &x[b.image * c * plane..][..c * plane];
    // Padded rows `b.y0·sh..next` are in the ring.
    let mut next = b.y0 * geo.sh;
    let taps = geo.kh * geo.kw;
    let mut rows = [std::ptr::null_mut::<f32>(); LANES];
    // Where each tap of the current output row reads in the ring; one buffer for the band,
    // since an allocation for each row and block cost CenterFace's 24 -> 144 pair 7%.
    let mut offsets = Vec::with_capacity(taps);
    let in_registers = InRegisters::of(epi);
    // With a projection, the depthwise rows `[channel][row][column]` of up to `held` rows
    // from `first`, and where each channel's rows start. Its depthwise epilogue has no
    // residual or bytes, which would read the rows' offsets in the (unwritten) whole output.
    assert!(matches!(sink, Sink::Out(_)) || (epi.residual.is_none() && epi.bytes.is_none()));
    let (held, mut rows_held, starts) = match sink {
        Sink::Out(_) => (0, Vec::new(), Vec::new()),
        Sink::Project(_) => {
            let held = (PROJECTED_FLOATS / (geo.o * geo.ow))
                .min(b.y1 - b.y0)
                .max(1);
            let starts: Vec<usize> = (0..geo.o).map(|ch| ch * held * geo.ow).collect();
            (held, buffers::reuse(geo.o * held * geo.ow), starts)
        }
    };
    let mut first = b.y0;
    for y in b.y0..b.y1 {
        while next < y * geo.sh + ring {
            let dst = &mut scratch[(next % ring) * row..][..row];
            match (next.checked_sub(geo.pt)).filter(|&r| r < geo.h) {
                Some(r) => {
                    dst[..geo.pl * width].fill(0.0);
                    dst[(geo.pl + geo.w) * width..].fill(0.0);
                    let dst = &mut dst[geo.pl * width..][..geo.w * width];
                    // SAFETY: AVX-512F as above; the row's columns lie in `image`.
                    unsafe { expand_row(&image[r * geo.w..], (plane, c, geo.w), w, dst) };
                    // The bias is in; over the whole row, the activation's loop runs 16 lanes
                    // wide.
                    if !w.relu_in_registers() {
                        finish(dst, None, None, w.activation, w.affine);
                    }
                }
                None => dst.fill(0.0),
            }
            next += 1;
        }
        offsets.clear();
        offsets.extend((0..geo.kh).flat_map(|i| {
            let start = ((y * geo.sh + i * geo.dh) % ring) * row;
            (0..geo.kw).map(move |j| start + j * geo.dw * width)
        }));
        for blk in 0..w.blocks {
            let channels = LANES.min(geo.o - blk * LANES);
            let start = |ch: usize| ((b.image * geo.o + blk * LANES + ch) * geo.oh + y) * geo.ow;
            for (ch, r) in rows.iter_mut().enumerate().take(channels) {
                *r = match sink {
                    // SAFETY: the band's rows are this call's alone (the caller's contract).
                    Sink::Out(out) => unsafe { out.segment(start(ch), geo.ow) }.as_mut_ptr(),
                    Sink::Project(_) => {
                        let at = starts[blk * LANES + ch] + (y - first) * geo.ow;
                        rows_held[at..at + geo.ow].as_mut_ptr()
                    }
                };
            }
            let kernel = &w.depthwise[blk * taps * LANES..][..taps * LANES];
            let bias = in_registers.map(|f| f.bias.map(|b| &b[blk * LANES..][..channels]));
            // SAFETY: AVX-512F as above; `offsets` lie in the ring, whose `wp` columns span
            // every column a tap reads, and `rows` holds `channels` rows.
            unsafe {
                depthwise_row(
                    geo,
                    (&scratch[blk * LANES..], &offsets),
                    width,
                    kernel,
                    (&rows, channels),
                    in_registers.map(|f| (bias.flatten(), f.relu)),
                )
            };
            if in_registers.is_none() {
                for (ch, &r) in rows.iter().enumerate().take(channels) {
                    // SAFETY: as above; the row's pointer is no longer used. A projected
                    // depthwise layer has no residual, so its rows' offsets go unread.
                    let seg = unsafe { std::slice::from_raw_parts_mut(r, geo.ow) };
                    epi.apply(blk * LANES + ch, start(ch), seg);
                }
            }
        }
        if let Sink::Project(p) = sink {
            if y + 1 - first == held || y + 1 == b.y1 {
                project(p, geo, (b.image, first, y + 1), (&rows_held, &starts));
                first = y + 1;
            }
        }
    }
    buffers::give_back(rows_held);
}

/// Projects depthwise rows `y0..y1` of image `image`, held `[channel][row][column]` in `held`
/// from `starts`, into the projection's output rows and finishes them. Each output is the
/// GEMM kernel's chain of multiply-adds over the channels, as over the whole plane.
fn project(
    p: &Projection,
    geo: &Geometry,
    (image, y0, y1): (usize, usize, usize),
    (held, starts): (&[f32], &[usize]),
) {
    let n = (y1 - y0) * geo.ow;
    let start = |o: usize| ((image * p.outputs + o) * geo.oh + y0) * geo.ow;
    // SAFETY: the band's rows of every output channel are this call's alone (the caller's
    // contract for the band).
    let mut outs: Vec<&mut [f32]> = (0..p.outputs)
        .map(|o| unsafe { p.out.segment(start(o), n) })
        .collect();
    p.gemm.multiply(0, held, starts, n, &mut outs);
    for (o, row) in outs.iter_mut().enumerate() {
        p.epi.apply(o, start(o), row);
    }
}

/// A depthwise epilogue of a bias and a ReLU at most, which [`depthwise_row`] applies to the
/// transposed sums before storing them, as [`finish`] would after: the same two operations,
/// so the same bits, without a second pass over every output row (5% of CenterFace's
/// 24 -> 144 pair).
#[derive(Clone, Copy)]
struct InRegisters<'a> {
    bias: Option<&'a [f32]>,
    relu: bool,
}

impl<'a> InRegisters<'a> {
    fn of(epi: &Epilogue<'a>) -> Option<InRegisters<'a>> {
        let plain = epi.residual.is_none() && epi.affine.is_none() && epi.bytes.is_none();
        let relu = match epi.activation {
            None => false,
            Some(Activation::Relu) => true,
            Some(_) => return None,
        };
        plain.then_some(InRegisters {
            bias: epi.bias,
            relu,
        })
    }
}

/// The expansion of one input row (`x` from its first column, channels `plane` apart) into
/// `dst`, its `columns` positions of `width` channels, the bias added.
///
/// # Safety
/// AVX-512F must be available; `x` must hold `columns` floats from each of `c` channels.
#[target_feature(enable = "avx512f")]
unsafe fn expand_row(
    x: &[f32],
    (plane, c, columns): (usize, usize, usize),
    w: &Packed,
    dst: &mut [f32],
) {
    assert!(x.len() >= (c - 1) * plane + columns && dst.len() == columns * w.blocks * LANES);
    for x0 in (0..columns).step_by(TILE) {
        let count = TILE.min(columns - x0);
        let mut g = 0;
        while g < w.blocks {
            let n = BLOCKS.min(w.blocks - g);
            // SAFETY: as above; the tile reads columns `x0..x0 + count` of each channel and
            // writes positions `x0..x0 + count` of blocks `g..g + n` of `dst`.
            unsafe {
                match n {
                    3 => expand_tile::<3>(x, (plane, c, x0, count), w, g, dst),
                    2 => expand_tile::<2>(x, (plane, c, x0, count), w, g, dst),
                    _ => expand_tile::<1>(x, (plane, c, x0, count), w, g, dst),
                }
            }
            g += n;
        }
    }
}

/// `count` (at most [`TILE`]) positions from column `x0` by blocks `g..g + B`, the bias added.
///
/// # Safety
/// As [`expand_row`].
#[inline(always)]
unsafe fn expand_tile<const B: usize>(
    x: &[f32],
    (plane, c, x0, count): (usize, usize, usize, usize),
    w: &Packed,
    g: usize,
    dst: &mut [f32],
) {
    let width = w.blocks * LANES;
    let relu = w.relu_in_registers();
    // Positions past `count` repeat the last one; their sums are not stored.
    let cols: [usize; TILE] = std::array::from_fn(|t| x0 + t.min(count - 1));
    // SAFETY: the caller upholds the contract; `expand_row` asserted the bounds used here.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); B]; TILE];
        let xp = x.as_ptr();
        let wp = w.expand.as_ptr().add(g * LANES);
        for i in 0..c {
            let row = xp.add(i * plane);
            let wv: [__m512; B] =
                std::array::from_fn(|j| _mm512_loadu_ps(wp.add(i * width + j * LANES)));
            for (a, &col) in acc.iter_mut().zip(&cols) {
                let xv = _mm512_set1_ps(*row.add(col));
                for (s, &v) in a.iter_mut().zip(&wv) {
                    *s = _mm512_fmadd_ps(xv, v, *s);
                }
            }
        }
        for (t, a) in acc.iter().enumerate().take(count) {
            for (j, &s) in a.iter().enumerate() {
                let block = (g + j) * LANES;
                let mut s = match &w.bias {
                    Some(b) => _mm512_add_ps(s, _mm512_loadu_ps(b.as_ptr().add(block))),
                    None => s,
                };
                if relu {
                    // `if x < 0 { 0 } else { x }`, as the epilogue's ReLU: NaN and -0 pass.
                    let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(s, _mm512_setzero_ps());
                    s = _mm512_mask_mov_ps(s, negative, _mm512_setzero_ps());
                }
                let at = (x0 + t) * width + block;
                _mm512_storeu_ps(dst[at..at + LANES].as_mut_ptr(), s);
            }
        }
    }
}

/// One output row of one channel block of the depthwise convolution: `ring` from the block's
/// first lane, tap `t` reading from `offsets[t]` (positions `width` apart), `kernel` the
/// block's `[taps][16]`; the sums, transposed and finished by `inline` where given (the
/// block's biases, and whether a ReLU follows), into the first `channels` of `rows` (each
/// `geo.ow` floats).
///
/// # Safety
/// AVX-512F must be available.
#[target_feature(enable = "avx512f")]
unsafe fn depthwise_row(
    geo: &Geometry,
    (ring, offsets): (&[f32], &[usize]),
    width: usize,
    kernel: &[f32],
    (rows, channels): (&[*mut f32; LANES], usize),
    inline: Option<(Option<&[f32]>, bool)>,
) {
    let reach = (geo.ow - 1) * geo.sw * width + LANES;
    assert!(offsets.len() == geo.kh * geo.kw && kernel.len() == offsets.len() * LANES);
    assert!(offsets.iter().all(|&o| o + reach <= ring.len()));
    assert!(inline.is_none_or(|(b, _)| b.is_none_or(|b| b.len() == channels)));
    let step = geo.sw * width;
    // SAFETY: the caller upholds the contract; reads lie below `reach` past an offset,
    // checked above.
    unsafe {
        let src = ring.as_ptr();
        for x0 in (0..geo.ow).step_by(LANES) {
            let n = LANES.min(geo.ow - x0);
            let mut acc = [_mm512_setzero_ps(); LANES];
            // Eight positions at a time: with 16, their addresses no longer fit in registers.
            for half in [0, LANES / 2] {
                let mut part = [_mm512_setzero_ps(); LANES / 2];
                for (k, &off) in offsets.iter().enumerate() {
                    let kv = _mm512_loadu_ps(kernel.as_ptr().add(k * LANES));
                    let p = src.add(off);
                    for (t, a) in part.iter_mut().enumerate() {
                        // Positions past `n` repeat the last one; their sums are not stored.
                        let at = (x0 + (half + t).min(n - 1)) * step;
                        *a = _mm512_fmadd_ps(kv, _mm512_loadu_ps(p.add(at)), *a);
                    }
                }
                acc[half..half + LANES / 2].copy_from_slice(&part);
            }
            let mask: u16 = if n == LANES { !0 } else { (1 << n) - 1 };
            for (ch, mut v) in transpose16(acc).into_iter().enumerate().take(channels) {
                if let Some((bias, relu)) = inline {
                    if let Some(b) = bias {
                        v = _mm512_add_ps(v, _mm512_set1_ps(b[ch]));
                    }
                    if relu {
                        // `if x < 0 { 0 } else { x }`, as the epilogue's ReLU: NaN and -0 pass.
                        let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, _mm512_setzero_ps());
                        v = _mm512_mask_mov_ps(v, negative, _mm512_setzero_ps());
                    }
                }
                _mm512_mask_storeu_ps(rows[ch].add(x0), mask, v);
            }
        }
    }
}
