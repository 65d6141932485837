//! Resize with ONNX semantics (opset 11 to 19, as the spec's reference implementation computes
//! it): nearest, linear and cubic over any axes, every coordinate transform (tf_crop_and_resize's
//! roi and extrapolation value included), antialiasing, `axes` and the aspect-ratio policies.
//! The roi, scales and sizes operands are read here, at run time, so a Resize whose sizes a model
//! computes from another value's shape runs at any input size; [`ResizeAttrs::plan`] turns them
//! into per-axis extents and scales, the same function shape inference uses.
//!
//! Linear and cubic are separable: one pass per resized axis, each output position a weighted sum
//! of a few input positions along that axis (its taps). Coordinates are computed in f32, as
//! onnxruntime does, so that nearest picks the same pixel at ties.

use super::buffers;
use super::cast;
use super::elementwise::build;
use super::isa::Isa;
use super::{dispatch, elements, f32s, strides, Element};
use crate::RuntimeError;
use crate::Tensor;
use temblor_ir::{ResizeAttrs, ResizeAxis, ResizeCoordinate, ResizeMode, ResizeNearest};

mod planes;
use planes::{planes, Columns};

/// A float operand's values; `None` when absent.
fn floats<'a>(t: Option<&'a Tensor>, what: &str) -> Result<Option<&'a [f32]>, RuntimeError> {
    t.map(|t| {
        t.as_f32().ok_or_else(|| {
            RuntimeError::bad_input(format!("{what} must be float32, got {}", t.dtype()))
        })
    })
    .transpose()
}

pub(crate) fn resize(
    a: &ResizeAttrs,
    x: &Tensor,
    [roi, scales, sizes]: [Option<&Tensor>; 3],
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    let sizes = sizes
        .map(|t| {
            t.as_i64().ok_or_else(|| {
                RuntimeError::bad_input(format!("sizes must be int64, got {}", t.dtype()))
            })
        })
        .transpose()?;
    let axes = a
        .plan(
            &x.shape,
            floats(roi, "roi")?,
            floats(scales, "scales")?,
            sizes,
        )
        .map_err(RuntimeError::bad_input)?;
    let shape: Vec<usize> = axes.iter().map(|ax| ax.output).collect();
    super::fill::within_limits(&shape, x.dtype())?;
    if shape.contains(&0) {
        return dispatch!(x.dtype(), T => Ok(Tensor { shape, data: T::wrap(Vec::new()) }));
    }
    if x.shape.contains(&0) {
        return Err(RuntimeError::bad_input(format!(
            "cannot resize the empty input {:?} to {shape:?}",
            x.shape
        )));
    }
    match a.mode {
        ResizeMode::Nearest => dispatch!(x.dtype(), T => nearest::<T>(a, x, &axes, shape)),
        ResizeMode::Linear | ResizeMode::Cubic => separable(a, x, &axes, isa),
    }
}

/// The input coordinate that output position `x` maps to, before rounding or clamping.
///
/// align_corners and tf_crop_and_resize divide by the output's extent as the scale gives it
/// (`scale * input`, fractional when scales are given), as the spec's reference does; for sizes
/// that is the output extent itself.
fn source(coordinate: ResizeCoordinate, x: usize, ax: &ResizeAxis) -> f32 {
    let x = x as f32;
    let (input, output) = (ax.input as f32, ax.output as f32);
    // f32 rounding of `scale * input` (sizes / input * input) must not move a coordinate that
    // the reference, in f64, computes from the whole extent.
    let scaled = match ax.scale * input {
        s if (s - output).abs() <= 1e-3 => output,
        s => s,
    };
    match coordinate {
        ResizeCoordinate::HalfPixel => (x + 0.5) / ax.scale - 0.5,
        ResizeCoordinate::HalfPixelSymmetric => {
            // The output's extent as the scale gives it, against the whole pixels it has.
            let adjustment = output / (ax.scale * input);
            let offset = input / 2.0 * (1.0 - adjustment);
            offset + (x + 0.5) / ax.scale - 0.5
        }
        ResizeCoordinate::PytorchHalfPixel if ax.output > 1 => (x + 0.5) / ax.scale - 0.5,
        ResizeCoordinate::PytorchHalfPixel => 0.0,
        ResizeCoordinate::AlignCorners if scaled == 1.0 => 0.0,
        ResizeCoordinate::AlignCorners => x * (input - 1.0) / (scaled - 1.0),
        ResizeCoordinate::Asymmetric => x / ax.scale,
        ResizeCoordinate::TfCropAndResize => {
            let (start, end) = ax.roi;
            if scaled != 1.0 {
                start * (input - 1.0) + x * (end - start) * (input - 1.0) / (scaled - 1.0)
            } else {
                0.5 * (start + end) * (input - 1.0)
            }
        }
    }
}

/// Whether coordinate `c` lies outside the input, where tf_crop_and_resize extrapolates.
fn outside(coordinate: ResizeCoordinate, c: f32, input: usize) -> bool {
    coordinate == ResizeCoordinate::TfCropAndResize && (c < 0.0 || c > (input - 1) as f32)
}

fn nearest_index(mode: ResizeNearest, c: f32, input: usize) -> usize {
    let r = match mode {
        ResizeNearest::RoundPreferFloor if c.fract() == 0.5 => c.floor(),
        ResizeNearest::RoundPreferCeil if c.fract() == 0.5 => c.ceil(),
        ResizeNearest::RoundPreferFloor | ResizeNearest::RoundPreferCeil => c.round(),
        ResizeNearest::Floor => c.floor(),
        ResizeNearest::Ceil => c.ceil(),
    };
    (r.max(0.0) as usize).min(input - 1)
}

fn nearest<T: Element + Send + Sync>(
    a: &ResizeAttrs,
    x: &Tensor,
    axes: &[ResizeAxis],
    shape: Vec<usize>,
) -> Result<Tensor, RuntimeError> {
    let v = elements::<T>(x, "input", x.dtype())?;
    // The extrapolation value in the input's element type.
    let fill = cast::cast(
        &Tensor::f32(vec![1], vec![a.extrapolation_value]),
        x.dtype(),
    )?;
    let fill = elements::<T>(&fill, "extrapolation value", x.dtype())?[0];
    let in_strides = strides(&x.shape);
    // Per axis, the input offset each output position reads (`None`: extrapolated).
    let offsets: Vec<Vec<Option<usize>>> = axes
        .iter()
        .zip(&in_strides)
        .map(|(ax, &st)| {
            (0..ax.output)
                .map(|o| {
                    let c = source(a.coordinate, o, ax);
                    (!outside(a.coordinate, c, ax.input))
                        .then(|| nearest_index(a.nearest, c, ax.input) * st)
                })
                .collect()
        })
        .collect();
    let Some((inner, outer)) = offsets.split_last() else {
        return Ok(Tensor {
            shape,
            data: T::wrap(vec![v[0]]),
        });
    };
    let total: usize = shape.iter().product();
    let width = inner.len();
    // An integer upsampling of the last axis: output `o` reads input `o / k`.
    let input_width = axes.last().map_or(0, |ax| ax.input);
    let repeat = (input_width > 0 && width % input_width == 0)
        .then(|| width / input_width)
        .filter(|&k| (0..width).all(|o| inner[o] == Some(o / k)));
    // The input offset of the start of output row `r` (an index over the outer axes).
    let row_base = |mut r: usize| {
        let mut base = Some(0);
        for axis in outer.iter().rev() {
            base = base.zip(axis[r % axis.len()]).map(|(b, o)| b + o);
            r /= axis.len();
        }
        base
    };
    let out = build(total, |range, sink| {
        let mut at = range.start;
        // The source of the last whole row this range wrote: an upsampled row repeats it, and
        // is copied rather than gathered again.
        let mut last_whole = None;
        while at < range.end {
            let (row, col) = (at / width, at % width);
            let end = range.end.min((row + 1) * width);
            let cols = &inner[col..col + end - at];
            let base = row_base(row);
            let whole = col == 0 && end == (row + 1) * width;
            if whole && last_whole == Some(base) {
                sink.repeat_last(width);
            } else if let (true, Some(base), Some(k)) = (whole, base, repeat) {
                sink.repeat_each(&v[base..base + input_width], k);
            } else {
                match base {
                    Some(base) => sink.extend(cols.iter().map(|o| o.map_or(fill, |o| v[base + o]))),
                    None => sink.extend(cols.iter().map(|_| fill)),
                }
            }
            last_whole = whole.then_some(base);
            at = end;
        }
    });
    Ok(Tensor {
        shape,
        data: T::wrap(out),
    })
}

/// Keys' cubic convolution kernel with coefficient `a`, at distance `x`.
fn cubic(a: f32, x: f32) -> f32 {
    let x = x.abs();
    let (x2, x3) = (x * x, x * x * x);
    if x <= 1.0 {
        (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
    } else if x < 2.0 {
        a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
    } else {
        0.0
    }
}

/// One axis of a linear or cubic resize: each output position reads `n` input positions.
struct Taps {
    n: usize,
    /// Per output position, `n` input positions (clamped to the input: edges repeat).
    index: Vec<usize>,
    weight: Vec<f32>,
    /// Per output position: extrapolated (tf_crop_and_resize outside the input).
    outside: Vec<bool>,
}

impl Taps {
    fn new(a: &ResizeAttrs, ax: &ResizeAxis) -> Taps {
        // Antialiasing stretches the filter by 1 / scale when downscaling, as the reference's
        // `_linear_coeffs_antialias` and `_cubic_coeffs_antialias` do; otherwise the filter has
        // its own support (2 taps linear, 4 cubic).
        let s = if a.antialias { ax.scale.min(1.0) } else { 1.0 };
        let (support, kernel): (f32, &dyn Fn(f32) -> f32) = match a.mode {
            ResizeMode::Cubic => (2.0, &|d| cubic(a.cubic_coeff_a, d)),
            _ => (1.0, &|d: f32| (1.0 - d.abs()).max(0.0)),
        };
        let first = (-support / s).floor() as i64 + 1;
        let n = (2 - 2 * first) as usize;
        let mut taps = Taps {
            n,
            index: Vec::with_capacity(ax.output * n),
            weight: Vec::with_capacity(ax.output * n),
            outside: Vec::with_capacity(ax.output),
        };
        let last = ax.input as i64 - 1;
        for o in 0..ax.output {
            let c = source(a.coordinate, o, ax);
            taps.outside.push(outside(a.coordinate, c, ax.input));
            let base = c.floor();
            let ratio = c - base;
            let base = base as i64;
            let at = taps.weight.len();
            for i in first..first + n as i64 {
                let p = base + i;
                let excluded = a.exclude_outside && !(0..=last).contains(&p);
                let w = if excluded {
                    0.0
                } else {
                    kernel((i as f32 - ratio) * s)
                };
                taps.index.push(p.clamp(0, last) as usize);
                taps.weight.push(w);
            }
            if a.antialias || a.exclude_outside {
                let sum: f32 = taps.weight[at..].iter().sum();
                if sum != 0.0 {
                    taps.weight[at..].iter_mut().for_each(|w| *w /= sum);
                }
            }
        }
        taps
    }

    /// Whether every output position reads its own input position alone: the axis is kept.
    fn identity(&self) -> bool {
        self.outside.iter().all(|&o| !o)
            && (0..self.outside.len()).all(|o| {
                let (idx, w) = (
                    &self.index[o * self.n..(o + 1) * self.n],
                    &self.weight[o * self.n..(o + 1) * self.n],
                );
                idx.iter()
                    .zip(w)
                    .all(|(&i, &w)| w == 0.0 || (i == o && w == 1.0))
            })
    }
}

/// Linear or cubic: one pass per axis whose taps are not the identity, innermost first, or
/// [`planes`] when the last two axes are resized and no other is.
fn separable(
    a: &ResizeAttrs,
    x: &Tensor,
    axes: &[ResizeAxis],
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    if let [rest @ .., rows, cols] = axes {
        let kept = |ax: &ResizeAxis| ax.input == ax.output && Taps::new(a, ax).identity();
        let (row_taps, col_taps) = (Taps::new(a, rows), Taps::new(a, cols));
        let inside = |t: &Taps| !t.outside.contains(&true);
        let indexable = i32::try_from(cols.input).is_ok();
        // Both resized: a kept axis's taps include zero weights, which the pass per axis skips
        // with the axis (zero times an infinite input is NaN).
        let both = !kept(rows) && !kept(cols);
        if rest.iter().all(kept) && both && inside(&row_taps) && inside(&col_taps) && indexable {
            let v = planes(
                f32s(x, "input")?,
                (&row_taps, &Columns::new(&col_taps, cols.output)),
                [rows.input, cols.input, rows.output, cols.output],
                isa,
            );
            let mut shape = x.shape.clone();
            let k = shape.len();
            (shape[k - 2], shape[k - 1]) = (rows.output, cols.output);
            return Ok(Tensor::f32(shape, v));
        }
    }
    let mut shape = x.shape.clone();
    let mut values: Option<Vec<f32>> = None;
    for (k, ax) in axes.iter().enumerate().rev() {
        let taps = Taps::new(a, ax);
        if ax.input == ax.output && taps.identity() {
            continue;
        }
        let v = match &values {
            Some(v) => v.as_slice(),
            None => f32s(x, "input")?,
        };
        let inner: usize = shape[k + 1..].iter().product();
        let out = pass(v, &taps, ax, inner, a.extrapolation_value);
        shape[k] = ax.output;
        // The pass before is done with: its buffer goes back to the run's pool, which would
        // otherwise allocate (and fault in) U^2-Net's 13 MB intermediates on every run.
        if let Some(done) = values.replace(out) {
            buffers::give_back(done);
        }
    }
    let values = match values {
        Some(v) => v,
        None => f32s(x, "input")?.to_vec(),
    };
    Ok(Tensor::f32(shape, values))
}

/// Resizes the middle axis of `v` seen as `[outer, input, inner]` to `[outer, output, inner]`.
///
/// Worked a run of outputs at a time, never an element: an output row (`inner > 1`) is the
/// taps' weighted sum of whole input rows, which vectorizes; along the last axis each output
/// reads its taps. Deriving each element's position by division took U^2-Net's 38 bilinear
/// upsamplings to 18% of its time. Every output is still `0 + w0 * x0 + w1 * x1 + ...` in tap
/// order, as before.
fn pass(v: &[f32], taps: &Taps, ax: &ResizeAxis, inner: usize, fill: f32) -> Vec<f32> {
    let outer = v.len() / (ax.input * inner);
    let n = taps.n;
    build(outer * ax.output * inner, |range, sink| {
        let mut run = Vec::new();
        let mut e = range.start;
        while e < range.end {
            if inner == 1 {
                // Outputs j0.. of one plane along the last axis.
                let (plane, j0) = (e / ax.output, e % ax.output);
                let len = (ax.output - j0).min(range.end - e);
                let src = &v[plane * ax.input..(plane + 1) * ax.input];
                sink.extend((j0..j0 + len).map(|j| {
                    if taps.outside[j] {
                        return fill;
                    }
                    let (idx, w) = (
                        &taps.index[j * n..(j + 1) * n],
                        &taps.weight[j * n..(j + 1) * n],
                    );
                    idx.iter()
                        .zip(w)
                        .fold(0.0, |acc, (&p, &w)| acc + w * src[p])
                }));
                e += len;
                continue;
            }
            // Elements i0.. of output row j of one plane.
            let (row, i0) = (e / inner, e % inner);
            let (plane, j) = (row / ax.output, row % ax.output);
            let len = (inner - i0).min(range.end - e);
            if taps.outside[j] {
                sink.extend(std::iter::repeat_n(fill, len));
            } else {
                run.clear();
                run.resize(len, 0.0);
                let (idx, w) = (
                    &taps.index[j * n..(j + 1) * n],
                    &taps.weight[j * n..(j + 1) * n],
                );
                for (&p, &w) in idx.iter().zip(w) {
                    let start = (plane * ax.input + p) * inner + i0;
                    for (acc, &x) in run.iter_mut().zip(&v[start..start + len]) {
                        *acc += w * x;
                    }
                }
                sink.extend(run.iter().copied());
            }
            e += len;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2x nearest upsampling large enough to be written in parallel chunks that cut rows:
    /// rows copied from the row above and rows gathered agree with the definition everywhere.
    #[test]
    fn nearest_upsampling_copies_repeated_rows_exactly() {
        let (c, h, w) = (4, 60, 90);
        let x = Tensor::f32(
            vec![1, c, h, w],
            (0..c * h * w).map(|i| i as f32 * 0.5 - 7.0).collect(),
        );
        let a = ResizeAttrs::new(
            ResizeMode::Nearest,
            ResizeCoordinate::HalfPixel,
            ResizeNearest::RoundPreferFloor,
        );
        let scales = Tensor::f32(vec![4], vec![1.0, 1.0, 2.0, 2.0]);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let y = pool
            .install(|| resize(&a, &x, [None, Some(&scales), None], Isa::detect()))
            .unwrap();
        assert_eq!(y.shape, vec![1, c, 2 * h, 2 * w]);
        let (xv, yv) = (x.as_f32().unwrap(), y.as_f32().unwrap());
        for ch in 0..c {
            for r in 0..2 * h {
                for col in 0..2 * w {
                    let want = xv[(ch * h + r / 2) * w + col / 2];
                    let got = yv[(ch * 2 * h + r) * 2 * w + col];
                    assert_eq!(got, want, "channel {ch}, row {r}, column {col}");
                }
            }
        }
    }
}
