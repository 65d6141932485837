//! 3x3 stride-1 convolutions by Winograd's minimal filtering, F(4x4, 3x3) (Lavin and Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2016). A 4x4 tile of output positions
//! is computed from the 6x6 input tile its windows cover: the input tile is transformed
//! (`V = Bᵀ d B`), each of its 36 elements is multiplied by the same element of the transformed
//! filter (`U = G g Gᵀ`, made once per plan) and summed over the input channels, and the 36
//! sums are transformed back (`Y = Aᵀ M A`). The sums over channels are 36 GEMMs,
//! `M_ξ[o × tiles] = U_ξ[o × c] · V_ξ[c × tiles]`, which the convolution GEMM's kernel runs
//! ([`super::conv_gemm`]): 36 multiply-adds per input channel for 16 outputs, where the direct
//! form takes 9 for each one, a quarter.
//!
//! Work is cut into tasks of a band of tile rows of one image and a range of output channels.
//! A task transforms its band's input, every channel (16 tiles of a row at a time, see
//! [`avx512`]), runs the 36 GEMMs for its channels, transforms the sums back into the output
//! and finishes its rows there with the epilogue. Bands are sized so that the transformed input
//! and the sums stay in the L2 cache.
//!
//! The transforms' coefficients (up to 5 in `B`, 8 in `A`) make the rounding error larger than
//! the direct sum's, by the factor the tests bound; the convolution is otherwise exact
//! arithmetic. Int8 layers, whose simulation must give the integer arithmetic's values, keep
//! the direct paths.

use super::buffers;
use super::conv::{Geometry, SharedOut};
use super::conv_gemm::{Columns, ConvGemm, PackedWeights, MIN_WIDTH, MR, NR};
use super::conv_tasks::min_per_job;
use super::epilogue::Epilogue;
use super::isa::Isa;
use rayon::prelude::*;

/// Output positions along each side of a tile.
const TILE: usize = 4;
/// Input positions along each side of a tile's windows, and transformed elements per side.
const SIDE: usize = TILE + 2;
/// Transformed elements of a tile.
const XI: usize = SIDE * SIDE;
/// Tiles a transform call covers: one vector lane each.
const LANES: usize = 16;

/// The filter transform `G` of F(4, 3).
const G: [[f64; 3]; SIDE] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// The fewest input and output channels a convolution has for this path to take it.
const MIN_CHANNELS: usize = 16;
/// The narrowest and shortest output it takes: the transforms run 16 tiles of a row at a time,
/// and a narrower one leaves lanes empty (orinet's 256->256 over 20x20, 5 tiles a row, took
/// 1.3x the direct path's time).
const MIN_SIDE: usize = 32;
const _: () = assert!(MIN_SIDE.div_ceil(TILE) >= MIN_WIDTH);

/// A 3x3 convolution weight `[o, c, 3, 3]` transformed (`U = G g Gᵀ`, in f64) and packed as 36
/// GEMM weights `[o × c]`, one per transformed element.
#[derive(Debug)]
pub(crate) struct WinogradWeights {
    packed: PackedWeights,
    /// `[o, c]`.
    shape: [usize; 2],
}

impl WinogradWeights {
    /// The transformed weight of a convolution `[o, c, kh, kw]` in `group` groups with
    /// `strides` and `dilations`, where [`takes`] may take it on `isa`.
    pub fn for_conv(
        w: &[f32],
        [o, c, kh, kw]: [usize; 4],
        group: usize,
        (strides, dilations): ([usize; 2], [usize; 2]),
        isa: Isa,
    ) -> Option<WinogradWeights> {
        let fits = eligible([o, c, kh, kw], group) && strides == [1, 1] && dilations == [1, 1];
        if !fits || !isa.avx512() {
            return None;
        }
        WinogradWeights::new(w, [o, c], isa)
    }

    /// The transformed weight of `w`, `[o, c, 3, 3]`, or `None` where the GEMM does not pack
    /// on `isa`.
    pub fn new(w: &[f32], [o, c]: [usize; 2], isa: Isa) -> Option<WinogradWeights> {
        if w.len() != o * c * 9 {
            return None;
        }
        let mut u = vec![0.0f32; XI * o * c];
        for (oc, filters) in w.chunks_exact(c * 9).enumerate() {
            for (ic, g) in filters.chunks_exact(9).enumerate() {
                let gg: [[f64; 3]; SIDE] = std::array::from_fn(|y| {
                    std::array::from_fn(|j| (0..3).map(|i| G[y][i] * f64::from(g[i * 3 + j])).sum())
                });
                for (y, row) in gg.iter().enumerate() {
                    for (x, gx) in G.iter().enumerate() {
                        let v: f64 = row.iter().zip(gx).map(|(a, b)| a * b).sum();
                        u[((y * SIDE + x) * o + oc) * c + ic] = v as f32;
                    }
                }
            }
        }
        let packed = PackedWeights::new(&u, XI, o, c, isa)?;
        Some(WinogradWeights {
            packed,
            shape: [o, c],
        })
    }
}

fn eligible([o, c, kh, kw]: [usize; 4], group: usize) -> bool {
    group == 1 && (kh, kw) == (3, 3) && o >= MIN_CHANNELS && c >= MIN_CHANNELS
}

/// Whether this path runs convolution `geo` on `isa`: one it is made for, where the GEMMs'
/// saving outweighs the transforms ([`pays`]).
pub(crate) fn takes(geo: &Geometry, isa: Isa) -> bool {
    isa.avx512()
        && eligible([geo.o, geo.c, geo.kh, geo.kw], geo.group)
        && (geo.sh, geo.sw, geo.dh, geo.dw) == (1, 1, 1, 1)
        && geo.oh >= MIN_SIDE
        && geo.ow >= MIN_SIDE
        && pays(geo)
}

/// Whether the GEMMs' saving outweighs the transforms. Per tile, the GEMMs take `36·c·o`
/// multiply-adds (the direct form `144·c·o`), and the transforms work in proportion to
/// `c + o`, over runs of 16 tiles of a row of which only `across` are used. So the measure is
/// `c·o / (c + o)` times the lanes used, and the threshold is where it was measured to break
/// even: YOLOv8n's 16->16 over 80x80 (5) and 32->32 over 40x40 (10) took 1.3x and 1.2x the
/// direct path's time, orinet's 32->32 over 160x160 (13.3) 0.72x, 64->64 over 40x40 (20)
/// 0.7-0.85x.
fn pays(geo: &Geometry) -> bool {
    const BREAK_EVEN: f64 = 12.0;
    let across = geo.ow.div_ceil(TILE);
    let used = across as f64 / (LANES * across.div_ceil(LANES)) as f64;
    let (c, o) = (geo.c as f64, geo.o as f64);
    c * o / (c + o) * used >= BREAK_EVEN
}

/// Floats of transformed input, or of sums, a task keeps: 1 MiB.
const FLOATS: usize = 256 * 1024;

/// Tile rows per band: at least enough for a GEMM panel of columns, at most what keeps a band's
/// transformed input and sums in the L2 cache, and among those the bands whose busiest thread
/// has the fewest rows (the widest such band, for the fewest tasks). Bands only as wide as a
/// panel cut YOLOv8n's 80x80 planes at 640 into 7 bands, 4 on one thread and 3 on the other;
/// bands of 5 rows make 4, 2 each.
fn band_rows(geo: &Geometry, across: usize, down: usize, threads: usize) -> usize {
    let fits = |channels: usize| FLOATS / (XI * channels * across);
    let fewest = NR.div_ceil(across).min(fits(geo.c)).clamp(1, down);
    let busiest = |band: usize| (geo.n * down.div_ceil(band)).div_ceil(threads.max(1)) * band;
    (fewest..=fits(geo.c.max(geo.o)).clamp(fewest, down))
        .rev()
        .min_by_key(|&band| busiest(band))
        .unwrap_or(fewest)
}

/// One task: tile rows `rows` of image `image`, output channels `outs`.
#[derive(Clone, Copy, Debug)]
struct Task {
    image: usize,
    rows: (usize, usize),
    outs: (usize, usize),
}

/// The tasks over `down` rows of `across` tiles: bands of rows ([`band_rows`]) and, where there
/// are fewer bands than threads or a band's sums would not stay in the L2 cache, ranges of at
/// least 32 output channels. Each range repeats the input transform: at 2 threads, YOLOv8n's
/// 64->64 layers over 40x40, 2 bands cut again into 2 ranges for balance, spent a quarter of
/// their time transforming and ran no faster than at one thread (0.55 ms).
fn tasks(geo: &Geometry, across: usize, down: usize, threads: usize) -> Vec<Task> {
    let band = band_rows(geo, across, down, threads);
    let bands = down.div_ceil(band);
    let n = band * across;
    let units = geo.n * bands;
    let ranges = threads
        .div_ceil(units)
        .min(geo.o / (4 * MR))
        .max((XI * geo.o * n).div_ceil(FLOATS))
        .max(1);
    let per = geo.o.div_ceil(ranges).div_ceil(MR) * MR;
    let mut out = Vec::new();
    for image in 0..geo.n {
        for r0 in (0..down).step_by(band) {
            for o0 in (0..geo.o).step_by(per) {
                out.push(Task {
                    image,
                    rows: (r0, (r0 + band).min(down)),
                    outs: (o0, (o0 + per).min(geo.o)),
                });
            }
        }
    }
    out
}

/// Convolution `geo` of `x` with `weights` into `out` (NCHW), finished with `epi`. The caller
/// checked [`takes`].
pub(crate) fn conv(
    geo: &Geometry,
    x: &[f32],
    weights: &WinogradWeights,
    epi: &Epilogue,
    out: &mut [f32],
) {
    assert!(takes(geo, epi.isa) && weights.shape == [geo.o, geo.c]);
    let (across, down) = (geo.ow.div_ceil(TILE), geo.oh.div_ceil(TILE));
    let (in_plane, plane) = (geo.in_plane(), geo.out_plane());
    let gemms: Vec<ConvGemm> = (0..XI)
        .map(|xi| ConvGemm::of_packed(&weights.packed, xi))
        .collect();
    // Each run of 16 tiles of a row: its first tile, where it reads its input and which lanes
    // of its output's four vectors of a row lie inside the output.
    let runs: Vec<(usize, avx512::Columns, [u16; 4])> = (0..across)
        .step_by(LANES)
        .map(|t0| {
            let x0 = (TILE * t0) as isize;
            let keep = std::array::from_fn(|k| avx512::inside(x0 + 16 * k as isize, geo.ow));
            let cols = avx512::Columns::new(x0 - geo.pl as isize, geo.w);
            (t0, cols, keep)
        })
        .collect();
    let shared = SharedOut::new(out);
    let macs = geo.n * geo.o * geo.c * 9 * plane;
    let pool = buffers::current();
    tasks(geo, across, down, rayon::current_num_threads())
        .into_par_iter()
        .with_min_len(min_per_job(macs))
        .for_each(|t| {
            buffers::within(pool.as_ref(), || {
                let n = (t.rows.1 - t.rows.0) * across;
                // Each transformed input row has `NR` floats of slack, which a panel that crosses
                // its end reads (as `Columns::Rows` describes) and drops.
                let stride = n + NR;
                let mut v = buffers::reuse(XI * geo.c * stride + 4 * NR);
                let image = &x[t.image * geo.c * in_plane..][..geo.c * in_plane];
                let top = (TILE * t.rows.0) as isize - geo.pt as isize;
                let tile_rows = t.rows.1 - t.rows.0;
                let reach = (top, top + (TILE * tile_rows + 2) as isize);
                let planes = image.chunks_exact(in_plane).map(|p| avx512::Plane {
                    at: p.as_ptr(),
                    h: geo.h,
                    w: geo.w,
                });
                let mut next = planes.clone().skip(1);
                for (c, plane) in planes.enumerate() {
                    if let Some(p) = next.next() {
                        p.prefetch(reach);
                    }
                    for (t0, cols, _) in &runs {
                        let at = c * stride + t0;
                        let count = LANES.min(across - t0);
                        let last = at + (tile_rows - 1) * across + (XI - 1) * geo.c * stride;
                        assert!(last + count <= v.len());
                        // SAFETY: `takes` checked AVX-512F; the plane is a whole input channel,
                        // and the stores of `count` floats lie in `v` (the last asserted).
                        unsafe {
                            avx512::input_tiles(
                                &plane,
                                (top, tile_rows),
                                cols,
                                v.as_mut_ptr().add(at),
                                (geo.c * stride, across),
                                count,
                            )
                        };
                    }
                }
                let outs = t.outs.1 - t.outs.0;
                let mut m = buffers::reuse(XI * outs * n);
                // A band is a whole row of tiles or more, so at least `MIN_WIDTH` columns.
                let columns = Columns::Rows {
                    first: 0,
                    width: n,
                    stride,
                };
                let mut offsets = vec![0; geo.c];
                for (xi, (gemm, sums)) in gemms.iter().zip(m.chunks_exact_mut(outs * n)).enumerate()
                {
                    for (c, at) in offsets.iter_mut().enumerate() {
                        *at = (xi * geo.c + c) * stride;
                    }
                    let mut rows: Vec<&mut [f32]> = sums.chunks_exact_mut(n).collect();
                    gemm.multiply_columns(t.outs.0, &v, &offsets, columns, n, &mut rows);
                }
                buffers::give_back(v);
                let first = TILE * t.rows.0 * geo.ow;
                let last = (TILE * t.rows.1).min(geo.oh) * geo.ow;
                for (k, o) in (t.outs.0..t.outs.1).enumerate() {
                    let start = (t.image * geo.o + o) * plane + first;
                    // SAFETY: tasks cover disjoint (image, channel, row band) cells, so no other
                    // reference to this segment of the output exists while it is written.
                    let seg = unsafe { shared.segment(start, last - first) };
                    for ty in t.rows.0..t.rows.1 {
                        for (t0, _, keep) in &runs {
                            let x0 = TILE * t0;
                            let rows = std::array::from_fn(|r| {
                                let y = TILE * ty + r;
                                (y < geo.oh).then(|| seg[(y * geo.ow + x0) - first..].as_mut_ptr())
                            });
                            let at = k * n + (ty - t.rows.0) * across + t0;
                            let count = LANES.min(across - t0);
                            assert!(at + (XI - 1) * outs * n + count <= m.len());
                            // SAFETY: AVX-512F as above; the 36 loads of `count` floats lie in `m`
                            // (asserted), and each row's stores, the lanes `keep` gives, lie in
                            // its output row from column `x0`.
                            unsafe {
                                avx512::output_tiles(
                                    m.as_ptr().add(at),
                                    outs * n,
                                    count,
                                    rows,
                                    *keep,
                                )
                            };
                        }
                    }
                    epi.apply(o, start, seg);
                }
                buffers::give_back(m);
            })
        });
}

mod avx512;

#[cfg(test)]
mod tests {
    use super::super::conv::Geometry;
    use super::super::conv_padded::tests::{silu_convs_match_the_definition, Case};
    use super::{band_rows, takes, tasks, G, SIDE};

    /// The transforms' matrices compute a correlation: `Aᵀ[(G g) ⊙ (Bᵀ d)]` of six inputs and
    /// three taps is the four outputs `Σ_j d[i + j] g[j]`, in f64 on integers, exactly.
    #[test]
    fn the_transforms_compute_a_correlation() {
        const BT: [[f64; SIDE]; SIDE] = [
            [4.0, 0.0, -5.0, 0.0, 1.0, 0.0],
            [0.0, -4.0, -4.0, 1.0, 1.0, 0.0],
            [0.0, 4.0, -4.0, -1.0, 1.0, 0.0],
            [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
            [0.0, 2.0, -1.0, -2.0, 1.0, 0.0],
            [0.0, 4.0, 0.0, -5.0, 0.0, 1.0],
        ];
        const AT: [[f64; SIDE]; 4] = [
            [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
            [0.0, 1.0, -1.0, 2.0, -2.0, 0.0],
            [0.0, 1.0, 1.0, 4.0, 4.0, 0.0],
            [0.0, 1.0, -1.0, 8.0, -8.0, 1.0],
        ];
        let d = [3.0, -1.0, 4.0, 1.0, -5.0, 9.0];
        let g = [2.0, 6.0, -5.0];
        let gg: Vec<f64> = G
            .iter()
            .map(|r| r.iter().zip(&g).map(|(a, b)| a * b).sum())
            .collect();
        let bd: Vec<f64> = BT
            .iter()
            .map(|r| r.iter().zip(&d).map(|(a, b)| a * b).sum())
            .collect();
        for (i, a) in AT.iter().enumerate() {
            let got: f64 = (0..SIDE).map(|x| a[x] * gg[x] * bd[x]).sum();
            let want: f64 = (0..3).map(|j| d[i + j] * g[j]).sum();
            assert!((got - want).abs() < 1e-12, "output {i}: {got} vs {want}");
        }
    }

    /// The bands of YOLOv8n's 64->64 layers at 2 threads: over 40x40 (10x10 tiles) two of 5
    /// rows, one task a thread; over 80x80 (20x20 tiles) four of 5 rows, where bands only as
    /// wide as a panel (3 rows) were 7, 4 on one thread; and one band where a plane is one.
    #[test]
    fn bands_keep_the_threads_even() {
        let geo = |side: usize| {
            let a = temblor_ir::ConvAttrs {
                kernel: [3, 3],
                strides: [1, 1],
                dilations: [1, 1],
                pads: [1, 1, 1, 1],
                auto_pad: temblor_ir::AutoPad::NotSet,
                group: 1,
                activation: None,
                affine: None,
            };
            Geometry::planned(&a, [1, 64, side, side], [64, 64, 3, 3]).expect("a geometry")
        };
        assert_eq!(band_rows(&geo(40), 10, 10, 2), 5);
        // One task a band, each every output channel: a second range would transform the
        // band's input again.
        let cut = tasks(&geo(40), 10, 10, 2);
        assert_eq!(cut.len(), 2);
        assert!(cut.iter().all(|t| t.outs == (0, 64)));
        assert_eq!(band_rows(&geo(80), 20, 20, 2), 5);
        assert_eq!(band_rows(&geo(80), 20, 20, 1), 5);
        assert_eq!(band_rows(&geo(20), 5, 5, 2), 5);
    }

    /// The path against the definition where it cuts: outputs whose last tile row and column
    /// are partial, rows of more than 16 tiles (two runs), uneven and no padding, channels
    /// that are not a multiple of a GEMM block, two images, many bands and output ranges, and
    /// the epilogue (bias, residual, SiLU), weights transformed at plan time or not.
    #[test]
    fn winograd_convolutions_match_the_definition() {
        if !super::super::isa::Isa::detect().avx512() {
            eprintln!("skipped: no AVX-512F here, so the Winograd path never runs");
            return;
        }
        // (n, c, h, w, o, kh, kw, strides, dilations, pads)
        let cases: &[Case] = &[
            (1, 32, 64, 64, 32, 3, 3, [1, 1], [1, 1], [1, 1, 1, 1]),
            (1, 48, 35, 33, 40, 3, 3, [1, 1], [1, 1], [1, 1, 1, 1]),
            (2, 33, 34, 70, 64, 3, 3, [1, 1], [1, 1], [0, 1, 2, 1]),
            (1, 32, 40, 40, 64, 3, 3, [1, 1], [1, 1], [1, 1, 1, 1]),
            (1, 64, 34, 40, 40, 3, 3, [1, 1], [1, 1], [0, 0, 0, 0]),
            (1, 128, 32, 32, 96, 3, 3, [1, 1], [1, 1], [1, 1, 1, 1]),
            (1, 32, 90, 131, 48, 3, 3, [1, 1], [1, 1], [1, 2, 1, 0]),
            // Sums of 256 outputs per band past L2: ranges of output channels on any threads.
            (1, 32, 32, 64, 256, 3, 3, [1, 1], [1, 1], [1, 1, 1, 1]),
        ];
        silu_convs_match_the_definition(cases, 23, "Winograd path", takes);
    }
}
