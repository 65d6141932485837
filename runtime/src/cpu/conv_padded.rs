//! A convolution as a GEMM that reads zero-padded copies of its input where im2col would lay
//! out a matrix `kh·kw` times the output's size. A stride-`s` convolution reads padded row
//! `s·y + i` for output row `y` and tap row `i`, so the padded input is split into its `sh·sw`
//! phases (every `sh`-th row from `a`, every `sw`-th column from `b`, each `hq x wq`); tap
//! `(c, i, j)` then reads phase `(i·dh mod sh, j·dw mod sw)` of channel `c` shifted by
//! `(i·dh div sh, j·dw div sw)`, and the output at `(y, x)` is GEMM column `y·wq + x`: every row
//! of the GEMM's right-hand side is a run of one phase, read in place. A stride-1 convolution
//! has one phase, the padded plane itself. Only the phases some tap reads are made.
//!
//! The GEMM's columns are the output positions themselves where the output is at least
//! [`MIN_WIDTH`] wide: the kernel loads a vector of positions that crosses a row end in pieces
//! ([`Columns::Rows`]), skips the `wq - ow` columns between rows, and writes the output in
//! place. Narrower outputs take every column `y·wq + x` of the span, the ones between rows
//! computed and dropped as their tiles are scattered into the output.

use super::buffers;
use super::conv::{Geometry, SharedOut, Tap};
use super::conv_gemm::{Columns, ConvGemm, MIN_WIDTH};
use super::conv_tasks::{min_per_job, tasks, Task};
use super::epilogue::Epilogue;
use super::isa::Isa;
use rayon::prelude::*;

/// The phase layout of a convolution's padded input: which phases exist, how wide they are,
/// and where each GEMM depth row (tap) starts in one group's channels.
pub(super) struct Phases {
    /// The width of a phase, and so of a GEMM column row.
    wq: usize,
    /// One phase's elements (`hq·wq`).
    pplane: usize,
    /// The phases some tap reads, `(row, column)`, in order of first use.
    phases: Vec<(usize, usize)>,
    /// Where tap `(c, i, j)` of a group starts, from its first channel's first phase.
    pub taps: Vec<usize>,
    /// The GEMM columns from the first output position to the last, `(oh - 1)·wq + ow`.
    pub span: usize,
}

impl Phases {
    pub fn new(geo: &Geometry) -> Phases {
        let cg = geo.c / geo.group;
        let (hq, wq) = (
            geo.oh + (geo.kh - 1) * geo.dh / geo.sh,
            geo.ow + (geo.kw - 1) * geo.dw / geo.sw,
        );
        let pplane = hq * wq;
        let reach: Vec<(usize, usize)> = (0..geo.kh)
            .flat_map(|i| (0..geo.kw).map(move |j| (i * geo.dh, j * geo.dw)))
            .collect();
        let mut phases: Vec<(usize, usize)> = Vec::new();
        let tap_phase: Vec<usize> = reach
            .iter()
            .map(|&(ri, rj)| {
                let phase = (ri % geo.sh, rj % geo.sw);
                phases.iter().position(|&p| p == phase).unwrap_or_else(|| {
                    phases.push(phase);
                    phases.len() - 1
                })
            })
            .collect();
        let per_channel = phases.len() * pplane;
        let taps = (0..cg)
            .flat_map(|c| {
                reach.iter().zip(&tap_phase).map(move |(&(ri, rj), &p)| {
                    c * per_channel + p * pplane + ri / geo.sh * wq + rj / geo.sw
                })
            })
            .collect();
        Phases {
            wq,
            pplane,
            phases,
            taps,
            span: (geo.oh - 1) * wq + geo.ow,
        }
    }

    fn per_channel(&self) -> usize {
        self.phases.len() * self.pplane
    }

    /// Elements of the layout of every image and channel.
    pub fn len(&self, geo: &Geometry) -> usize {
        geo.n * geo.c * self.per_channel()
    }

    /// Lays out the input planes `x` into `dst` ([`Phases::len`] elements), padding with `zero`.
    pub fn fill<T: Tap + Send + Sync>(
        &self,
        geo: &Geometry,
        isa: Isa,
        x: &[T],
        dst: &mut [T],
        zero: T,
    ) {
        dst.par_chunks_mut(self.per_channel())
            .zip(x.par_chunks(geo.in_plane()))
            .for_each(|(dst, src)| {
                for (&phase, dst) in self.phases.iter().zip(dst.chunks_exact_mut(self.pplane)) {
                    phase_plane(geo, isa, self.wq, phase, src, dst, zero);
                }
            });
    }

    /// Where task `t`'s first column starts in the layout ([`Phases::taps`] are relative to it).
    pub fn first(&self, geo: &Geometry, t: &Task) -> usize {
        (t.image * geo.c + t.group * (geo.c / geo.group)) * self.per_channel() + t.cols.0
    }

    /// Writes the output positions among task `t`'s GEMM columns (`tile`, one row of `tw`
    /// per output channel of the task) into `out`, one output row at a time, and runs the
    /// epilogue on them, once per channel: a task's output positions are contiguous in each
    /// output plane, and an epilogue call per output row ran a 10-wide row's SiLU one element
    /// at a time (a fifth of a 10x10 convolution's time). When the epilogue stores bytes
    /// only ([`Epilogue::bytes_only`]), the positions are gathered within `tile` instead and
    /// `out` is not touched: the f32 output is never made.
    pub fn scatter(
        &self,
        geo: &Geometry,
        t: &Task,
        tile: &mut [f32],
        out: &SharedOut,
        epi: &Epilogue,
    ) {
        let (wq, tw) = (self.wq, t.cols.1 - t.cols.0);
        let plane = geo.out_plane();
        let first_oc = t.group * (geo.o / geo.group) + t.rows.0;
        let rows = t.cols.0 / wq..=(t.cols.1 - 1) / wq;
        let in_tile = epi.bytes_only();
        for (r, row) in tile.chunks_exact_mut(tw).enumerate() {
            let oc = first_oc + r;
            let base = (t.image * geo.o + oc) * plane;
            let mut written: Option<(usize, usize)> = None;
            for y in rows.clone() {
                let (lo, hi) = (t.cols.0.max(y * wq), t.cols.1.min(y * wq + geo.ow));
                if lo >= hi {
                    continue;
                }
                let start = base + y * geo.ow + lo - y * wq;
                let first = written.map_or(start, |w| w.0);
                let from = lo - t.cols.0..hi - t.cols.0;
                if in_tile {
                    // Gathered leftwards, so no position is overwritten before it moves.
                    row.copy_within(from, start - first);
                } else {
                    // SAFETY: tasks cover disjoint (image, channel, column) cells, and each
                    // output position is one column, so no other reference to this segment
                    // of the output exists while it is written.
                    let seg = unsafe { out.segment(start, hi - lo) };
                    seg.copy_from_slice(&row[from]);
                }
                written = Some((first, start + hi - lo));
            }
            if let Some((start, end)) = written {
                let seg = if in_tile {
                    &mut row[..end - start]
                } else {
                    // SAFETY: as above: the positions from the task's first to its last in
                    // this plane are all its own (GEMM column `y·wq + x` maps to output
                    // `y·ow + x`, in order, and every column between two of the task's is the
                    // task's), and the segments written above are no longer referenced.
                    unsafe { out.segment(start, end - start) }
                };
                epi.apply(oc, start, seg);
            }
        }
    }
}

pub(super) fn padded_conv(
    geo: &Geometry,
    xv: &[f32],
    gemms: &[ConvGemm],
    epi: &Epilogue,
    out: &mut [f32],
) {
    let phases = Phases::new(geo);
    let len = phases.len(geo);
    let by_positions = geo.ow >= MIN_WIDTH;
    // Reads of whole vectors of output positions run up to a panel past the layout's end.
    let slack = if by_positions {
        Columns::slack(geo.ow, phases.wq)
    } else {
        0
    };
    let mut padded = buffers::reuse(len + slack);
    phases.fill(geo, epi.isa, xv, &mut padded[..len], 0.0);
    padded[len..].fill(0.0);
    let shared = SharedOut::new(out);
    if by_positions {
        at_positions(geo, &phases, &padded, gemms, epi, &shared);
    } else {
        over_span(geo, &phases, &padded[..len], gemms, epi, &shared);
    }
    buffers::give_back(padded);
}

/// The tasks of a padded convolution whose GEMM columns are `columns` (output positions, or
/// the span's columns), each tile reading each input element in place once for all the taps
/// it feeds: per column, one element per channel and phase.
fn padded_tasks(geo: &Geometry, phases: &Phases, columns: usize) -> Vec<Task> {
    let per_column = geo.c / geo.group * phases.phases.len();
    tasks(geo, per_column, columns)
}

/// GEMM columns that are output positions: the kernel skips the padding columns between rows
/// and writes the output in place.
fn at_positions(
    geo: &Geometry,
    phases: &Phases,
    padded: &[f32],
    gemms: &[ConvGemm],
    epi: &Epilogue,
    out: &SharedOut,
) {
    let plane = geo.out_plane();
    let og = geo.o / geo.group;
    padded_tasks(geo, phases, plane)
        .into_par_iter()
        .with_min_len(min_per_job(geo.o * phases.taps.len() * plane * geo.n))
        .for_each(|t| {
            let tw = t.cols.1 - t.cols.0;
            let first_oc = t.group * og + t.rows.0;
            let start = |r: usize| (t.image * geo.o + first_oc + r) * plane + t.cols.0;
            // SAFETY: tasks cover disjoint (image, channel, position) cells, so no other
            // reference to these segments of the output exists while they are written.
            let mut rows: Vec<&mut [f32]> = (0..t.rows.1 - t.rows.0)
                .map(|r| unsafe { out.segment(start(r), tw) })
                .collect();
            let columns = Columns::Rows {
                first: t.cols.0,
                width: geo.ow,
                stride: phases.wq,
            };
            let b = &padded[phases.first(geo, &t) - t.cols.0..];
            gemms[t.group].multiply_columns(t.rows.0, b, &phases.taps, columns, tw, &mut rows);
            for (r, row) in rows.iter_mut().enumerate() {
                epi.apply(first_oc + r, start(r), row);
            }
        });
}

/// GEMM columns that are the span's, `y·wq + x`, into tiles whose output positions are
/// scattered into the output: for outputs narrower than [`MIN_WIDTH`].
fn over_span(
    geo: &Geometry,
    phases: &Phases,
    padded: &[f32],
    gemms: &[ConvGemm],
    epi: &Epilogue,
    out: &SharedOut,
) {
    padded_tasks(geo, phases, phases.span)
        .into_par_iter()
        .with_min_len(min_per_job(
            geo.o * phases.taps.len() * geo.out_plane() * geo.n,
        ))
        .for_each_init(Vec::new, |tile, t| {
            let (m, tw) = (t.rows.1 - t.rows.0, t.cols.1 - t.cols.0);
            tile.resize(m * tw, 0.0);
            let mut rows: Vec<&mut [f32]> = tile.chunks_exact_mut(tw).collect();
            let b = &padded[phases.first(geo, &t)..];
            gemms[t.group].multiply(t.rows.0, b, &phases.taps, tw, &mut rows);
            phases.scatter(geo, &t, tile, out, epi);
        });
}

/// Writes phase `(a, b)` of input plane `src`, padded with `zero`, into `dst` (`wq` columns
/// wide): `dst[y][x]` is input `(y·sh + a - pt, x·sw + b - pl)`, or `zero` outside the input.
/// Every element of `dst` is written.
fn phase_plane<T: Tap>(
    geo: &Geometry,
    isa: Isa,
    wq: usize,
    (a, b): (usize, usize),
    src: &[T],
    dst: &mut [T],
    zero: T,
) {
    // The columns x whose input column x·sw + b - pl lies inside the input.
    let first = geo.pl.saturating_sub(b).div_ceil(geo.sw).min(wq);
    let end = (geo.w + geo.pl)
        .checked_sub(b)
        .map_or(0, |e| e.div_ceil(geo.sw))
        .clamp(first, wq);
    for (y, row) in dst.chunks_exact_mut(wq).enumerate() {
        match (y * geo.sh + a).checked_sub(geo.pt).filter(|&r| r < geo.h) {
            Some(r) => {
                let line = &src[r * geo.w..(r + 1) * geo.w];
                row[..first].fill(zero);
                let x0 = first * geo.sw + b - geo.pl;
                if geo.sw == 1 {
                    row[first..end].copy_from_slice(&line[x0..x0 + end - first]);
                } else {
                    T::every(&line[x0..], geo.sw, &mut row[first..end], isa);
                }
                row[end..].fill(zero);
            }
            None => row.fill(zero),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::conv::{conv, pack_weights};
    use super::super::isa::Isa;
    use crate::Tensor;
    use temblor_ir::{AutoPad, ConvAttrs};

    /// One case of [`silu_convs_match_the_definition`]: `(n, c, h, w, o, kh, kw, strides,
    /// dilations, pads)`.
    pub(in crate::cpu) type Case = (
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        [usize; 2],
        [usize; 2],
        [usize; 4],
    );

    /// Each one-group convolution of `cases`, with a bias, a residual and SiLU, against the
    /// definition, its weight packed at plan time or not; every case must be one that `path`
    /// (named `what`) takes on this machine's instruction set.
    pub(in crate::cpu) fn silu_convs_match_the_definition(
        cases: &[Case],
        seed: u32,
        what: &str,
        path: impl Fn(&super::super::conv::Geometry, Isa) -> bool,
    ) {
        let isa = Isa::detect();
        let mut next = super::super::test_values(seed);
        for &(n, c, h, w, o, kh, kw, strides, dilations, pads) in cases {
            let x: Vec<f32> = (0..n * c * h * w).map(|_| next()).collect();
            let k: Vec<f32> = (0..o * c * kh * kw).map(|_| next()).collect();
            let bias: Vec<f32> = (0..o).map(|_| next()).collect();
            let attrs = ConvAttrs {
                kernel: [kh, kw],
                strides,
                dilations,
                pads,
                auto_pad: AutoPad::NotSet,
                group: 1,
                activation: Some(temblor_ir::Activation::Silu),
                affine: None,
            };
            let xt = Tensor::f32(vec![n, c, h, w], x.clone());
            let wt = Tensor::f32(vec![o, c, kh, kw], k.clone());
            let geo =
                super::super::conv::Geometry::new(&attrs, &xt, [o, c, kh, kw]).expect("geometry");
            assert!(
                path(&geo, isa),
                "{c}->{o} {h}x{w} is not one the {what} takes"
            );
            let dims = ([n, c, h, w], [o, c, kh, kw]);
            let (shape, sums) = reference(&x, dims.0, &k, dims.1, 1, strides, dilations, pads);
            let residual: Vec<f32> = (0..sums.len()).map(|_| next()).collect();
            let rt = Tensor::f32(shape.clone(), residual.clone());
            let bt = Tensor::f32(vec![o], bias.clone());
            let plane = shape[2] * shape[3];
            let packed = pack_weights(&attrs, &wt, isa, Some(dims.0));
            assert!(packed.is_some(), "{c}->{o}: no packed weight");
            for packed in [None, packed.as_ref()] {
                let got = conv(
                    &attrs,
                    [&xt, &wt],
                    Some(&bt),
                    Some(&rt),
                    isa,
                    (packed, None),
                )
                .expect("conv");
                assert_eq!(got.shape, shape);
                let depth = (c * kh * kw) as f64;
                for (i, (&g, &s)) in got.as_f32().expect("f32").iter().zip(&sums).enumerate() {
                    let z = f64::from(s) + f64::from(bias[i / plane % o]) + f64::from(residual[i]);
                    let want = z / (1.0 + (-z).exp());
                    assert!(
                        (f64::from(g) - want).abs() <= 2e-5 * depth.sqrt() * (1.0 + want.abs()),
                        "{what}, {c}->{o} {h}x{w} {kh}x{kw} strides {strides:?} dilations \
                         {dilations:?} pads {pads:?}: element {i} is {g}, the definition gives \
                         {want}"
                    );
                }
            }
        }
    }

    /// ONNX Conv by its definition, in f64.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::cpu) fn reference(
        x: &[f32],
        [n, c, h, w]: [usize; 4],
        k: &[f32],
        [o, cg, kh, kw]: [usize; 4],
        group: usize,
        [sh, sw]: [usize; 2],
        [dh, dw]: [usize; 2],
        [pt, pl, pb, pr]: [usize; 4],
    ) -> (Vec<usize>, Vec<f32>) {
        let oh = (h + pt + pb - (kh - 1) * dh - 1) / sh + 1;
        let ow = (w + pl + pr - (kw - 1) * dw - 1) / sw + 1;
        let og = o / group;
        let mut out = Vec::with_capacity(n * o * oh * ow);
        for b in 0..n {
            for oc in 0..o {
                let g = oc / og;
                for y in 0..oh {
                    for xo in 0..ow {
                        let mut acc = 0.0f64;
                        for ci in 0..cg {
                            let ic = g * cg + ci;
                            for i in 0..kh {
                                for j in 0..kw {
                                    let r = (y * sh + i * dh) as isize - pt as isize;
                                    let s = (xo * sw + j * dw) as isize - pl as isize;
                                    if r < 0 || s < 0 || r >= h as isize || s >= w as isize {
                                        continue;
                                    }
                                    let xv = x[((b * c + ic) * h + r as usize) * w + s as usize];
                                    let kv = k[((oc * cg + ci) * kh + i) * kw + j];
                                    acc += f64::from(xv) * f64::from(kv);
                                }
                            }
                        }
                        out.push(acc as f32);
                    }
                }
            }
        }
        (vec![n, o, oh, ow], out)
    }

    /// Every stride, dilation and padding the phases split differently (and the im2col path of
    /// shallow strided convolutions), grouped and not, with and without weights packed at plan
    /// time, on every instruction set here.
    #[test]
    fn strided_dilated_padded_convolutions_match_the_definition() {
        let mut next = super::super::test_values(11);
        // (n, c, h, w, o, group, kh, kw, strides, dilations, pads)
        let cases = [
            (1, 16, 20, 21, 32, 1, 3, 3, [2, 2], [1, 1], [1, 1, 1, 1]),
            (1, 8, 17, 13, 16, 1, 3, 3, [2, 2], [1, 1], [0, 1, 1, 0]),
            (2, 6, 15, 16, 12, 2, 3, 3, [2, 1], [1, 1], [1, 0, 2, 1]),
            (1, 4, 19, 18, 9, 1, 5, 5, [3, 2], [1, 2], [2, 2, 2, 2]),
            (1, 8, 12, 12, 16, 1, 1, 1, [2, 2], [1, 1], [0, 0, 0, 0]),
            (1, 3, 32, 32, 16, 1, 4, 4, [4, 4], [1, 1], [0, 0, 0, 0]),
            // Rows of 35 stride-2 outputs: two vectors of AVX-512's gather, then its tail.
            (1, 3, 12, 70, 16, 1, 3, 3, [2, 2], [1, 1], [1, 1, 1, 1]),
            (1, 8, 11, 9, 10, 1, 3, 2, [1, 3], [2, 1], [3, 0, 0, 4]),
            (1, 12, 10, 10, 24, 3, 3, 3, [1, 1], [1, 1], [1, 1, 1, 1]),
            // Deep enough for the strided phases (`cg·kh·kw` >= 256); the ones above take im2col.
            (1, 32, 13, 14, 16, 1, 3, 3, [2, 2], [1, 1], [1, 0, 1, 1]),
            (2, 64, 12, 11, 18, 2, 3, 3, [2, 2], [1, 1], [1, 1, 1, 1]),
            (1, 64, 17, 15, 16, 1, 3, 3, [3, 2], [2, 1], [2, 1, 0, 3]),
            (1, 256, 8, 9, 16, 1, 1, 1, [2, 2], [1, 1], [0, 0, 0, 0]),
            (1, 16, 16, 16, 24, 1, 4, 4, [4, 4], [1, 1], [0, 0, 0, 0]),
        ];
        for (n, c, h, w, o, group, kh, kw, strides, dilations, pads) in cases {
            let cg = c / group;
            let x: Vec<f32> = (0..n * c * h * w).map(|_| next()).collect();
            let k: Vec<f32> = (0..o * cg * kh * kw).map(|_| next()).collect();
            let attrs = ConvAttrs {
                kernel: [kh, kw],
                strides,
                dilations,
                pads,
                auto_pad: AutoPad::NotSet,
                group,
                activation: None,
                affine: None,
            };
            let (shape, want) = reference(
                &x,
                [n, c, h, w],
                &k,
                [o, cg, kh, kw],
                group,
                strides,
                dilations,
                pads,
            );
            let xt = Tensor::f32(vec![n, c, h, w], x.clone());
            let wt = Tensor::f32(vec![o, cg, kh, kw], k.clone());
            for isa in Isa::available() {
                let packed = pack_weights(&attrs, &wt, isa, Some([n, c, h, w]));
                for packed in [None, packed.as_ref()] {
                    let got = conv(&attrs, [&xt, &wt], None, None, isa, (packed, None)).unwrap();
                    assert_eq!(got.shape, shape);
                    let got = got.as_f32().unwrap();
                    let depth = (cg * kh * kw) as f64;
                    for (i, (&g, &e)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (f64::from(g) - f64::from(e)).abs() <= 1e-5 * depth.sqrt(),
                            "{isa}, strides {strides:?}, dilations {dilations:?}, pads {pads:?}, \
                             group {group}: element {i} is {g}, the definition gives {e}"
                        );
                    }
                }
            }
        }
    }
}
