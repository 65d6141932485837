//! How a convolution's GEMMs are cut into parallel tasks: blocks of output channels by tiles
//! of output positions (GEMM columns), sized for the L2 cache when there are many, and cut so
//! that the threads finish together when there are few.

use super::conv::Geometry;
use super::conv_gemm::{MR, NR};

/// One parallel task of a convolution: output rows `rows` of group `group` of image `image`,
/// at the output positions (GEMM columns) `cols`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Task {
    pub image: usize,
    pub group: usize,
    pub rows: (usize, usize),
    pub cols: (usize, usize),
}

/// The fewest items a parallel job of a convolution with `macs` multiply-adds takes: all of
/// them below about 2 µs of work, where waking a second thread costs more than it saves
/// (PicoDet's squeeze-excite and 13x13 layers).
pub(super) fn min_per_job(macs: usize) -> usize {
    const SMALL: usize = 1 << 17;
    if macs < SMALL {
        usize::MAX
    } else {
        1
    }
}

/// How a convolution over `plane` GEMM columns, whose tiles read `per_column` input elements
/// per column, cuts its work: tiles of columns small enough that a tile's inputs and outputs
/// stay in the L2 cache and, where that makes few tasks, the cut of [`balanced`]. A tile that
/// lays out its columns (im2col) reads its whole depth per column; one that reads its input in
/// place (1x1, or the padded phases) reads each input element once for all its taps, about one
/// per input channel and column.
pub(super) fn tasks(geo: &Geometry, per_column: usize, plane: usize) -> Vec<Task> {
    /// Floats of `cols` plus outputs one tile may use: 512 KiB.
    const TILE_FLOATS: usize = 128 * 1024;
    let og = geo.o / geo.group;
    let threads = rayon::current_num_threads();
    let units = geo.n * geo.group;
    let widest = (TILE_FLOATS / (per_column + og)).max(2 * NR) / NR * NR;
    let col_tiles = plane.div_ceil(widest).max(1);
    if units * col_tiles >= 8 * threads || threads == 1 {
        let width = plane.div_ceil(col_tiles).div_ceil(NR) * NR;
        return cut(geo, plane, og, width);
    }
    let (rows, width) = balanced(
        Shape {
            units,
            rows: og,
            columns: plane,
        },
        threads,
        widest,
    );
    cut(geo, plane, rows, width)
}

/// The GEMMs of a convolution: `units` (images times groups) of `rows` output channels by
/// `columns`.
#[derive(Clone, Copy)]
struct Shape {
    units: usize,
    rows: usize,
    columns: usize,
}

/// `(rows, width)` of the blocks of output channels and tiles of columns whose busiest thread
/// has the least work ([`busiest`]), among tiles of whole [`NR`] blocks no wider than `widest`
/// (up to four more tiles per thread than the fewest) and the channels whole or in 2 or 4
/// blocks; of the cuts within 3% of the least, the one of fewest tasks, since each task reads
/// (and, through im2col, lays out) its columns again. The rule it replaces made the number of
/// tiles a multiple of the threads and then rounded the tile width up to whole blocks, which
/// could leave fewer tiles: a 64-channel 3x3 convolution over 20x20 (438 columns) was cut into
/// tiles of 144, 144, 144 and 6 columns, two of the wide ones on one of two threads.
fn balanced(shape: Shape, threads: usize, widest: usize) -> (usize, usize) {
    let blocks = shape.columns.div_ceil(NR).max(1);
    let fewest = blocks.div_ceil((widest / NR).max(1));
    let mut cuts: Vec<Cut> = Vec::new();
    let mut last_width = 0;
    for tiles in fewest..=blocks.min(fewest + 4 * threads) {
        let width = blocks.div_ceil(tiles) * NR;
        if width == last_width {
            continue;
        }
        last_width = width;
        for split in [1, 2, 4] {
            let rows = shape.rows.div_ceil(split).div_ceil(MR) * MR;
            if split > 1 && rows >= shape.rows {
                continue;
            }
            let count = shape.units * shape.columns.div_ceil(width) * shape.rows.div_ceil(rows);
            cuts.push(Cut {
                busiest: busiest(shape, rows, width, threads),
                count,
                rows,
                width,
            });
        }
    }
    let least = cuts.iter().map(|c| c.busiest).min().unwrap_or(0);
    cuts.iter()
        .filter(|c| c.busiest * 100 <= least * 103)
        .min_by_key(|c| (c.count, c.busiest))
        .map_or((shape.rows, NR), |c| (c.rows, c.width))
}

/// One candidate of [`balanced`]: blocks of `rows` channels by tiles of `width` columns, `count`
/// tasks, `busiest` the work of its busiest thread.
struct Cut {
    busiest: usize,
    count: usize,
    rows: usize,
    width: usize,
}

/// Columns the kernels compute at once: a panel narrower than [`NR`] runs as whole vectors of
/// 16, not as a whole panel.
const VECTOR: usize = 16;

/// The work of the busiest of `threads` threads when the tasks of the cut, largest first, each
/// go to the least loaded thread; a task's work counts its channels and columns rounded up to
/// what the kernel computes whole: blocks of [`MR`] rows and vectors of [`VECTOR`] columns.
/// Counted in whole panels, a 169-column plane cut as 96 + 73 columns looked even, where the
/// second tile is 5 vectors to the first's 6; cut as two blocks of rows too, each thread takes
/// one of each: PicoDet's 384->384 1x1 over 13x13 went from 0.24 to 0.20 ms at 2 threads.
fn busiest(shape: Shape, rows: usize, width: usize, threads: usize) -> usize {
    let mut work = Vec::new();
    for _ in 0..shape.units {
        for r0 in (0..shape.rows).step_by(rows) {
            let m = (shape.rows - r0).min(rows).next_multiple_of(MR);
            for c0 in (0..shape.columns).step_by(width) {
                work.push(m * (shape.columns - c0).min(width).next_multiple_of(VECTOR));
            }
        }
    }
    work.sort_unstable_by(|a, b| b.cmp(a));
    let mut loads = vec![0usize; threads.max(1)];
    for w in work {
        let least = loads.iter_mut().min().expect("a thread");
        *least += w;
    }
    loads.into_iter().max().unwrap_or(0)
}

/// Every task of blocks of `rows` output channels by tiles of `width` output positions, for
/// each image and group.
pub(super) fn cut(geo: &Geometry, plane: usize, rows: usize, width: usize) -> Vec<Task> {
    let tiles: Vec<(usize, usize)> = (0..plane)
        .step_by(width.max(1))
        .map(|c0| (c0, (c0 + width).min(plane)))
        .collect();
    cut_tiles(geo, rows, &tiles)
}

/// Every task of blocks of `rows` output channels by the column ranges `tiles`, for each image
/// and group.
pub(super) fn cut_tiles(geo: &Geometry, rows: usize, tiles: &[(usize, usize)]) -> Vec<Task> {
    let og = geo.o / geo.group;
    let mut tasks = Vec::new();
    for image in 0..geo.n {
        for group in 0..geo.group {
            for r0 in (0..og).step_by(rows.max(1)) {
                for &cols in tiles {
                    tasks.push(Task {
                        image,
                        group,
                        rows: (r0, (r0 + rows).min(og)),
                        cols,
                    });
                }
            }
        }
    }
    tasks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fraction of the work the threads do in parallel: 1 when they finish together.
    fn balance(shape: Shape, rows: usize, width: usize, threads: usize) -> f64 {
        let total: usize = (0..shape.rows)
            .step_by(rows)
            .map(|r0| (shape.rows - r0).min(rows).next_multiple_of(MR))
            .sum::<usize>()
            * (0..shape.columns)
                .step_by(width)
                .map(|c0| (shape.columns - c0).min(width).next_multiple_of(VECTOR))
                .sum::<usize>()
            * shape.units;
        total as f64 / (threads * busiest(shape, rows, width, threads)) as f64
    }

    /// The 3x3 convolutions of YOLOv8n and orinet over small planes (their padded GEMM
    /// columns, `(oh - 1)·(ow + 2) + ow`), at 2 and 4 threads: the cut keeps the threads at
    /// least 90% busy where the old rule managed 83%, and its tiles and blocks fit the kernel's
    /// (whole `NR` columns, whole `MR` rows, no wider than asked).
    #[test]
    fn few_tiles_are_cut_so_the_threads_finish_together() {
        let cases = [
            (64, 438, 96),
            (256, 438, 96),
            (128, 118, 96),
            (128, 1598, 144),
        ];
        for (rows, columns, widest) in cases {
            for threads in [2, 4] {
                let shape = Shape {
                    units: 1,
                    rows,
                    columns,
                };
                let (r, w) = balanced(shape, threads, widest);
                assert!(w.is_multiple_of(NR) && w <= widest.max(NR), "width {w}");
                assert!(r.is_multiple_of(MR) || r == rows, "rows {r}");
                let b = balance(shape, r, w, threads);
                assert!(
                    b >= 0.9,
                    "{rows} x {columns} at {threads} threads: {r} x {w} keeps {b:.2} busy"
                );
            }
        }
        // The case the old rule cut as 144 + 144 + 144 + 6 columns on two threads.
        let old = Shape {
            units: 1,
            rows: 64,
            columns: 438,
        };
        assert!(balance(old, 64, 144, 2) < 0.85);
    }

    /// A plane whose last panel is ragged: PicoDet's 384->384 1x1 over 13x13 (169 columns) at
    /// 2 threads. One tile of 96 columns and one of 73 per thread kept the second thread idle
    /// a sixth of the time; the cut pairs them instead.
    #[test]
    fn a_ragged_last_panel_counts_its_vectors() {
        let shape = Shape {
            units: 1,
            rows: 384,
            columns: 169,
        };
        let (r, w) = balanced(shape, 2, 144);
        assert!(balance(shape, 384, 96, 2) < 0.95);
        let b = balance(shape, r, w, 2);
        assert!(b >= 0.99, "{r} x {w} keeps {b:.2} busy");
    }

    /// Every cut covers every (image, group, channel, column) cell exactly once.
    #[test]
    fn a_cut_covers_every_cell_once() {
        let attrs = temblor_ir::ConvAttrs {
            auto_pad: temblor_ir::AutoPad::NotSet,
            activation: None,
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [1; 4],
            group: 2,
            affine: None,
        };
        let x = crate::Tensor::f32(vec![2, 4, 5, 7], vec![0.0; 2 * 4 * 5 * 7]);
        let geo = Geometry::new(&attrs, &x, [24, 2, 3, 3]).expect("geometry");
        let plane = 53;
        for (rows, width) in [(8, 48), (16, 96), (12, 10)] {
            let mut seen = vec![0u8; geo.n * geo.o * plane];
            for t in cut(&geo, plane, rows, width) {
                for r in t.rows.0..t.rows.1 {
                    for c in t.cols.0..t.cols.1 {
                        let oc = t.group * (geo.o / geo.group) + r;
                        seen[(t.image * geo.o + oc) * plane + c] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&s| s == 1), "{rows} x {width}");
        }
    }
}
