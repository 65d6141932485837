//! Depthwise convolution (one input channel per group): every output channel is a small
//! stencil over one input plane, so it runs as a direct loop, in parallel over output planes.
//! Each output row is accumulated tap by tap (a contiguous, vectorizable loop when the stride
//! is 1) and finished with the epilogue while it is still in L1.

use super::conv::{valid_range, Geometry};
use super::epilogue::Epilogue;
use rayon::prelude::*;

/// `out` receives the `[n, o, oh, ow]` output; `wv` holds the `[o, 1, kh, kw]` weight.
pub(crate) fn depthwise(geo: &Geometry, xv: &[f32], wv: &[f32], epi: &Epilogue, out: &mut [f32]) {
    let plane = geo.out_plane();
    if plane == 0 {
        return;
    }
    let per_input = geo.o / geo.c;
    let taps = geo.kh * geo.kw;
    // Per kernel column, the output columns whose tap lands inside the input row.
    let columns: Vec<(usize, usize)> = (0..geo.kw)
        .map(|j| valid_range(geo.pl, j * geo.dw, geo.sw, geo.w, geo.ow))
        .collect();
    out.par_chunks_mut(plane)
        .enumerate()
        .for_each(|(index, dst)| {
            let (image, oc) = (index / geo.o, index % geo.o);
            let first = (image * geo.c + oc / per_input) * geo.in_plane();
            let src = &xv[first..first + geo.in_plane()];
            let kernel = &wv[oc * taps..(oc + 1) * taps];
            for (y, row) in dst.chunks_exact_mut(geo.ow).enumerate() {
                row.fill(0.0);
                for i in 0..geo.kh {
                    let Some(iy) = (y * geo.sh + i * geo.dh).checked_sub(geo.pt) else {
                        continue;
                    };
                    if iy >= geo.h {
                        continue;
                    }
                    let line = &src[iy * geo.w..(iy + 1) * geo.w];
                    for (j, &(xlo, xhi)) in columns.iter().enumerate() {
                        accumulate(geo, kernel[i * geo.kw + j], line, j, (xlo, xhi), row);
                    }
                }
                epi.apply(oc, index * plane + y * geo.ow, row);
            }
        });
}

/// `row[x] += k * line[x * sw + j * dw - pl]` for `x` in `xlo..xhi`.
fn accumulate(
    geo: &Geometry,
    k: f32,
    line: &[f32],
    j: usize,
    (xlo, xhi): (usize, usize),
    row: &mut [f32],
) {
    if xlo >= xhi {
        return;
    }
    let first = xlo * geo.sw + j * geo.dw - geo.pl;
    let dst = &mut row[xlo..xhi];
    if geo.sw == 1 {
        let src = &line[first..first + dst.len()];
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d += k * s);
    } else {
        let src = line[first..].iter().step_by(geo.sw);
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d += k * s);
    }
}
