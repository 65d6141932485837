//! A stride-1 convolution as a GEMM that reads a zero-padded copy of its input where im2col
//! would lay out a matrix `kh·kw` times the input's size. Over padded planes `wp` columns wide,
//! the output at `(y, x)` is GEMM column `y·wp + x`, and its tap `(c, i, j)` reads the padded
//! input at `c·hp·wp + i·dh·wp + j·dw` plus that column: every row of the GEMM's right-hand side
//! is a contiguous run of one padded plane, read in place. The `wp - ow` columns between output
//! rows are computed and dropped (2 of every 162 for a 3x3 conv at 160 wide).

use super::buffers;
use super::conv::{min_per_job, tasks, Geometry, SharedOut};
use super::conv_gemm::ConvGemm;
use super::epilogue::Epilogue;
use rayon::prelude::*;

pub(super) fn padded_conv(
    geo: &Geometry,
    xv: &[f32],
    gemms: &[ConvGemm],
    epi: &Epilogue,
    out: &mut [f32],
) {
    let (cg, og) = (geo.c / geo.group, geo.o / geo.group);
    let (hp, wp) = (
        geo.oh + (geo.kh - 1) * geo.dh,
        geo.ow + (geo.kw - 1) * geo.dw,
    );
    let pplane = hp * wp;
    let mut padded = buffers::reuse(geo.n * geo.c * pplane);
    padded
        .par_chunks_mut(pplane)
        .zip(xv.par_chunks(geo.in_plane()))
        .for_each(|(dst, src)| pad_plane(geo, wp, src, dst));
    let taps: Vec<usize> = (0..cg)
        .flat_map(|c| {
            (0..geo.kh).flat_map(move |i| {
                (0..geo.kw).map(move |j| c * pplane + i * geo.dh * wp + j * geo.dw)
            })
        })
        .collect();
    let plane = geo.out_plane();
    let span = (geo.oh - 1) * wp + geo.ow;
    let shared = SharedOut::new(out);
    tasks(geo, taps.len(), span)
        .into_par_iter()
        .with_min_len(min_per_job(geo.o * taps.len() * plane * geo.n))
        .for_each_init(Vec::new, |tile, t| {
            let (m, tw) = (t.rows.1 - t.rows.0, t.cols.1 - t.cols.0);
            tile.resize(m * tw, 0.0);
            let first = (t.image * geo.c + t.group * cg) * pplane + t.cols.0;
            let mut rows: Vec<&mut [f32]> = tile.chunks_exact_mut(tw).collect();
            gemms[t.group].multiply(t.rows.0, &padded[first..], &taps, tw, &mut rows);
            let first_oc = t.group * og + t.rows.0;
            // The tile's columns that are output positions, one output row at a time.
            for y in t.cols.0 / wp..=(t.cols.1 - 1) / wp {
                let (lo, hi) = (t.cols.0.max(y * wp), t.cols.1.min(y * wp + geo.ow));
                if lo >= hi {
                    continue;
                }
                for (r, row) in tile.chunks_exact(tw).enumerate() {
                    let oc = first_oc + r;
                    let start = (t.image * geo.o + oc) * plane + y * geo.ow + lo - y * wp;
                    // SAFETY: tasks cover disjoint (image, channel, column) cells, and each
                    // output position is one column, so no other reference to this segment of
                    // the output exists while it is written.
                    let seg = unsafe { shared.segment(start, hi - lo) };
                    seg.copy_from_slice(&row[lo - t.cols.0..hi - t.cols.0]);
                    epi.apply(oc, start, seg);
                }
            }
        });
    buffers::give_back(padded);
}

/// Copies input plane `src` into `dst`, `wp` columns wide: `pt` rows and `pl` columns of zeros
/// before it, zeros after it. Every element of `dst` is written.
fn pad_plane(geo: &Geometry, wp: usize, src: &[f32], dst: &mut [f32]) {
    for (yp, row) in dst.chunks_exact_mut(wp).enumerate() {
        match yp.checked_sub(geo.pt).filter(|&y| y < geo.h) {
            Some(y) => {
                let lo = geo.pl.min(wp);
                let n = geo.w.min(wp - lo);
                row[..lo].fill(0.0);
                row[lo..lo + n].copy_from_slice(&src[y * geo.w..y * geo.w + n]);
                row[lo + n..].fill(0.0);
            }
            None => row.fill(0.0),
        }
    }
}
