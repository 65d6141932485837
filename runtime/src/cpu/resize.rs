//! Resize with ONNX semantics (opset 11+, as onnxruntime computes it): nearest over any axes
//! with every coordinate transform and rounding mode; linear over the last two axes, the others
//! kept as they are. With `scales` the output extent is `floor(in * scale)` and the coordinate
//! transform divides by the given scale; with `sizes` the scale is `out / in`. Coordinates are
//! computed in f32, as onnxruntime does, so that nearest picks the same pixel at ties.

use super::elementwise::build;
use super::{dispatch, elements, f32s, strides, Element};
use crate::RuntimeError;
use crate::Tensor;
use temblor_ir::{ResizeAttrs, ResizeCoordinate, ResizeMode, ResizeNearest};

/// Per axis: input extent, output extent, scale used by the coordinate transform.
struct Axis {
    input: usize,
    output: usize,
    scale: f32,
}

fn axes(a: &ResizeAttrs, shape: &[usize]) -> Result<Vec<Axis>, RuntimeError> {
    let count = |n: usize| {
        if n == shape.len() {
            Ok(())
        } else {
            Err(RuntimeError::bad_input(format!(
                "{n} scales or sizes given for an input of rank {}",
                shape.len()
            )))
        }
    };
    match (&a.scales, &a.sizes) {
        (Some(scales), None) => {
            count(scales.len())?;
            shape
                .iter()
                .zip(scales)
                .map(|(&input, &scale)| {
                    if !(scale > 0.0 && scale.is_finite()) {
                        return Err(RuntimeError::bad_input(format!(
                            "scale {scale} is not a positive number"
                        )));
                    }
                    let output = (input as f32 * scale).floor() as usize;
                    Ok(Axis {
                        input,
                        output,
                        scale,
                    })
                })
                .collect()
        }
        (None, Some(sizes)) => {
            count(sizes.len())?;
            Ok(shape
                .iter()
                .zip(sizes)
                .map(|(&input, &output)| Axis {
                    input,
                    output,
                    scale: output as f32 / input as f32,
                })
                .collect())
        }
        _ => Err(RuntimeError::bad_input(
            "exactly one of scales and sizes must be given",
        )),
    }
}

/// The input coordinate that output position `x` maps to, before rounding or clamping.
fn source(coordinate: ResizeCoordinate, x: usize, ax: &Axis) -> f32 {
    let x = x as f32;
    match coordinate {
        ResizeCoordinate::HalfPixel => (x + 0.5) / ax.scale - 0.5,
        ResizeCoordinate::PytorchHalfPixel if ax.output > 1 => (x + 0.5) / ax.scale - 0.5,
        ResizeCoordinate::PytorchHalfPixel => 0.0,
        ResizeCoordinate::AlignCorners if ax.output == 1 => 0.0,
        ResizeCoordinate::AlignCorners => x * (ax.input as f32 - 1.0) / (ax.output as f32 - 1.0),
        ResizeCoordinate::Asymmetric => x / ax.scale,
    }
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

pub(crate) fn resize(a: &ResizeAttrs, x: &Tensor) -> Result<Tensor, RuntimeError> {
    let axes = axes(a, &x.shape)?;
    let shape: Vec<usize> = axes.iter().map(|ax| ax.output).collect();
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
        ResizeMode::Linear => linear(a.coordinate, x, &axes, shape),
    }
}

fn nearest<T: Element + Send + Sync>(
    a: &ResizeAttrs,
    x: &Tensor,
    axes: &[Axis],
    shape: Vec<usize>,
) -> Result<Tensor, RuntimeError> {
    let v = elements::<T>(x, "input", x.dtype())?;
    let in_strides = strides(&x.shape);
    // Per axis, the input offset each output position reads.
    let offsets: Vec<Vec<usize>> = axes
        .iter()
        .zip(&in_strides)
        .map(|(ax, &st)| {
            (0..ax.output)
                .map(|o| nearest_index(a.nearest, source(a.coordinate, o, ax), ax.input) * st)
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
    // The input offset of the start of output row `r` (an index over the outer axes).
    let row_base = |mut r: usize| {
        let mut base = 0;
        for axis in outer.iter().rev() {
            base += axis[r % axis.len()];
            r /= axis.len();
        }
        base
    };
    let out = build(total, |range, sink| {
        let mut at = range.start;
        while at < range.end {
            let (row, col) = (at / width, at % width);
            let end = range.end.min((row + 1) * width);
            let base = row_base(row);
            sink.extend(inner[col..col + end - at].iter().map(|&o| v[base + o]));
            at = end;
        }
    });
    Ok(Tensor {
        shape,
        data: T::wrap(out),
    })
}

/// For each output position: the two input positions it lies between and their weights.
fn taps(coordinate: ResizeCoordinate, ax: &Axis) -> Vec<(usize, usize, f32, f32)> {
    (0..ax.output)
        .map(|o| {
            let c = source(coordinate, o, ax).clamp(0.0, (ax.input - 1) as f32);
            let i0 = (c as usize).min(ax.input - 1);
            let i1 = (i0 + 1).min(ax.input - 1);
            let w1 = c - i0 as f32;
            (i0, i1, 1.0 - w1, w1)
        })
        .collect()
}

fn linear(
    coordinate: ResizeCoordinate,
    x: &Tensor,
    axes: &[Axis],
    shape: Vec<usize>,
) -> Result<Tensor, RuntimeError> {
    let v = f32s(x, "input")?;
    let r = axes.len();
    let lead = r.saturating_sub(2);
    if let Some(ax) = axes[..lead]
        .iter()
        .find(|ax| ax.output != ax.input || (ax.scale != 1.0 && ax.input != 1))
    {
        return Err(RuntimeError::unsupported(format!(
            "linear resize of a leading axis ({} to {} by scale {}); only the last two axes \
             can be interpolated",
            ax.input, ax.output, ax.scale
        )));
    }
    let unit = Axis {
        input: 1,
        output: 1,
        scale: 1.0,
    };
    let (ah, aw) = match r {
        0 => (&unit, &unit),
        1 => (&unit, &axes[0]),
        _ => (&axes[r - 2], &axes[r - 1]),
    };
    let (ty, tx) = (taps(coordinate, ah), taps(coordinate, aw));
    let (in_plane, out_plane) = (ah.input * aw.input, ah.output * aw.output);
    let planes = v.len() / in_plane;
    let width = aw.output;
    // Output rows in parallel chunks: row `row` is row `row % oh` of plane `row / oh`.
    let out = build(planes * out_plane, |range, sink| {
        let mut at = range.start;
        while at < range.end {
            let (row, col) = (at / width, at % width);
            let end = range.end.min((row + 1) * width);
            let (p, (y0, y1, wy0, wy1)) = (row / ah.output, ty[row % ah.output]);
            let src = &v[p * in_plane..(p + 1) * in_plane];
            let (r0, r1) = (&src[y0 * aw.input..], &src[y1 * aw.input..]);
            sink.extend(tx[col..col + end - at].iter().map(|&(x0, x1, wx0, wx1)| {
                wy0 * (wx0 * r0[x0] + wx1 * r0[x1]) + wy1 * (wx0 * r1[x0] + wx1 * r1[x1])
            }));
            at = end;
        }
    });
    Ok(Tensor::f32(shape, out))
}
