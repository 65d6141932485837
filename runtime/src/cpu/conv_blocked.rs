//! A convolution over blocks of 16 channels, the layout onnxruntime and OpenVINO keep between
//! layers (NCHW16c), here made inside one convolution from and back to NCHW.
//!
//! The GEMM of [`super::conv_gemm`] puts output positions in its vectors: on a 10x10 plane a
//! vector of 16 positions crosses row ends and the last panel is ragged, and on every plane each
//! row of its right-hand side is a separate stream through the padded input. Here the vectors
//! are 16 output channels instead. The input is copied once into a padded layout whose 16
//! channels of one position are contiguous (`[n][c/16][hp][wp][16]`), the weight is packed as
//! `[o/16][c/16][kh][kw][16 inputs][16 outputs]`, and a tile of 8 output positions by up to 3
//! blocks of outputs keeps its 24 sums in registers over the whole depth: per input channel
//! and tap, 8 broadcasts of the input and 3 vector loads of the weight feed 24 fused
//! multiply-adds. Positions run through the flattened plane, so a tile may cross row ends and
//! only a plane's last tile is partial. Each tile's sums are transposed in registers and
//! stored as 8 positions of each channel of the NCHW output; the epilogue then runs per
//! channel over the task's positions, as on the GEMM path.
//!
//! The kernel alone runs at 250-285 GFLOP/s on one thread here (Zen 5, 280 the FMA peak) over
//! planes of any size; in YOLOv8n its 3x3 layers over 10x10 planes take 0.66-0.70x the GEMM
//! path's time, and the model 10.2 -> 9.5 ms at one thread, 6.0 -> 5.3 at two. Which
//! convolutions it takes is [`takes`]: the layout costs a pass over the input, which a 1x1
//! convolution's GEMM does not make, and on wide planes the GEMM is as fast.

use super::buffers;
use super::conv::{Geometry, SharedOut};
use super::conv_tasks::min_per_job;
use super::epilogue::Epilogue;
use super::isa::Isa;
use rayon::prelude::*;

/// Channels per block: one AVX-512 vector of f32.
pub(crate) const LANES: usize = 16;
/// Output channel blocks per tile, at most.
pub(super) const BLOCKS: usize = 3;
/// Output positions per tile: with [`BLOCKS`], 24 sums in registers. (12 positions for tiles of
/// two blocks measured no faster in the models: YOLOv8n 9.45 against 9.52 ms at one thread.)
pub(super) const TILE: usize = 8;

/// A convolution weight `[o, c, kh, kw]` in blocks: `[o/16][c/16][kh][kw][16 c][16 o]`, zero
/// where `o` or `c` is past the weight's.
#[derive(Debug)]
pub(crate) struct BlockedWeights {
    data: Vec<f32>,
    shape: [usize; 4],
}

impl BlockedWeights {
    pub fn new(w: &[f32], shape: [usize; 4]) -> BlockedWeights {
        let [o, c, kh, kw] = shape;
        let cb = c.div_ceil(LANES);
        let mut data = vec![0.0; o.div_ceil(LANES) * cb * kh * kw * LANES * LANES];
        for (oc, filter) in w.chunks_exact(c * kh * kw).take(o).enumerate() {
            for (ic, taps) in filter.chunks_exact(kh * kw).enumerate() {
                for (t, &v) in taps.iter().enumerate() {
                    let block = (oc / LANES * cb + ic / LANES) * kh * kw + t;
                    data[(block * LANES + ic % LANES) * LANES + oc % LANES] = v;
                }
            }
        }
        BlockedWeights { data, shape }
    }

    /// The packed weight when the blocked path takes convolutions of weight `shape` in `group`
    /// groups on `isa`.
    pub fn for_conv(
        w: &[f32],
        shape: [usize; 4],
        group: usize,
        isa: Isa,
    ) -> Option<BlockedWeights> {
        (eligible(shape, group) && isa.avx512()).then(|| BlockedWeights::new(w, shape))
    }

    /// Floats from one output block's weight to the next's.
    fn block_stride(&self) -> usize {
        let [_, c, kh, kw] = self.shape;
        c.div_ceil(LANES) * kh * kw * LANES * LANES
    }
}

/// Whether the weight and attributes suit the blocked path, measured per layer on YOLOv8n at one
/// thread against the GEMM path: one group (a grouped convolution would pad each group's
/// channels to a block), a window wider than one position (a 1x1 convolution's
/// GEMM reads its input in place, where this path first lays it out: 1.1-2x slower here), at
/// least two blocks of outputs (one block takes a weight vector per 8 broadcasts: 16->16 3x3
/// over 80x80 1.25x slower) and a whole block of inputs. The 3x3 layers it takes ran 0.66x
/// (10x10 planes) to 0.97x (40x40) of the GEMM path's time.
pub(super) fn eligible([o, c, kh, kw]: [usize; 4], group: usize) -> bool {
    group == 1 && kh * kw > 1 && o >= 2 * LANES && c >= LANES
}

/// The widest stride-1 output the blocked path takes. The GEMM path's vectors of output
/// positions fill well on wide rows, and there it was as fast or faster (orinet's 32->32 and
/// 64->64 3x3 layers over 160x160 and 80x80: 1.05x and 0.98x the GEMM path's time; 40x40
/// planes 0.93-0.97x, 20x20 0.85-0.93x, 10x10 0.66-0.70x).
const WIDEST: usize = 40;

/// Whether the blocked path runs convolution `geo` on `isa`: as [`BlockedWeights::for_conv`]
/// says, over at least one whole tile of output positions, strided (any strided layer measured
/// faster here: YOLOv8n's 16->32 into 80x80 0.95x the GEMM path's time, into 10x10 0.66x) or
/// at most [`WIDEST`] wide.
pub(crate) fn takes(geo: &Geometry, isa: Isa) -> bool {
    let shape = [geo.o, geo.c, geo.kh, geo.kw];
    isa.avx512()
        && eligible(shape, geo.group)
        && geo.out_plane() >= TILE
        && (geo.ow <= WIDEST || geo.sh > 1 || geo.sw > 1)
}

/// The padded input in blocks: `[n][c/16][hp][wp][16]`, where padded position `(y, x)` is input
/// `(y - pt, x - pl)` or zero. It spans exactly the positions some tap reads.
pub(super) struct Padded {
    pub hp: usize,
    pub wp: usize,
    pub blocks: usize,
}

impl Padded {
    pub fn new(geo: &Geometry) -> Padded {
        Padded {
            hp: (geo.oh - 1) * geo.sh + (geo.kh - 1) * geo.dh + 1,
            wp: (geo.ow - 1) * geo.sw + (geo.kw - 1) * geo.dw + 1,
            blocks: geo.c.div_ceil(LANES),
        }
    }

    /// Elements of one channel block of one image.
    pub fn block(&self) -> usize {
        self.hp * self.wp * LANES
    }
}

/// Lays out the padded input `dst` (`[n][c/16][hp][wp][16]`) of `layout` in parallel, in tasks
/// of whole rows of one block: `rows(image, block, y0, band)` lays out the block's padded rows
/// from `y0` into `band`. Tasks of whole blocks left a convolution over 16 channels
/// (YOLOv8n's 16->32 over 160x160) laying out its 1.7 MB on one thread.
pub(super) fn pad_in_parallel<T: Send>(
    geo: &Geometry,
    layout: &Padded,
    dst: &mut [T],
    rows: impl Fn(usize, usize, usize, &mut [T]) + Sync,
) {
    assert!(dst.len() == geo.n * layout.blocks * layout.block());
    let row = layout.wp * LANES;
    // About two bands a thread, or whole blocks where those are enough.
    let threads = rayon::current_num_threads().max(1);
    let bands = (2 * threads)
        .div_ceil(geo.n * layout.blocks)
        .clamp(1, layout.hp);
    let band = layout.hp.div_ceil(bands) * row;
    let min = min_per_job(macs(geo));
    dst.par_chunks_mut(layout.block())
        .with_min_len(min)
        .enumerate()
        .for_each(|(i, block)| {
            block
                .par_chunks_mut(band)
                .with_min_len(min)
                .enumerate()
                .for_each(|(j, dst)| {
                    rows(i / layout.blocks, i % layout.blocks, j * band / row, dst);
                });
        });
}

/// Walks padded rows `y0..` of one block of `layout` in `dst` (whole rows of `[wp][16]`): fills
/// the padding with `fill` and hands each run of at most 16 input columns to `chunk(r, x0,
/// out)`, which lays out input row `r`'s columns `x0..x0 + n` into `out`, their `n` positions
/// of 16.
pub(super) fn walk_padded<T: Copy>(
    geo: &Geometry,
    layout: &Padded,
    y0: usize,
    dst: &mut [T],
    fill: T,
    mut chunk: impl FnMut(usize, usize, &mut [T]),
) {
    let row = layout.wp * LANES;
    assert!(dst.len().is_multiple_of(row) && y0 * row + dst.len() <= layout.block());
    // The input columns a padded row holds, and where they start in it.
    let first = geo.pl.min(layout.wp);
    let columns = geo.w.min(layout.wp - first);
    for (y, out) in (y0..).zip(dst.chunks_exact_mut(row)) {
        let Some(r) = y.checked_sub(geo.pt).filter(|&r| r < geo.h) else {
            out.fill(fill);
            continue;
        };
        out[..first * LANES].fill(fill);
        out[(first + columns) * LANES..].fill(fill);
        for x0 in (0..columns).step_by(16) {
            let n = 16.min(columns - x0);
            chunk(r, x0, &mut out[(first + x0) * LANES..][..n * LANES]);
        }
    }
}

/// A parallel task: output blocks `blocks` of image `image` at output positions `positions`.
#[derive(Clone, Copy, Debug)]
struct Task {
    image: usize,
    blocks: (usize, usize),
    positions: (usize, usize),
}

/// Tasks of at most [`BLOCKS`] output blocks by runs of whole tiles, about four per thread so
/// that the threads finish together, each at least 4 tiles long where the plane allows.
fn tasks(geo: &Geometry) -> Vec<Task> {
    let threads = rayon::current_num_threads().max(1);
    let out_blocks = geo.o.div_ceil(LANES);
    // As even as possible: 4 blocks as 2 + 2, not 3 + 1, whose single block would load one
    // weight vector per 8 broadcasts.
    let count = out_blocks.div_ceil(BLOCKS);
    let groups: Vec<(usize, usize)> = (0..count)
        .map(|g| (g * out_blocks / count, (g + 1) * out_blocks / count))
        .collect();
    let plane = geo.out_plane();
    let tiles = plane.div_ceil(TILE);
    let wanted = (4 * threads).div_ceil(geo.n * groups.len()).max(1);
    let runs = wanted.min(tiles.div_ceil(4)).max(1);
    let per_run = tiles.div_ceil(runs) * TILE;
    let mut out = Vec::new();
    for image in 0..geo.n {
        for &blocks in &groups {
            for p0 in (0..plane).step_by(per_run) {
                out.push(Task {
                    image,
                    blocks,
                    positions: (p0, (p0 + per_run).min(plane)),
                });
            }
        }
    }
    out
}

/// Where one tile of output positions reads its input and stores its sums.
pub(super) struct TileAt<'a> {
    pub image: usize,
    /// The output blocks, `first..end`.
    pub blocks: (usize, usize),
    /// Where each position's window starts in a channel block of the padded input (in elements,
    /// 16 a position); the ones past `count` are unused.
    pub offsets: [usize; TILE],
    pub count: usize,
    /// Each output channel of the blocks (null past the output's channels): the task's first
    /// position in its NCHW plane, of which the tile's are `at` on.
    pub rows: &'a [*mut f32; BLOCKS * LANES],
    pub at: usize,
}

/// Runs `tile` over every tile of convolution `geo`'s output positions, in parallel tasks
/// ([`tasks`]), each of which then finishes its outputs in `out` with `epi`, per channel.
/// `tile` must store every position of every channel it is given.
pub(super) fn each_tile(
    geo: &Geometry,
    padded: &Padded,
    epi: &Epilogue,
    out: &mut [f32],
    tile: impl Fn(&TileAt) + Sync,
) {
    let shared = SharedOut::new(out);
    let plane = geo.out_plane();
    tasks(geo)
        .into_par_iter()
        .with_min_len(min_per_job(macs(geo)))
        .for_each(|t| {
            let (p0, p1) = t.positions;
            let channels = (t.blocks.0 * LANES..(t.blocks.1 * LANES).min(geo.o))
                .map(|oc| (oc, (t.image * geo.o + oc) * plane + p0));
            let mut rows = [std::ptr::null_mut::<f32>(); BLOCKS * LANES];
            for (row, (_, start)) in rows.iter_mut().zip(channels.clone()) {
                // SAFETY: tasks cover disjoint (image, channel, position) cells, so no other
                // reference to these outputs exists while they are written.
                *row = unsafe { shared.segment(start, p1 - p0) }.as_mut_ptr();
            }
            let (mut y, mut x) = (p0 / geo.ow, p0 % geo.ow);
            for first in (p0..p1).step_by(TILE) {
                let count = TILE.min(p1 - first);
                let mut offsets = [0usize; TILE];
                for at in offsets.iter_mut().take(count) {
                    *at = (y * geo.sh * padded.wp + x * geo.sw) * LANES;
                    x += 1;
                    if x == geo.ow {
                        (y, x) = (y + 1, 0);
                    }
                }
                tile(&TileAt {
                    image: t.image,
                    blocks: t.blocks,
                    offsets,
                    count,
                    rows: &rows,
                    at: first - p0,
                });
            }
            for (oc, start) in channels {
                // SAFETY: as above; the tile's pointers into these outputs are no longer used.
                let seg = unsafe { shared.segment(start, p1 - p0) };
                epi.apply(oc, start, seg);
            }
        });
}

/// The multiply-adds of convolution `geo`, which decide whether it is worth threads.
pub(super) fn macs(geo: &Geometry) -> usize {
    geo.n * geo.o * geo.c * geo.kh * geo.kw * geo.out_plane()
}

/// Where each tap `(i, j)` of a window reads, from its position's offset.
pub(super) fn taps(geo: &Geometry, padded: &Padded) -> Vec<usize> {
    (0..geo.kh)
        .flat_map(|i| (0..geo.kw).map(move |j| (i * geo.dh * padded.wp + j * geo.dw) * LANES))
        .collect()
}

/// Convolution `geo` of `x` with `weights` into `out` (NCHW), finished with `epi`. The caller
/// checked [`takes`].
pub(crate) fn conv(
    geo: &Geometry,
    x: &[f32],
    weights: &BlockedWeights,
    epi: &Epilogue,
    out: &mut [f32],
) {
    assert!(takes(geo, epi.isa) && weights.shape == [geo.o, geo.c, geo.kh, geo.kw]);
    let padded = Padded::new(geo);
    let mut xb = buffers::reuse(geo.n * padded.blocks * padded.block());
    pad_in_parallel(geo, &padded, &mut xb, |image, block, y0, dst| {
        let c0 = block * LANES;
        let channels = LANES.min(geo.c - c0);
        let first = (image * geo.c + c0) * geo.in_plane();
        let src = &x[first..first + channels * geo.in_plane()];
        // SAFETY: `takes` checked AVX-512F.
        unsafe { avx512::pad_rows(geo, &padded, src, channels, y0, dst) };
    });
    let taps = taps(geo, &padded);
    let image = padded.blocks * padded.block();
    each_tile(geo, &padded, epi, out, |at| {
        let tile = avx512::Tile {
            input: &xb[at.image * image..][..image],
            block: padded.block(),
            channels: geo.c,
            taps: &taps,
            offsets: at.offsets,
            count: at.count,
        };
        let blocks = at.blocks.1 - at.blocks.0;
        let weight = &weights.data[at.blocks.0 * weights.block_stride()..];
        // SAFETY: AVX-512F as above; the tile's reads lie in `input` (the padded layout spans
        // every position a tap reads), `weight` holds `blocks` output blocks, and each
        // non-null row holds the tile's positions from `at.at` on.
        unsafe {
            avx512::multiply(
                &tile,
                weight,
                weights.block_stride(),
                blocks,
                (at.rows, at.at),
            )
        };
    });
    buffers::give_back(xb);
}

pub(super) mod avx512;

#[cfg(test)]
mod tests {
    use super::super::conv_padded::tests::{silu_convs_match_the_definition, Case};
    use super::super::isa::Isa;
    use super::takes;

    /// The blocked path against the definition where it cuts differently from the GEMM path:
    /// input and output channels past a whole block (20, 40, 33), tiles of two and three output
    /// blocks and a single one left over, planes whose last tile is partial and tiles that
    /// cross row ends, strides, dilations and uneven padding, two images (laid out in bands of
    /// rows, so each image's bands start past row 0), and the epilogue (bias, residual, SiLU)
    /// over what the kernel stored; weights packed at plan time or not. Every case is one the
    /// path takes, on machines with AVX-512 (elsewhere it never runs).
    #[test]
    fn blocked_convolutions_match_the_definition() {
        if !Isa::detect().avx512() {
            eprintln!("skipped: no AVX-512F here, so the blocked path never runs");
            return;
        }
        // (n, c, h, w, o, kh, kw, strides, dilations, pads)
        let cases: &[Case] = &[
            (1, 16, 10, 10, 32, 3, 3, [1, 1], [1, 1], [1, 1, 1, 1]),
            (1, 20, 7, 9, 40, 3, 3, [1, 1], [1, 1], [1, 1, 1, 1]),
            (2, 48, 12, 11, 33, 3, 3, [1, 1], [1, 1], [0, 1, 2, 1]),
            (1, 16, 21, 19, 64, 3, 3, [2, 2], [1, 1], [1, 1, 1, 1]),
            // Two images of one block each: the layout in bands of rows, per image.
            (2, 16, 17, 13, 32, 3, 3, [2, 2], [1, 1], [1, 1, 1, 1]),
            (1, 32, 9, 40, 112, 5, 5, [1, 1], [1, 1], [2, 2, 2, 2]),
            (1, 17, 16, 15, 48, 2, 3, [2, 1], [1, 1], [0, 1, 1, 0]),
            (2, 64, 5, 6, 128, 3, 1, [1, 1], [1, 1], [1, 0, 1, 0]),
            // U^2-Net's dilated 3x3 convolutions, and a dilation with a stride.
            (1, 16, 10, 10, 32, 3, 3, [1, 1], [4, 4], [4, 4, 4, 4]),
            (1, 32, 13, 12, 48, 3, 3, [2, 1], [2, 3], [2, 1, 1, 3]),
        ];
        silu_convs_match_the_definition(cases, 17, "blocked path", takes);
    }
}
