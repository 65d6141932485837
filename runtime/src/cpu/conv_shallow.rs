//! A convolution with few input channels: the stem that reads an RGB image.
//!
//! With 3 input channels a 3x3 window is 27 multiply-adds per output, too few to pay for what
//! the GEMM path lays out per output (an im2col or phase column of 27 floats), and too few
//! inputs for the blocked path's blocks of 16 channels. Every model's first layer is one
//! (YOLOv8n's 3->16 stride 2 ran at 18% of the FMA peak, YOLO11s-seg's 3->32 at 12%, U^2-Net's
//! 3->64 at 26%). Here the vectors are 16 output positions of one row, read straight from a
//! padded copy of the input rows (for stride 2, the even floats of two loads, picked by one
//! permute), and each is multiplied by a broadcast weight into the sums of 8 output channels: a
//! tile of 3 vectors by 8 channels keeps its 24 sums in registers over every channel and tap.
//! Each task pads the rows its band of outputs reads, and each output row is finished with the
//! epilogue while it is in cache.

use super::conv::{Geometry, SharedOut};
use super::conv_tasks::min_per_job;
use super::epilogue::Epilogue;
use super::isa::Isa;
use rayon::prelude::*;

/// The most input channels the path takes: past 4 the GEMM path's depth is enough.
const MAX_CHANNELS: usize = 4;
/// Output channels per tile.
const GROUP: usize = 8;
/// Vectors of output positions per tile.
const VECTORS: usize = 3;
/// Positions per vector: one AVX-512 vector of f32.
const LANES: usize = 16;

/// A convolution weight `[o, c, kh, kw]` as `[o/8][c][kh][kw][8]`, zero past `o`.
#[derive(Debug)]
pub(crate) struct ShallowWeights {
    data: Vec<f32>,
    shape: [usize; 4],
}

impl ShallowWeights {
    pub fn new(w: &[f32], shape: [usize; 4]) -> ShallowWeights {
        let [o, c, kh, kw] = shape;
        let taps = c * kh * kw;
        let mut data = vec![0.0; o.div_ceil(GROUP) * taps * GROUP];
        for (oc, filter) in w.chunks_exact(taps).take(o).enumerate() {
            for (t, &v) in filter.iter().enumerate() {
                data[(oc / GROUP * taps + t) * GROUP + oc % GROUP] = v;
            }
        }
        ShallowWeights { data, shape }
    }

    /// The packed weight when the path takes convolutions of weight `shape` in `group` groups on
    /// `isa`.
    pub fn for_conv(
        w: &[f32],
        shape: [usize; 4],
        group: usize,
        isa: Isa,
    ) -> Option<ShallowWeights> {
        (eligible(shape, group) && isa.avx512()).then(|| ShallowWeights::new(w, shape))
    }
}

/// Whether the weight and attributes suit the path: one group, 2 to 4 input channels (one is a
/// depthwise stencil's), a window, and at least a tile's outputs.
fn eligible([o, c, kh, kw]: [usize; 4], group: usize) -> bool {
    group == 1 && (2..=MAX_CHANNELS).contains(&c) && kh * kw > 1 && o >= GROUP
}

/// Whether the path runs convolution `geo` on `isa`: as [`ShallowWeights::for_conv`] says, with
/// a horizontal stride of 1 or 2 (the permute picks every other float), no horizontal dilation,
/// and rows of at least one vector.
pub(crate) fn takes(geo: &Geometry, isa: Isa) -> bool {
    isa.avx512()
        && eligible([geo.o, geo.c, geo.kh, geo.kw], geo.group)
        && matches!(geo.sw, 1 | 2)
        && geo.dw == 1
        && geo.ow >= LANES
}

/// The padded input: `[n][c][hp][row]`, where padded position `(y, x)` is input
/// `(y - pt, x - pl)` or zero. Rows run past the last column a tap reads by enough for whole
/// vectors (the lanes past the output's width are computed and not stored).
struct Padded {
    hp: usize,
    row: usize,
}

impl Padded {
    fn new(geo: &Geometry) -> Padded {
        Padded {
            hp: (geo.oh - 1) * geo.sh + (geo.kh - 1) * geo.dh + 1,
            row: geo.sw * geo.ow.next_multiple_of(LANES) + geo.kw,
        }
    }

    fn plane(&self) -> usize {
        self.hp * self.row
    }

    /// Fills padded row `y` of channel plane `src` into `dst`.
    fn fill(&self, geo: &Geometry, src: &[f32], y: usize, dst: &mut [f32]) {
        let Some(r) = y.checked_sub(geo.pt).filter(|&r| r < geo.h) else {
            dst.fill(0.0);
            return;
        };
        let first = geo.pl.min(self.row);
        let columns = geo.w.min(self.row - first);
        dst[..first].fill(0.0);
        dst[first..first + columns].copy_from_slice(&src[r * geo.w..][..columns]);
        dst[first + columns..].fill(0.0);
    }
}

/// Convolution `geo` of `x` with `weights` into `out` (NCHW), finished with `epi`. The caller
/// checked [`takes`].
pub(crate) fn conv(
    geo: &Geometry,
    x: &[f32],
    weights: &ShallowWeights,
    epi: &Epilogue,
    out: &mut [f32],
) {
    assert!(takes(geo, epi.isa) && weights.shape == [geo.o, geo.c, geo.kh, geo.kw]);
    let whole = Padded::new(geo);
    let macs = geo.n * geo.o * geo.c * geo.kh * geo.kw * geo.out_plane();
    let shared = SharedOut::new(out);
    let threads = rayon::current_num_threads().max(1);
    let bands = (4 * threads).div_ceil(geo.n).clamp(1, geo.oh);
    let per_band = geo.oh.div_ceil(bands);
    let tasks: Vec<(usize, usize)> = (0..geo.n)
        .flat_map(|image| (0..geo.oh).step_by(per_band).map(move |y| (image, y)))
        .collect();
    tasks
        .into_par_iter()
        .with_min_len(min_per_job(macs))
        .for_each_init(Vec::new, |band, (image, y0)| {
            // Each band pads the rows it reads, and computes from them while they are in
            // cache: a padded copy of the whole input, made first, put orinet's 3->32 stem's
            // working set (the copy, 1.2 MB, and the output, 3.3 MB) past two L2 caches.
            let y1 = (y0 + per_band).min(geo.oh);
            let first = y0 * geo.sh;
            let padded = Padded {
                hp: (y1 - 1 - y0) * geo.sh + (geo.kh - 1) * geo.dh + 1,
                row: whole.row,
            };
            band.resize(geo.c * padded.plane(), 0.0);
            for (c, plane) in band.chunks_exact_mut(padded.plane()).enumerate() {
                let src = &x[(image * geo.c + c) * geo.in_plane()..][..geo.in_plane()];
                for (i, dst) in plane.chunks_exact_mut(padded.row).enumerate() {
                    whole.fill(geo, src, first + i, dst);
                }
            }
            for y in y0..y1 {
                for g in 0..geo.o.div_ceil(GROUP) {
                    let channels = (g * GROUP..((g + 1) * GROUP).min(geo.o))
                        .map(|oc| (oc, ((image * geo.o + oc) * geo.oh + y) * geo.ow));
                    let mut rows = [std::ptr::null_mut::<f32>(); GROUP];
                    for (row, (_, start)) in rows.iter_mut().zip(channels.clone()) {
                        // SAFETY: tasks cover disjoint (image, row) cells, so no other reference
                        // to this output row exists while it is written.
                        *row = unsafe { shared.segment(start, geo.ow) }.as_mut_ptr();
                    }
                    let w = &weights.data[g * geo.c * geo.kh * geo.kw * GROUP..]
                        [..geo.c * geo.kh * geo.kw * GROUP];
                    // SAFETY: `takes` checked AVX-512F; the reads stay in the band's padded
                    // rows (see `row`) and the stores in the rows.
                    unsafe { avx512::row(geo, &padded, band, y - y0, w, &rows) };
                    for (oc, start) in channels {
                        // SAFETY: as above; the kernel's pointers are no longer used.
                        let seg = unsafe { shared.segment(start, geo.ow) };
                        epi.apply(oc, start, seg);
                    }
                }
            }
        });
}

mod avx512 {
    use super::super::conv::Geometry;
    use super::{Padded, GROUP, LANES, VECTORS};
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_mask_storeu_ps, _mm512_permutex2var_ps,
        _mm512_set1_ps, _mm512_setr_epi32, _mm512_setzero_ps,
    };

    /// Output row `y` of the 8 output channels whose weights are `w` (`[c][kh][kw][8]`) into
    /// `rows` (each the row's first position, null past the output's channels), from the padded
    /// input `input` of one image.
    ///
    /// # Safety
    /// AVX-512F must be available; each non-null row must hold `geo.ow` floats.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn row(
        geo: &Geometry,
        padded: &Padded,
        input: &[f32],
        y: usize,
        w: &[f32],
        rows: &[*mut f32; GROUP],
    ) {
        assert!(
            input.len() == geo.c * padded.plane() && w.len() == geo.c * geo.kh * geo.kw * GROUP
        );
        assert!((y * geo.sh + (geo.kh - 1) * geo.dh) < padded.hp);
        let tile = Tile {
            input: input.as_ptr(),
            line: y * geo.sh * padded.row,
            plane: padded.plane(),
            down: geo.dh * padded.row,
            geo,
            w: w.as_ptr(),
        };
        let step = VECTORS * LANES;
        for x0 in (0..geo.ow).step_by(step) {
            let count = step.min(geo.ow - x0);
            // SAFETY: every read of a tile at `x0` lies in its padded rows: the last vector's
            // last lane reads column `sw·(x0 + 16·VECTORS - 1) + kw - 1`, below
            // `sw·ceil16(ow) + kw`, the row's length; the stores are masked to `count`.
            unsafe {
                match (count.div_ceil(LANES), geo.sw) {
                    (1, 1) => tile.run::<1, 1>(x0, count, rows),
                    (2, 1) => tile.run::<2, 1>(x0, count, rows),
                    (_, 1) => tile.run::<3, 1>(x0, count, rows),
                    (1, _) => tile.run::<1, 2>(x0, count, rows),
                    (2, _) => tile.run::<2, 2>(x0, count, rows),
                    (_, _) => tile.run::<3, 2>(x0, count, rows),
                }
            }
        }
    }

    /// Where one output row's tiles read.
    struct Tile<'a> {
        input: *const f32,
        /// The first padded row of the window, from a plane's start.
        line: usize,
        plane: usize,
        /// From one tap row to the next.
        down: usize,
        geo: &'a Geometry,
        w: *const f32,
    }

    impl Tile<'_> {
        /// `P` vectors of positions from `x0` (`count` of them stored) at stride `S`.
        ///
        /// # Safety
        /// As [`row`]'s, with the tile's reads inside the padded rows.
        #[target_feature(enable = "avx512f")]
        unsafe fn run<const P: usize, const S: usize>(
            &self,
            x0: usize,
            count: usize,
            rows: &[*mut f32; GROUP],
        ) {
            let geo = self.geo;
            let evens =
                _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let mut acc = [[_mm512_setzero_ps(); P]; GROUP];
            let mut w = self.w;
            for c in 0..geo.c {
                for i in 0..geo.kh {
                    // SAFETY: inside the image's padded planes (the caller's bounds).
                    let line = unsafe {
                        self.input
                            .add(c * self.plane + self.line + i * self.down + S * x0)
                    };
                    for j in 0..geo.kw {
                        let mut v = [_mm512_setzero_ps(); P];
                        for (p, v) in v.iter_mut().enumerate() {
                            // SAFETY: as above.
                            *v = unsafe {
                                let at = line.add(j + S * LANES * p);
                                if S == 1 {
                                    _mm512_loadu_ps(at)
                                } else {
                                    let (lo, hi) =
                                        (_mm512_loadu_ps(at), _mm512_loadu_ps(at.add(LANES)));
                                    _mm512_permutex2var_ps(lo, evens, hi)
                                }
                            };
                        }
                        acc = fma(acc, v, w);
                        // SAFETY: `w` holds `c·kh·kw` taps of 8.
                        w = unsafe { w.add(GROUP) };
                    }
                }
            }
            for (sums, &row) in acc.iter().zip(rows) {
                if row.is_null() {
                    continue;
                }
                for (p, &s) in sums.iter().enumerate() {
                    let n = count.saturating_sub(p * LANES).min(LANES);
                    let mask = if n == LANES {
                        u16::MAX
                    } else {
                        (1u16 << n) - 1
                    };
                    // SAFETY: the mask covers positions `x0 + 16p ..` below `count`, in the row.
                    unsafe { _mm512_mask_storeu_ps(row.add(x0 + p * LANES), mask, s) };
                }
            }
        }
    }

    /// The sums of 8 channels by `P` vectors plus `v` times the 8 weights at `w`. Taken and
    /// returned by value, so that they stay in registers.
    #[inline(always)]
    fn fma<const P: usize>(
        mut acc: [[__m512; P]; GROUP],
        v: [__m512; P],
        w: *const f32,
    ) -> [[__m512; P]; GROUP] {
        for (g, sums) in acc.iter_mut().enumerate() {
            // SAFETY: the caller's `w` holds 8 floats; AVX-512F is enabled in every caller.
            let k = unsafe { _mm512_set1_ps(*w.add(g)) };
            for (s, &v) in sums.iter_mut().zip(&v) {
                // SAFETY: as above.
                *s = unsafe { _mm512_fmadd_ps(v, k, *s) };
            }
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv_padded::tests::{silu_convs_match_the_definition, Case};
    use super::super::isa::Isa;
    use super::takes;

    /// The path against the definition: 2 to 4 input channels, output channels past a whole
    /// group of 8 (20, 33), rows whose last tile has 1, 2 or 3 vectors and a partial one,
    /// strides 1 and 2 (and a vertical stride alone), a vertical dilation, uneven padding, two
    /// images, and the epilogue (bias, residual, SiLU); weights packed at plan time or not.
    #[test]
    fn shallow_convolutions_match_the_definition() {
        if !Isa::detect().avx512() {
            eprintln!("skipped: no AVX-512F here, so the shallow path never runs");
            return;
        }
        // (n, c, h, w, o, kh, kw, strides, dilations, pads)
        let cases: &[Case] = &[
            (1, 3, 20, 32, 16, 3, 3, [2, 2], [1, 1], [1, 1, 1, 1]),
            (2, 3, 9, 50, 20, 3, 3, [1, 1], [1, 1], [1, 1, 1, 1]),
            (1, 4, 7, 97, 33, 5, 5, [2, 2], [1, 1], [2, 2, 2, 2]),
            (1, 2, 11, 35, 8, 7, 3, [2, 1], [2, 1], [3, 0, 2, 1]),
            (1, 3, 6, 80, 64, 2, 2, [1, 1], [1, 1], [0, 0, 1, 1]),
            (1, 3, 13, 200, 24, 6, 6, [2, 2], [1, 1], [2, 3, 1, 2]),
        ];
        silu_convs_match_the_definition(cases, 23, "shallow path", takes);
    }
}
