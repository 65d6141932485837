//! The convolutions whose GEMM reads its columns in a layout of its own, the int8 one (byte
//! quads, `int8_conv.rs`) and the bf16 one (depth pairs, `bf16_conv.rs`): each parallel task
//! lays out the columns of its tile (from the stride's phases of the padded input in place, as
//! the float path reads floats, from the input itself for 1x1, or from an im2col tile), packs
//! them, multiplies them by the weight packed once, and runs the f32 epilogue on its outputs.

use super::conv::{im2col, Geometry, SharedOut, Tap};
use super::conv_padded::Phases;
use super::conv_tasks::{cut_tiles, min_per_job, Task};
use super::epilogue::Epilogue;
use super::int8_gemm::{MR, NR};
use super::isa::Isa;
use rayon::prelude::*;
use std::cell::RefCell;
use std::thread::LocalKey;

// The tasks are cut for one panel shape, which both kernels have.
const _: () = assert!(super::bf16_gemm::MR == MR && super::bf16_gemm::NR == NR);

/// A GEMM over columns laid out per tile.
pub(super) trait TileGemm: Sync {
    /// The input's element type.
    type Elem: Tap + Default + Send + Sync;
    /// The packed columns' element type.
    type Packed: Copy + Default + Send;
    /// Bytes of packed columns a depth takes, for sizing the tiles.
    const BYTES_PER_DEPTH: usize;

    /// The depth of a group's GEMM (input channels of a group times the window).
    fn depth(&self) -> usize;

    /// Lays out `n` columns of the rows `src[rows[i]..]` in `dst`.
    fn pack(
        &self,
        isa: Isa,
        src: &[Self::Elem],
        rows: &[usize],
        n: usize,
        dst: &mut Vec<Self::Packed>,
    );

    /// Rows `at.1..` of group `at.0` (output channels from `first_oc`) times `packed`, as f32
    /// sums before the epilogue, into `out`.
    fn multiply(
        &self,
        isa: Isa,
        at: (usize, usize),
        first_oc: usize,
        packed: &[Self::Packed],
        out: &mut [&mut [f32]],
    );
}

/// One thread's buffers: im2col columns, their packed form, and f32 sums to scatter. Kept
/// between tasks and layers: a task's own fresh buffers were zeroed on every task, a tenth of
/// YOLOv8n's int8 time.
pub(super) type Scratch<E, P> = RefCell<(Vec<E>, Vec<P>, Vec<f32>)>;

/// What a tiled convolution reads: its input (`geo`'s NCHW), and the padded phases of it where
/// [`super::conv::reads_phases`] chose them; `zero` pads the im2col tiles.
pub(super) struct Source<'a, E> {
    pub input: &'a [E],
    pub phases: Option<(&'a Phases, &'a [E])>,
    pub zero: E,
}

/// Runs `gemm` over `source` into `out` (the f32 output of `geo`), with `epi`; `out` may be
/// empty when the epilogue stores bytes only ([`Epilogue::bytes_only`]).
pub(super) fn run<G: TileGemm>(
    gemm: &G,
    geo: &Geometry,
    isa: Isa,
    source: Source<'_, G::Elem>,
    epi: &Epilogue,
    out: &mut [f32],
    scratch: &'static LocalKey<Scratch<G::Elem, G::Packed>>,
) {
    let (cg, og) = (geo.c / geo.group, geo.o / geo.group);
    let (kdim, plane) = (gemm.depth(), geo.out_plane());
    let pointwise = geo.is_pointwise();
    let plane_rows: Vec<usize> = (0..cg).map(|c| c * geo.in_plane()).collect();
    let shared = SharedOut::new(out);
    let columns = source.phases.map_or(plane, |(p, _)| p.span);
    tasks(geo, kdim * G::BYTES_PER_DEPTH, columns)
        .into_par_iter()
        .with_min_len(min_per_job(og * geo.group * kdim * plane * geo.n))
        .for_each(|t| {
            scratch.with_borrow_mut(|(col, packed, tile)| {
                let (m, tw) = (t.rows.1 - t.rows.0, t.cols.1 - t.cols.0);
                let first_oc = t.group * og + t.rows.0;
                if let Some((phases, padded)) = source.phases {
                    let b = &padded[phases.first(geo, &t)..];
                    gemm.pack(isa, b, &phases.taps, tw, packed);
                    tile.resize(m * tw, 0.0);
                    let mut rows: Vec<&mut [f32]> = tile.chunks_exact_mut(tw).collect();
                    gemm.multiply(isa, (t.group, t.rows.0), first_oc, packed, &mut rows);
                    phases.scatter(geo, &t, tile, &shared, epi);
                    return;
                }
                let first_in = (t.image * geo.c + t.group * cg) * geo.in_plane();
                let xs = &source.input[first_in..first_in + cg * geo.in_plane()];
                let col_rows: Vec<usize>;
                let (b, b_rows) = if pointwise {
                    (&xs[t.cols.0..], &plane_rows[..])
                } else {
                    col.resize(kdim * tw, source.zero);
                    im2col(geo, isa, cg, xs, t.cols, tw, col, source.zero);
                    col_rows = (0..kdim).map(|p| p * tw).collect();
                    (&col[..], &col_rows[..])
                };
                gemm.pack(isa, b, b_rows, tw, packed);
                let start = |r: usize| (t.image * geo.o + first_oc + r) * plane + t.cols.0;
                let mut rows: Vec<&mut [f32]> = if epi.bytes_only() {
                    tile.resize(m * tw, 0.0);
                    tile.chunks_exact_mut(tw).collect()
                } else {
                    // SAFETY: tasks cover disjoint (image, channel, position) cells, so no
                    // other reference to these segments of the output exists while they are
                    // written.
                    (0..m)
                        .map(|r| unsafe { shared.segment(start(r), tw) })
                        .collect()
                };
                gemm.multiply(isa, (t.group, t.rows.0), first_oc, packed, &mut rows);
                for (r, row) in rows.iter_mut().enumerate() {
                    epi.apply(first_oc + r, start(r), row);
                }
            })
        });
}

/// How [`run`] cuts its work: tiles of output positions whose packed columns (`depth_bytes` a
/// column) stay in the L2 cache, cut finer (down to [`NR`] columns) until every thread has two,
/// and only then tiles of output channels (for 1x1 convolutions over small planes, at once).
/// Each task lays out its own columns, so cutting the channels, as the float path does for
/// small planes, repeated the layout once per channel block: the 10x10 3x3 convolutions of
/// YOLOv8n's head ran at half the float path's speed.
fn tasks(geo: &Geometry, depth_bytes: usize, plane: usize) -> Vec<Task> {
    /// Bytes of columns one tile lays out: 256 KiB.
    const TILE_BYTES: usize = 256 * 1024;
    let og = geo.o / geo.group;
    let threads = rayon::current_num_threads();
    let units = geo.n * geo.group;
    let most = plane.div_ceil(NR);
    /// Output positions up to which a 1x1 convolution's few tiles are cut by output channels.
    const SMALL_PLANE: usize = 1024;
    let mut col_tiles = plane
        .div_ceil((TILE_BYTES / depth_bytes.max(1)).max(NR))
        .clamp(1, most);
    // A 1x1 convolution packs its columns straight from the input, so over a small plane each
    // thread packs them all and takes its share of the channels, evenly: cut into tiles of
    // whole blocks of 32 columns, the 13x13 planes of PicoDet's int8 plan ran 1.33 times
    // faster at 2 threads than at 1, 1.73 times cut by channels.
    let by_channels = geo.is_pointwise() && plane <= SMALL_PLANE;
    if units * col_tiles < 2 * threads && !by_channels {
        col_tiles = (2 * threads).div_ceil(units).min(most);
    }
    // Tiles that the threads share evenly: a stem's 5 tiles left one of two threads 3 of them.
    if col_tiles > 1 && units * col_tiles < 8 * threads {
        col_tiles = (units * col_tiles)
            .next_multiple_of(threads)
            .div_ceil(units)
            .min(most);
    }
    // Whole blocks of columns spread evenly over the tiles: one width for all left a runt
    // (400 columns as 128, 128, 128 and 16), so one of two threads did twice the other's work.
    let blocks = plane.div_ceil(NR);
    let tiles: Vec<(usize, usize)> = (0..col_tiles)
        .map(|t| {
            let edge = |t: usize| (t * blocks / col_tiles * NR).min(plane);
            (edge(t), edge(t + 1))
        })
        .filter(|(c0, c1)| c0 < c1)
        .collect();
    let per_group = units * tiles.len();
    let row_blocks = threads.div_ceil(per_group).clamp(1, og.div_ceil(MR));
    let rows = og.div_ceil(row_blocks).div_ceil(MR) * MR;
    cut_tiles(geo, rows, &tiles)
}
