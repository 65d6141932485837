//! Pooling over the trailing spatial axes of `[N, C, ...]`: MaxPool (with optional flat
//! indices), AveragePool, GlobalAveragePool and GlobalMaxPool. Windows of 1 to 3 spatial axes
//! share one geometry: fewer axes are lifted to three with unit windows, and each axis's taps
//! inside the input are precomputed per output position as one arithmetic run. Max and sum
//! windows are separable, so each output row folds its window's rows first, then its
//! windows along the row (a stride-1 MaxPool over narrow rows folds a padded copy of the
//! whole plane instead); only MaxPool's indices walk whole windows.

mod geometry;

use super::buffers;
use super::isa::Isa;
use super::real::{dispatch_real, sum_f64, values, Ordered, Real};
use super::{dispatch, f32s};
use crate::RuntimeError;
use crate::Tensor;
pub(crate) use geometry::out_extent;
use geometry::{Axis, Geometry};
use rayon::prelude::*;
use temblor_ir::PoolAttrs;

pub(crate) fn global_max_pool(x: &Tensor) -> Result<Tensor, RuntimeError> {
    planes(x)?;
    dispatch!(x.dtype(), T => global_max_pool_t::<T>(x))
}

/// The pooled values, and with `with_indices` their flat indices too.
pub(crate) fn max_pool(
    a: &PoolAttrs,
    x: &Tensor,
    with_indices: bool,
    isa: Isa,
) -> Result<Vec<Tensor>, RuntimeError> {
    let g = Geometry::new(a, &x.shape)?;
    dispatch!(x.dtype(), T => max_pool_t::<T>(&g, x, with_indices, isa))
}

pub(crate) fn average_pool(a: &PoolAttrs, x: &Tensor, isa: Isa) -> Result<Tensor, RuntimeError> {
    let g = Geometry::new(a, &x.shape)?;
    let include_pad = a.count_include_pad;
    dispatch_real!(x.dtype(), "AveragePool", T => average_pool_t::<T>(&g, x, include_pad, isa))
}

/// The number of `[n, c]` planes and the size of each.
fn planes(x: &Tensor) -> Result<(usize, usize), RuntimeError> {
    if x.shape.len() < 3 {
        return Err(RuntimeError::bad_input(format!(
            "pooling needs an input of rank >= 3, got shape {:?}",
            x.shape
        )));
    }
    Ok((x.shape[0] * x.shape[1], x.shape[2..].iter().product()))
}

pub(crate) fn global_average_pool(x: &Tensor) -> Result<Tensor, RuntimeError> {
    let v = f32s(x, "input")?;
    let (count, plane) = planes(x)?;
    /// Elements below which one thread sums every plane: about 2 µs of reading.
    const PARALLEL: usize = 1 << 16;
    // Sums in f64: a large plane summed in f32 loses digits that onnxruntime keeps.
    let mean =
        |i: usize| (sum_f64(&v[i * plane..(i + 1) * plane], f64::from) / plane as f64) as f32;
    // In parallel over the planes where they are large: PicoDet's squeeze-excite blocks read
    // up to 1 MB each.
    let out = if count * plane >= PARALLEL {
        (0..count).into_par_iter().map(mean).collect()
    } else {
        (0..count).map(mean).collect()
    };
    let mut shape = x.shape.clone();
    shape[2..].fill(1);
    Ok(Tensor::f32(shape, out))
}

fn global_max_pool_t<T: Ordered>(x: &Tensor) -> Result<Tensor, RuntimeError> {
    let v = values::<T>(x, "input")?;
    let (_, plane) = planes(x)?;
    let out = v
        .chunks(plane.max(1))
        .map(|p| {
            p.iter()
                .copied()
                .fold(T::LOWEST, |m, e| if e > m { e } else { m })
        })
        .collect();
    let mut shape = x.shape.clone();
    shape[2..].fill(1);
    Ok(Tensor {
        shape,
        data: T::wrap(out),
    })
}

/// The innermost pass over one line: windows wholly inside the input (a contiguous range of
/// outputs) run tap by tap across the range, which vectorizes; border windows run one by one.
/// A strided axis is first split into its `stride` phases (`phases` is scratch for them), so
/// that every tap reads a contiguous run of one phase: read with a stride, a 2x2 stride-2
/// MaxPool took one element at a time and ran 3x slower than onnxruntime's.
#[inline(always)]
fn line<T: Copy>(s: &[T], axis: &Axis, out: &mut [T], phases: &mut Vec<T>, f: impl Fn(T, T) -> T) {
    let (lo, hi) = (axis.full.start, axis.full.end);
    let border = (0..lo).chain(hi..axis.runs.len());
    for (o, r) in border.map(|o| (o, &axis.runs[o])) {
        out[o] = (0..r.valid).fold(out[o], |a, t| f(a, s[r.first + t * axis.step]));
    }
    if lo == hi {
        return;
    }
    let acc = &mut out[lo..hi];
    let span = &s[axis.runs[lo].first..];
    let stride = axis.stride;
    if stride == 1 {
        for t in 0..axis.kernel {
            for (a, &e) in acc.iter_mut().zip(&span[t * axis.step..]) {
                *a = f(*a, e);
            }
        }
        return;
    }
    // Phase `p` holds `span[p + stride·j]`, for as many `j` as the last tap of the last
    // window needs.
    let len = acc.len() + (axis.kernel - 1) * axis.step / stride;
    phases.clear();
    phases.resize(stride * len, s[0]);
    match stride {
        2 => split_pairs(span, len, phases),
        _ => split_tail(span, stride, len, 0, phases),
    }
    for t in 0..axis.kernel {
        let at = t * axis.step;
        let phase = &phases[(at % stride) * len + at / stride..];
        for (a, &e) in acc.iter_mut().zip(phase) {
            *a = f(*a, e);
        }
    }
}

/// `phases[p·len + j] = span[p + 2·j]` for every `j < len` that `span` holds: pairs zipped
/// with both phases, which vectorizes.
#[inline(always)]
fn split_pairs<T: Copy>(span: &[T], len: usize, phases: &mut [T]) {
    let (even, odd) = phases.split_at_mut(len);
    let whole = len.min(span.len() / 2);
    for ((e, o), pair) in even
        .iter_mut()
        .zip(odd.iter_mut())
        .zip(span.chunks_exact(2))
    {
        *e = pair[0];
        *o = pair[1];
    }
    split_tail(span, 2, len, whole, phases);
}

/// The elements of `span` from group `from` on into their phases.
#[inline(always)]
fn split_tail<T: Copy>(span: &[T], stride: usize, len: usize, from: usize, phases: &mut [T]) {
    for (i, &e) in span.iter().enumerate().skip(from * stride) {
        if i / stride < len {
            phases[(i % stride) * len + i / stride] = e;
        }
    }
}

/// A whole plane into `out` (initialized here), one output row at a time: the row's window
/// rows are folded element by element into one input-wide row (contiguous, so it vectorizes),
/// and [`line()`] folds that row's windows. Max and sum windows are separable, so this equals
/// folding each whole window, and reads each input row once per window row it falls in.
#[inline(always)]
fn separable<T: Copy>(
    g: &Geometry,
    src: &[T],
    out: &mut [T],
    init: T,
    f: impl Fn(T, T) -> T + Copy,
) {
    let [ad, ah, aw] = &g.axes;
    let (h, w) = (ah.extent, aw.extent);
    let mut row = vec![init; w];
    let mut phases = Vec::new();
    let mut rows = out.chunks_mut(aw.runs.len().max(1));
    for rd in &ad.runs {
        for rh in &ah.runs {
            let window_rows = (0..rd.valid).flat_map(|i| {
                let d = rd.first + i * ad.step;
                (0..rh.valid).map(move |j| (d * h + rh.first + j * ah.step) * w)
            });
            let mut first = true;
            for start in window_rows {
                let input = &src[start..start + w];
                if std::mem::take(&mut first) {
                    row.copy_from_slice(input);
                } else {
                    for (a, &e) in row.iter_mut().zip(input) {
                        *a = f(*a, e);
                    }
                }
            }
            if first {
                row.fill(init);
            }
            let Some(dst) = rows.next() else { return };
            if aw.is_identity() {
                dst.copy_from_slice(&row);
            } else {
                dst.fill(init);
                line(&row, aw, dst, &mut phases, f);
            }
        }
    }
}

/// Max over each 2x2 square at stride 2 of a plane `w` wide into `out` (`ow` wide): both rows
/// of a window and its pairs in one pass. Through [`separable`], the four passes of a row and
/// its splitting into phases cost 7 cycles an output on orinet's 40-wide planes.
#[inline(always)]
fn max_of_squares<T: Ordered>(src: &[T], w: usize, out: &mut [T], ow: usize) {
    for (y, dst) in out.chunks_exact_mut(ow.max(1)).enumerate() {
        let top = &src[2 * y * w..][..2 * ow];
        let bottom = &src[(2 * y + 1) * w..][..2 * ow];
        for ((d, a), b) in dst
            .iter_mut()
            .zip(top.chunks_exact(2))
            .zip(bottom.chunks_exact(2))
        {
            *d = a[0].larger(a[1]).larger(b[0].larger(b[1]));
        }
    }
}

/// Max over each window of a plane (`src`, `h x w`) at stride 1 without dilation into `out`, as
/// [`Geometry::narrow_stride_one`] takes them: the plane is copied into `padded` with its
/// padding (and any window's overhang) as `LOWEST`, `wp` wide; each position of the flat copy
/// takes the max of the `kw` from it, then of the `kh` rows of those from it, each in one pass
/// over the whole plane (across row ends, where no output reads the result).
#[inline(always)]
fn max_of_padded<T: Ordered>(g: &Geometry, src: &[T], out: &mut [T], padded: &mut Vec<T>) {
    let [_, ah, aw] = &g.axes;
    let (w, oh, ow) = (aw.extent, ah.runs.len(), aw.runs.len());
    let (kh, kw) = (ah.kernel, aw.kernel);
    let (hp, wp) = (oh + kh - 1, ow + kw - 1);
    let (pt, pl) = (ah.pad_begin, aw.pad_begin);
    let n = hp * wp;
    padded.clear();
    padded.resize(2 * n + kw - 1, T::LOWEST);
    let (plane, rows) = padded.split_at_mut(n + kw - 1);
    let columns = w.min(wp.saturating_sub(pl));
    for (r, row) in src.chunks_exact(w).enumerate().take(hp.saturating_sub(pt)) {
        plane[(r + pt) * wp + pl..][..columns].copy_from_slice(&row[..columns]);
    }
    rows.copy_from_slice(&plane[..n]);
    for t in 1..kw {
        for (m, &e) in rows.iter_mut().zip(&plane[t..]) {
            *m = m.larger(e);
        }
    }
    // The windows' maxima over the copy's first `oh` rows, again across row ends.
    let windows = &mut plane[..oh * wp];
    windows.copy_from_slice(&rows[..oh * wp]);
    for t in 1..kh {
        for (m, &e) in windows.iter_mut().zip(&rows[t * wp..]) {
            *m = m.larger(e);
        }
    }
    for (dst, row) in out.chunks_exact_mut(ow).zip(windows.chunks_exact(wp)) {
        dst.copy_from_slice(&row[..ow]);
    }
}

fn max_pool_t<T: Ordered + Send + Sync>(
    g: &Geometry,
    x: &Tensor,
    with_indices: bool,
    isa: Isa,
) -> Result<Vec<Tensor>, RuntimeError> {
    let v = values::<T>(x, "input")?;
    let (ip, op) = (g.in_plane(), g.out_plane());
    // Every element is written below; from the run's pool, a fresh buffer is not paged in.
    let mut out = buffers::empty::<T>(g.planes * op);
    out.resize(g.planes * op, T::LOWEST);
    let mut idx = vec![0i64; if with_indices { g.planes * op } else { 0 }];
    // With indices, whole windows are walked so each maximum keeps its position.
    let plane = |p: usize, out: &mut [T], idx: &mut [i64]| {
        let src = &v[p * ip..(p + 1) * ip];
        let first_max = |best: (T, Option<usize>), t: usize| match best.1 {
            Some(_) if src[t] <= best.0 => best,
            _ => (src[t], Some(t)),
        };
        g.each_window((T::LOWEST, None), first_max, |o, best| {
            out[o] = best.0;
            if let Some(i) = idx.get_mut(o) {
                *i = (p * ip + best.1.unwrap_or(0)) as i64;
            }
        });
    };
    if with_indices {
        out.par_chunks_mut(op.max(1))
            .zip(idx.par_chunks_mut(op.max(1)))
            .enumerate()
            .for_each(|(p, (o, i))| plane(p, o, i));
    } else {
        let max = T::larger;
        let (halves, narrow) = (g.halves(), g.narrow_stride_one());
        out.par_chunks_mut(op.max(1))
            .enumerate()
            .for_each_init(Vec::new, |padded, (p, o)| {
                let src = &v[p * ip..(p + 1) * ip];
                isa.widest(
                    #[inline(always)]
                    || {
                        if halves {
                            max_of_squares(src, g.axes[2].extent, o, g.axes[2].runs.len())
                        } else if narrow {
                            max_of_padded(g, src, o, padded)
                        } else {
                            separable(g, src, o, T::LOWEST, max)
                        }
                    },
                )
            });
    }
    let mut result = vec![Tensor {
        shape: g.out_shape.clone(),
        data: T::wrap(out),
    }];
    if with_indices {
        result.push(Tensor::i64(g.out_shape.clone(), idx));
    }
    Ok(result)
}

fn average_pool_t<T: Real>(
    g: &Geometry,
    x: &Tensor,
    include_pad: bool,
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    let v = values::<T>(x, "input")?;
    let (ip, op) = (g.in_plane(), g.out_plane());
    // The divisor is a product of per-axis tap counts, like the window itself.
    let counts: Vec<Vec<usize>> = g
        .axes
        .iter()
        .map(|a| {
            a.runs
                .iter()
                .map(|r| if include_pad { r.padded } else { r.valid })
                .collect()
        })
        .collect();
    let mut scale = Vec::with_capacity(op);
    for &cd in &counts[0] {
        for &ch in &counts[1] {
            for &cw in &counts[2] {
                let n = cd as f64 * ch as f64 * cw as f64;
                scale.push(if n == 0.0 {
                    T::ZERO
                } else {
                    T::ONE / T::from_f64(n)
                });
            }
        }
    }
    let mut out = buffers::zeros_of(g.planes * op, T::ZERO);
    out.par_chunks_mut(op.max(1))
        .enumerate()
        .for_each(|(p, out)| {
            let src = &v[p * ip..(p + 1) * ip];
            isa.widest(
                #[inline(always)]
                || {
                    separable(g, src, out, T::ZERO, |a, e| a + e);
                    for (o, &k) in out.iter_mut().zip(&scale) {
                        *o = *o * k;
                    }
                },
            )
        });
    Ok(Tensor {
        shape: g.out_shape.clone(),
        data: T::wrap(out),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use temblor_ir::AutoPad;

    /// MaxPool and AveragePool (padding counted and not) by the ONNX definition, window by
    /// window in f64, against every instruction set's kernel, which must agree bit for bit.
    #[test]
    fn pooling_matches_the_definition_on_every_instruction_set() {
        let (c, h, w) = (3, 23, 30);
        let x: Vec<f32> = (0..c * h * w)
            .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0)
            .collect();
        let xt = Tensor::f32(vec![1, c, h, w], x.clone());
        // (kernel, strides, dilations, pads)
        let cases = [
            ([2, 2], [2, 2], [1, 1], [0, 0, 0, 0]),
            ([3, 3], [1, 1], [1, 1], [1, 1, 1, 1]),
            ([3, 5], [2, 3], [2, 1], [2, 0, 1, 3]),
            ([2, 1000], [1, 1], [1, 1], [0, 500, 1, 499]),
            // Strided rows split into phases: a dilated tap and a border on both sides.
            ([3, 3], [2, 2], [1, 2], [1, 1, 1, 1]),
            ([1, 4], [1, 3], [1, 1], [0, 2, 0, 2]),
            // Narrow rows at stride 1, in one padded copy: YOLO's SPPF (5x5, padding 2),
            // uneven padding, and a window past the input's end.
            ([5, 5], [1, 1], [1, 1], [2, 2, 2, 2]),
            ([3, 4], [1, 1], [1, 1], [0, 3, 2, 0]),
            ([4, 6], [1, 1], [1, 1], [1, 0, 0, 5]),
        ];
        for (kernel, strides, dilations, pads) in cases {
            for include_pad in [false, true] {
                let a = PoolAttrs {
                    kernel: kernel.to_vec(),
                    strides: strides.to_vec(),
                    dilations: dilations.to_vec(),
                    pads: pads.to_vec(),
                    auto_pad: AutoPad::NotSet,
                    ceil_mode: false,
                    count_include_pad: include_pad,
                };
                let oh =
                    (h + pads[0] + pads[2] - (kernel[0] - 1) * dilations[0] - 1) / strides[0] + 1;
                let ow =
                    (w + pads[1] + pads[3] - (kernel[1] - 1) * dilations[1] - 1) / strides[1] + 1;
                let mut first: Option<(Vec<f32>, Vec<f32>)> = None;
                for isa in Isa::available() {
                    let mx = max_pool(&a, &xt, false, isa).unwrap().remove(0);
                    let av = average_pool(&a, &xt, isa).unwrap();
                    assert_eq!(mx.shape, vec![1, c, oh, ow]);
                    let (mv, avv) = (mx.as_f32().unwrap(), av.as_f32().unwrap());
                    for ch in 0..c {
                        for y in 0..oh {
                            for xo in 0..ow {
                                let (mut m, mut sum, mut valid, mut padded) =
                                    (f32::MIN, 0.0f64, 0usize, 0usize);
                                for i in 0..kernel[0] {
                                    for j in 0..kernel[1] {
                                        let r = (y * strides[0] + i * dilations[0]) as isize
                                            - pads[0] as isize;
                                        let s = (xo * strides[1] + j * dilations[1]) as isize
                                            - pads[1] as isize;
                                        let in_pads = r < (h + pads[2]) as isize
                                            && s < (w + pads[3]) as isize;
                                        padded += usize::from(in_pads);
                                        if r >= 0 && s >= 0 && r < h as isize && s < w as isize {
                                            let e = x[(ch * h + r as usize) * w + s as usize];
                                            m = m.max(e);
                                            sum += f64::from(e);
                                            valid += 1;
                                        }
                                    }
                                }
                                let at = (ch * oh + y) * ow + xo;
                                assert_eq!(mv[at], m, "{isa}: max at {at} of {kernel:?}");
                                let n = if include_pad { padded } else { valid };
                                let want = sum / n as f64;
                                assert!(
                                    (f64::from(avv[at]) - want).abs() <= 1e-4,
                                    "{isa}: average at {at} of {kernel:?}: {} vs {want}",
                                    avv[at]
                                );
                            }
                        }
                    }
                    let got = (mv.to_vec(), avv.to_vec());
                    match &first {
                        None => first = Some(got),
                        Some(f) => assert!(
                            f.0 == got.0
                                && f.1
                                    .iter()
                                    .zip(&got.1)
                                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                            "{isa}: bits differ from the first instruction set for {kernel:?}"
                        ),
                    }
                }
            }
        }
    }
}
