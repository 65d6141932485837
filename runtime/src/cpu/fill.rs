//! Ops that create or replicate elements: Expand, Tile, Pad, ConstantOfShape and Range, for
//! every dtype.

use super::args::Args;
use super::buffers;
use super::number::Number;
use super::shape_ops::{distinct_axes, int_list};
use super::{dispatch, elements, strided, strides, Element};
use crate::{RuntimeError, Tensor};
use temblor_ir::{DType, PadMode, Scalar};

/// Non-negative extents from a shape operand.
fn extents(t: &Tensor) -> Result<Vec<usize>, RuntimeError> {
    let v = int_list(t, "shape")?;
    v.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                RuntimeError::bad_input(format!("shape {v:?} holds the negative extent {d}"))
            })
        })
        .collect()
}

/// Refuses an output of `shape` above the process's value limit, before it is allocated: the
/// extents of these ops come from data, which shape inference may not have seen.
pub(crate) fn within_limits(shape: &[usize], dtype: DType) -> Result<(), RuntimeError> {
    temblor_ir::limits::Limits::get()
        .check_value(shape, dtype.size_bytes())
        .map_err(RuntimeError::bad_input)
}

/// [`within_limits`] for `n` elements of `T`.
fn elements_within_limits<T>(n: usize) -> Result<(), RuntimeError> {
    temblor_ir::limits::Limits::get()
        .check_value(&[n], std::mem::size_of::<T>())
        .map_err(RuntimeError::bad_input)
}

/// Bidirectional broadcast of `x` to the target shape: each aligned pair must be equal or
/// hold a 1.
pub(crate) fn expand(x: &Tensor, target: &Tensor) -> Result<Tensor, RuntimeError> {
    let target = extents(target)?;
    let rank = x.shape.len().max(target.len());
    let (xpad, tpad) = (rank - x.shape.len(), rank - target.len());
    let xs = strides(&x.shape);
    let mut shape = Vec::with_capacity(rank);
    let mut walk = Vec::with_capacity(rank);
    for i in 0..rank {
        let (d, stride) = match i.checked_sub(xpad) {
            Some(j) => (x.shape[j], xs[j] as isize),
            None => (1, 0),
        };
        let t = i.checked_sub(tpad).map_or(1, |j| target[j]);
        let n = match (d, t) {
            (d, t) if d == t || t == 1 => d,
            (1, t) => t,
            _ => {
                return Err(RuntimeError::bad_input(format!(
                    "shape {:?} does not expand to {target:?}",
                    x.shape
                )))
            }
        };
        shape.push(n);
        walk.push((n, if d == 1 { 0 } else { stride }));
    }
    within_limits(&shape, x.dtype())?;
    dispatch!(x.dtype(), T => {
        let v = elements::<T>(x, "input", x.dtype())?;
        Ok(Tensor { shape, data: T::wrap(strided::copy(v, 0, &walk)) })
    })
}

/// Each axis repeated: a walk over (repeat, extent) pairs whose repeat axes have stride 0.
pub(crate) fn tile(x: &Tensor, repeats: &Tensor) -> Result<Tensor, RuntimeError> {
    let repeats = extents(repeats)?;
    if repeats.len() != x.shape.len() {
        return Err(RuntimeError::bad_input(format!(
            "{} repeats for shape {:?}",
            repeats.len(),
            x.shape
        )));
    }
    let shape: Vec<usize> = x
        .shape
        .iter()
        .zip(&repeats)
        .map(|(d, r)| d.checked_mul(*r).unwrap_or(usize::MAX))
        .collect();
    within_limits(&shape, x.dtype())?;
    let xs = strides(&x.shape);
    let walk: Vec<strided::Axis> = (0..repeats.len())
        .flat_map(|i| [(repeats[i], 0), (x.shape[i], xs[i] as isize)])
        .collect();
    dispatch!(x.dtype(), T => {
        let v = elements::<T>(x, "input", x.dtype())?;
        Ok(Tensor { shape, data: T::wrap(strided::copy(v, 0, &walk)) })
    })
}

/// Where each output position of one axis reads from: an input index, or the constant.
/// Negative pads crop first and the positive ones then pad what is left, as onnxruntime does,
/// so edge, reflect and wrap read the kept part only.
fn source_map(mode: PadMode, n: usize, begin: i64, end: i64, out: usize) -> Vec<Option<usize>> {
    let lo = begin.saturating_neg().max(0);
    let kept = (n as i64)
        .saturating_sub(lo)
        .saturating_sub(end.saturating_neg().max(0));
    let before = begin.max(0);
    (0..out as i64)
        .map(|o| {
            let i = o - before;
            let j = if (0..kept).contains(&i) {
                i
            } else {
                match mode {
                    PadMode::Constant => return None,
                    PadMode::Edge => i.clamp(0, kept - 1),
                    PadMode::Wrap => i.rem_euclid(kept),
                    PadMode::Reflect if kept == 1 => 0,
                    PadMode::Reflect => {
                        let j = i.rem_euclid(2 * (kept - 1));
                        if j < kept {
                            j
                        } else {
                            2 * (kept - 1) - j
                        }
                    }
                }
            };
            Some((lo + j) as usize)
        })
        .collect()
}

/// A row of the innermost axis as runs: copy `len` inputs from `start`, or fill `len`.
enum Run {
    Copy(usize, usize),
    Fill(usize),
}

fn runs(map: &[Option<usize>]) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    for m in map {
        match (out.last_mut(), m) {
            (Some(Run::Copy(s, len)), Some(i)) if *s + *len == *i => *len += 1,
            (Some(Run::Fill(len)), None) => *len += 1,
            (_, Some(i)) => out.push(Run::Copy(*i, 1)),
            (_, None) => out.push(Run::Fill(1)),
        }
    }
    out
}

/// Pads (begins then ends, for the axes given or all) may be negative, which crops.
pub(crate) fn pad(x: &Tensor, args: &Args, mode: PadMode) -> Result<Tensor, RuntimeError> {
    let r = x.shape.len();
    let axes = match args.optional(3) {
        Some(t) => distinct_axes(&int_list(t, "axes")?, r)?,
        None => (0..r).collect(),
    };
    let pads = int_list(args.required(1)?, "pads")?;
    if pads.len() != 2 * axes.len() {
        return Err(RuntimeError::bad_input(format!(
            "{} pads for {} axes",
            pads.len(),
            axes.len()
        )));
    }
    let (mut begin, mut end) = (vec![0i64; r], vec![0i64; r]);
    for (i, &a) in axes.iter().enumerate() {
        begin[a] = pads[i];
        end[a] = pads[i + axes.len()];
    }
    let mut shape = Vec::with_capacity(r);
    for a in 0..r {
        let n = (x.shape[a] as i64)
            .checked_add(begin[a])
            .and_then(|n| n.checked_add(end[a]))
            .unwrap_or(-1);
        let n = usize::try_from(n).map_err(|_| {
            RuntimeError::bad_input(format!(
                "pads {pads:?} remove more than shape {:?} holds, or overflow",
                x.shape
            ))
        })?;
        let kept = (x.shape[a] as i64)
            .saturating_sub(begin[a].saturating_neg().max(0))
            .saturating_sub(end[a].saturating_neg().max(0));
        if n > 0 && kept <= 0 && mode != PadMode::Constant {
            return Err(RuntimeError::bad_input(format!(
                "{mode:?} padding has nothing left to read on axis {a} after pads {pads:?}"
            )));
        }
        shape.push(n);
    }
    within_limits(&shape, x.dtype())?;
    let mut maps: Vec<Vec<Option<usize>>> = (0..r)
        .map(|a| source_map(mode, x.shape[a], begin[a], end[a], shape[a]))
        .collect();
    // Unpadded trailing axes join the axis before them, so rows are longer: an NHWC
    // image's pad ran row by row over its 3 channels (0.5 ms for 224x224x3). The joined axis's
    // map has an entry per element of its rows, so it stays small.
    const JOINED: usize = 1 << 16;
    let (mut in_dims, mut out_dims) = (x.shape.clone(), shape.clone());
    while let [.., before, last] = &maps[..] {
        let a = maps.len() - 1;
        if begin[a] != 0 || end[a] != 0 || before.len() * last.len() > JOINED {
            break;
        }
        let w = in_dims.pop().unwrap_or(1);
        out_dims.pop();
        maps.pop();
        if let (Some(map), Some(i), Some(o)) =
            (maps.last_mut(), in_dims.last_mut(), out_dims.last_mut())
        {
            *map = map
                .iter()
                .flat_map(|m| (0..w).map(move |j| m.map(|i| i * w + j)))
                .collect();
            *i *= w;
            *o *= w;
        }
    }
    dispatch!(x.dtype(), T => {
        let v = elements::<T>(x, "input", x.dtype())?;
        let fill = match args.optional(2) {
            Some(c) => scalar_as::<T>(c)?,
            None => T::default(),
        };
        Ok(Tensor { data: T::wrap(pad_values(v, &in_dims, &out_dims, &maps, fill)), shape })
    })
}

fn pad_values<T: Element>(
    v: &[T],
    in_shape: &[usize],
    shape: &[usize],
    maps: &[Vec<Option<usize>>],
    fill: T,
) -> Vec<T> {
    let total: usize = shape.iter().product();
    let mut out = buffers::empty(total);
    let Some((&width, outer)) = shape.split_last() else {
        out.extend_from_slice(v);
        return out;
    };
    if total == 0 {
        return out;
    }
    let in_strides = strides(in_shape);
    let row_runs = runs(&maps[outer.len()]);
    let rows: usize = outer.iter().product();
    for row in 0..rows {
        let mut rest = row;
        let mut base = Some(0);
        for a in (0..outer.len()).rev() {
            let o = rest % outer[a];
            rest /= outer[a];
            base = base.zip(maps[a][o]).map(|(b, i)| b + i * in_strides[a]);
        }
        match base {
            None => out.extend(std::iter::repeat_n(fill, width)),
            Some(b) => {
                for run in &row_runs {
                    match *run {
                        Run::Copy(s, len) => out.extend_from_slice(&v[b + s..b + s + len]),
                        Run::Fill(len) => out.extend(std::iter::repeat_n(fill, len)),
                    }
                }
            }
        }
    }
    out
}

/// The first element of `t` as a `T` (Pad's constant; an empty tensor means 0).
fn scalar_as<T: Number>(t: &Tensor) -> Result<T, RuntimeError> {
    if let Some(v) = T::slice(&t.data) {
        return Ok(v.first().copied().unwrap_or_default());
    }
    dispatch!(t.dtype(), S => {
        let v = elements::<S>(t, "constant value", t.dtype())?;
        Ok(v.first().map_or_else(T::default, |s| T::from_f64(s.to_f64())))
    })
}

pub(crate) fn constant_of_shape(shape: &Tensor, value: Scalar) -> Result<Tensor, RuntimeError> {
    let shape = extents(shape)?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| {
            RuntimeError::bad_input(format!("shape {shape:?} holds too many elements"))
        })?;
    within_limits(&shape, value.dtype)?;
    dispatch!(value.dtype, T => {
        Ok(Tensor { shape, data: T::wrap(vec![T::from_f64(value.value); count]) })
    })
}

/// `start, start + delta, ...` up to but excluding `limit`.
pub(crate) fn range(
    start: &Tensor,
    limit: &Tensor,
    delta: &Tensor,
) -> Result<Tensor, RuntimeError> {
    let dtype = start.dtype();
    if dtype == DType::Bool || limit.dtype() != dtype || delta.dtype() != dtype {
        return Err(RuntimeError::bad_input(format!(
            "Range needs three numbers of one dtype, got {}, {} and {}",
            dtype,
            limit.dtype(),
            delta.dtype()
        )));
    }
    dispatch!(dtype, T => {
        let one = |t: &Tensor, what: &str| -> Result<T, RuntimeError> {
            match elements::<T>(t, what, dtype)? {
                [v] => Ok(*v),
                v => Err(RuntimeError::bad_input(format!(
                    "{what} holds {} elements, expected a scalar",
                    v.len()
                ))),
            }
        };
        let values = range_values(one(start, "start")?, one(limit, "limit")?, one(delta, "delta")?)?;
        Ok(Tensor { shape: vec![values.len()], data: T::wrap(values) })
    })
}

/// Floats count and step in f64; integers exactly, in i128.
fn range_values<T: Number>(start: T, limit: T, delta: T) -> Result<Vec<T>, RuntimeError> {
    let zero = || RuntimeError::bad_input("Range's delta is 0");
    if T::FLOAT {
        let (s, l, d) = (start.to_f64(), limit.to_f64(), delta.to_f64());
        if d == 0.0 {
            return Err(zero());
        }
        let n = ((l - s) / d).ceil().max(0.0);
        if !n.is_finite() {
            return Err(RuntimeError::bad_input(format!(
                "Range from {s} to {l} by {d} has no finite length"
            )));
        }
        let n = n as usize;
        elements_within_limits::<T>(n)?;
        return Ok((0..n).map(|i| T::from_f64(s + i as f64 * d)).collect());
    }
    let (s, l, d) = (
        start.to_i64() as i128,
        limit.to_i64() as i128,
        delta.to_i64() as i128,
    );
    if d == 0 {
        return Err(zero());
    }
    let span = l - s;
    let n = if (span > 0) == (d > 0) && span != 0 {
        (span.abs() + d.abs() - 1) / d.abs()
    } else {
        0
    };
    elements_within_limits::<T>(usize::try_from(n).unwrap_or(usize::MAX))?;
    Ok((0..n).map(|i| T::from_i64((s + i * d) as i64)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::isa::Isa;

    /// Pads of the middle axes of `[2, 3, 4, 5]`, whose unpadded last axis joins the one
    /// before it, and of the last axis too, in every mode, against each output element's
    /// source as the ONNX spec defines it (numpy's `pad`).
    #[test]
    fn pads_match_the_definition_in_every_mode() {
        let dims = [2usize, 3, 4, 5];
        let x: Vec<f32> = (0..120).map(|i| i as f32).collect();
        let input = Tensor::f32(dims.to_vec(), x.clone());
        for pads in [
            [0i64, 1, 2, 0, 0, 2, 1, 0],
            [0, 0, 1, 0, 0, 0, 3, 0],
            [0, 1, 0, 2, 0, 1, 2, 1],
        ] {
            for mode in [
                PadMode::Constant,
                PadMode::Edge,
                PadMode::Reflect,
                PadMode::Wrap,
            ] {
                let amounts = Tensor::i64(vec![8], pads.to_vec());
                let fill = Tensor::f32(vec![], vec![-1.0]);
                let ins = [Some(&input), Some(&amounts), Some(&fill)];
                let args = Args {
                    ins: &ins,
                    outputs: 1,
                    isa: Isa::detect(),
                    lowered: None,
                    bytes: None,
                };
                let got = pad(&input, &args, mode).expect("a pad");
                let out: Vec<usize> = (0..4)
                    .map(|a| dims[a] + (pads[a] + pads[a + 4]) as usize)
                    .collect();
                assert_eq!(got.shape, out);
                let got = got.as_f32().expect("f32");
                // The source index along one axis, or `None` for the fill.
                let source = |a: usize, o: usize| -> Option<usize> {
                    let (n, i) = (dims[a] as i64, o as i64 - pads[a]);
                    if (0..n).contains(&i) {
                        return Some(i as usize);
                    }
                    let j = match mode {
                        PadMode::Constant => return None,
                        PadMode::Edge => i.clamp(0, n - 1),
                        PadMode::Wrap => i.rem_euclid(n),
                        PadMode::Reflect => {
                            let j = i.rem_euclid(2 * (n - 1));
                            j.min(2 * (n - 1) - j)
                        }
                    };
                    Some(j as usize)
                };
                let mut at = 0;
                for a in 0..out[0] {
                    for b in 0..out[1] {
                        for c in 0..out[2] {
                            for d in 0..out[3] {
                                let idx = [source(0, a), source(1, b), source(2, c), source(3, d)];
                                let want = match idx {
                                    [Some(a), Some(b), Some(c), Some(d)] => {
                                        x[((a * 3 + b) * 4 + c) * 5 + d]
                                    }
                                    _ => -1.0,
                                };
                                assert_eq!(got[at], want, "{mode:?} {pads:?} at {a},{b},{c},{d}");
                                at += 1;
                            }
                        }
                    }
                }
            }
        }
    }
}
