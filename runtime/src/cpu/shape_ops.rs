//! Ops that only move elements: Concat, Reshape, Transpose, Split, Flatten, Squeeze,
//! Unsqueeze, and the shape readers Shape and Size, for every dtype. The family's other ops are
//! in [`super::indexing`] and [`super::fill`].

use super::elementwise::build;
use super::int8_gemm::Quantizer;
use super::isa::Isa;
use super::{buffers, dispatch, elements, normalize_axis, quant, strided, strides, Element};
use crate::{RuntimeError, Tensor, TensorData};
use rayon::prelude::*;
use std::ops::Range;
use temblor_ir::{Op, SplitSizes};

/// The values of an integer operand (shape, axes, pads, indices), widened to i64.
pub(crate) fn int_values(t: &Tensor, what: &str) -> Result<Vec<i64>, RuntimeError> {
    match &t.data {
        TensorData::I64(v) => Ok(v.clone()),
        TensorData::I32(v) => Ok(v.iter().map(|&d| d as i64).collect()),
        _ => Err(RuntimeError::bad_input(format!(
            "the {what} input is {}, expected int64 or int32",
            t.dtype()
        ))),
    }
}

/// A 1-D integer operand; a scalar counts as one entry.
pub(crate) fn int_list(t: &Tensor, what: &str) -> Result<Vec<i64>, RuntimeError> {
    if t.shape.len() > 1 {
        return Err(RuntimeError::bad_input(format!(
            "the {what} input must be 1-D, got shape {:?}",
            t.shape
        )));
    }
    int_values(t, what)
}

/// Normalized, distinct axes below `rank`.
pub(crate) fn distinct_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, RuntimeError> {
    let mut seen = vec![false; rank];
    axes.iter()
        .map(|&a| {
            let ax = normalize_axis(a, rank)?;
            if std::mem::replace(&mut seen[ax], true) {
                return Err(RuntimeError::bad_input(format!(
                    "axis {a} is given twice in {axes:?}"
                )));
            }
            Ok(ax)
        })
        .collect()
}

pub(crate) fn concat(inputs: &[&Tensor], axis: i64) -> Result<Tensor, RuntimeError> {
    let (shape, axis) = concat_shape(inputs, axis)?;
    let first = inputs[0];
    let outer: usize = shape[..axis].iter().product();
    dispatch!(first.dtype(), T => {
        let parts = inputs
            .iter()
            .map(|t| elements::<T>(t, "input", first.dtype()))
            .collect::<Result<Vec<_>, _>>()?;
        let chunks = part_chunks(inputs, axis);
        let out = build(outer * chunks.iter().sum::<usize>(), |range, sink| {
            each_piece(range, &chunks, |part, slice, offset, len| {
                let at = slice * chunks[part] + offset;
                sink.extend(parts[part][at..at + len].iter().copied())
            })
        });
        Ok(Tensor { shape, data: T::wrap(out) })
    })
}

/// [`concat`] of f32 `inputs` quantized by `q` as they are copied: the input of int8 layers
/// that would otherwise quantize the f32 concatenation in a pass of their own (the plan's
/// `bytes_between_layers`). `None` when an input is not f32.
pub(crate) fn concat_bytes(
    inputs: &[&Tensor],
    axis: i64,
    q: Quantizer,
    isa: Isa,
) -> Result<Option<Tensor>, RuntimeError> {
    let Some(parts) = inputs
        .iter()
        .map(|t| t.as_f32())
        .collect::<Option<Vec<_>>>()
    else {
        return Ok(None);
    };
    let (shape, axis) = concat_shape(inputs, axis)?;
    let chunks = part_chunks(inputs, axis);
    let total = shape.iter().product();
    let mut out = buffers::reuse_typed::<u8>(total);
    let chunk = total
        .div_ceil(4 * rayon::current_num_threads())
        .max(1 << 14);
    out.par_chunks_mut(chunk).enumerate().for_each(|(i, buf)| {
        let start = i * chunk;
        let mut written = 0;
        each_piece(
            start..start + buf.len(),
            &chunks,
            |part, slice, offset, len| {
                let at = slice * chunks[part] + offset;
                quant::bytes_of_row(
                    isa,
                    q,
                    &parts[part][at..at + len],
                    &mut buf[written..written + len],
                );
                written += len;
            },
        );
    });
    Ok(Some(Tensor {
        shape,
        data: TensorData::U8(out),
    }))
}

/// The shape of the concatenation of `inputs` on `axis`, and the axis normalized.
fn concat_shape(inputs: &[&Tensor], axis: i64) -> Result<(Vec<usize>, usize), RuntimeError> {
    let Some(first) = inputs.first() else {
        return Err(RuntimeError::internal("Concat has no inputs"));
    };
    let axis = normalize_axis(axis, first.shape.len())?;
    let mut shape = first.shape.clone();
    shape[axis] = 0;
    for t in inputs {
        let fits = t.dtype() == first.dtype()
            && t.shape.len() == shape.len()
            && (0..shape.len()).all(|i| i == axis || t.shape[i] == shape[i]);
        if !fits {
            return Err(RuntimeError::bad_input(format!(
                "cannot concatenate {} {:?} with {} {:?} on axis {axis}",
                t.dtype(),
                t.shape,
                first.dtype(),
                first.shape
            )));
        }
        shape[axis] += t.shape[axis];
    }
    Ok((shape, axis))
}

/// The elements each input adds to one slice of the output before `axis`.
fn part_chunks(inputs: &[&Tensor], axis: usize) -> Vec<usize> {
    inputs
        .iter()
        .map(|t| t.shape[axis..].iter().product())
        .collect()
}

/// Calls `piece(part, slice, offset, len)` for each run of the output's elements `range` in
/// order: `len` elements of input `part` from element `offset` of its slice `slice` (its element
/// `slice·chunks[part] + offset`), each input adding `chunks[part]` elements to every slice of
/// the output. The callers copy in parallel chunks of the output: one thread's
/// copies left U^2-Net's 128-channel 320x320 concatenations at a quarter of the memory
/// bandwidth.
#[inline(always)]
fn each_piece(
    range: Range<usize>,
    chunks: &[usize],
    mut piece: impl FnMut(usize, usize, usize, usize),
) {
    let row: usize = chunks.iter().sum();
    // Divided once: rows of a few elements (a box's coordinates) made the two divisions a row
    // most of the work.
    let (mut o, mut r) = (range.start / row.max(1), range.start % row.max(1));
    let mut e = range.start;
    while e < range.end {
        for (part, chunk) in chunks.iter().enumerate() {
            if r >= *chunk {
                r -= chunk;
                continue;
            }
            let len = (chunk - r).min(range.end - e);
            piece(part, o, r, len);
            e += len;
            r = 0;
            if e == range.end {
                return;
            }
        }
        o += 1;
    }
}

/// The target shape of a Reshape: `0` copies the input's extent there (unless `allowzero`),
/// `-1` takes whatever extent keeps the element count.
pub(crate) fn reshape_target(
    input: &[usize],
    target: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>, RuntimeError> {
    let bad = |why: String| {
        RuntimeError::bad_input(format!("cannot reshape {input:?} to {target:?}: {why}"))
    };
    let mut shape = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &d) in target.iter().enumerate() {
        shape.push(match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            -1 => return Err(bad("more than one -1".into())),
            0 if allowzero => 0,
            0 => *input
                .get(i)
                .ok_or_else(|| bad(format!("0 at position {i} copies no input axis")))?,
            d if d > 0 => d as usize,
            d => return Err(bad(format!("extent {d}"))),
        });
    }
    let count: usize = input.iter().product();
    let known = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad("the element count overflows".into()))?;
    if let Some(i) = infer {
        if known == 0 || !count.is_multiple_of(known) {
            return Err(bad("no extent for -1 keeps the element count".into()));
        }
        shape[i] = count / known;
    } else if known != count {
        return Err(bad(format!("{count} elements cannot become {known}")));
    }
    Ok(shape)
}

/// Whether `op` is a view: an op that keeps its input's elements in order and changes only
/// their extents, so that its output may take its input's buffer where nothing else reads it
/// (the plan's run does).
pub(crate) fn is_view(op: &Op) -> bool {
    matches!(
        op,
        Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze | Op::Unsqueeze
    )
}

/// The extents of view `op`'s output ([`is_view`]), for an input of extents `x` and the op's
/// second input `second` (Reshape's shape, Squeeze's and Unsqueeze's axes).
pub(crate) fn view_shape(
    op: &Op,
    x: &[usize],
    second: Option<&Tensor>,
) -> Result<Vec<usize>, RuntimeError> {
    let required = |what: &str| {
        second.ok_or_else(|| RuntimeError::internal(format!("input '{what}' is not connected")))
    };
    match op {
        Op::Reshape { allowzero } => {
            reshape_target(x, &int_list(required("shape")?, "shape")?, *allowzero)
        }
        Op::Flatten { axis } => flatten_shape(x, *axis),
        Op::Squeeze => squeeze_shape(x, second),
        Op::Unsqueeze => unsqueeze_shape(x, required("axes")?),
        _ => Err(RuntimeError::internal(format!(
            "{} is not a view",
            op.name()
        ))),
    }
}

/// View `op` of `x` ([`is_view`]) as a copy, for when other steps still read `x`.
pub(crate) fn view(op: &Op, x: &Tensor, second: Option<&Tensor>) -> Result<Tensor, RuntimeError> {
    Ok(Tensor {
        shape: view_shape(op, &x.shape, second)?,
        data: copied(&x.data),
    })
}

/// A copy of `data` for the output of an op that only reshapes, in a buffer of the run's pool
/// where it is f32: fresh, it faulted its pages in on every run (ViT-S's 50 Reshapes took 1.5
/// ms at two threads).
fn copied(data: &TensorData) -> TensorData {
    match data {
        TensorData::F32(v) => {
            let mut out = buffers::reuse(v.len());
            out.copy_from_slice(v);
            TensorData::F32(out)
        }
        other => other.clone(),
    }
}

/// An empty `perm` reverses the axes, as ONNX's default does.
pub(crate) fn transpose(x: &Tensor, perm: &[usize]) -> Result<Tensor, RuntimeError> {
    let r = x.shape.len();
    let perm: Vec<usize> = if perm.is_empty() {
        (0..r).rev().collect()
    } else {
        perm.to_vec()
    };
    let mut seen = vec![false; r];
    let valid = perm.len() == r
        && perm
            .iter()
            .all(|&p| p < r && !std::mem::replace(&mut seen[p], true));
    if !valid {
        return Err(RuntimeError::bad_input(format!(
            "perm {perm:?} is not a permutation of {r} axes"
        )));
    }
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let in_strides = strides(&x.shape);
    // The input stride of each output axis, walked in output order.
    let walk: Vec<strided::Axis> = perm
        .iter()
        .map(|&p| (x.shape[p], in_strides[p] as isize))
        .collect();
    dispatch!(x.dtype(), T => {
        let v = elements::<T>(x, "input", x.dtype())?;
        Ok(Tensor { shape, data: T::wrap(strided::copy(v, 0, &walk)) })
    })
}

/// `operand`: input 1, which holds the sizes of a [`SplitSizes::Operand`] split.
pub(crate) fn split(
    x: &Tensor,
    axis: i64,
    sizes: &SplitSizes,
    operand: Option<&Tensor>,
    outputs: usize,
) -> Result<Vec<Tensor>, RuntimeError> {
    let axis = normalize_axis(axis, x.shape.len())?;
    let sizes = match (sizes, operand) {
        (SplitSizes::Operand(_), Some(t)) => {
            let v = int_values(t, "split")?;
            let v = v
                .iter()
                .map(|&s| usize::try_from(s))
                .collect::<Result<Vec<usize>, _>>()
                .map_err(|_| RuntimeError::bad_input(format!("split holds {v:?}")))?;
            SplitSizes::Explicit(v)
        }
        _ => sizes.clone(),
    };
    let sizes = sizes
        .resolve(x.shape[axis])
        .filter(|s| s.len() == outputs)
        .ok_or_else(|| {
            RuntimeError::bad_input(format!(
                "{sizes:?} does not split axis {axis} of {:?} into {outputs} outputs",
                x.shape
            ))
        })?;
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    dispatch!(x.dtype(), T => {
        let v = elements::<T>(x, "input", x.dtype())?;
        let row = x.shape[axis] * inner;
        let mut start = 0;
        let mut result = Vec::with_capacity(sizes.len());
        for &size in &sizes {
            // In parallel chunks, like a concatenation: at two threads the input is half in
            // the other core's cache, where its producer's tasks left it, and one thread's copy
            // of YOLOv8n's C2f splits took longer than at one thread.
            let part = size * inner;
            let first = start * inner;
            // Row by row as `each_piece` walks them, divided once: PicoDet's split of
            // [1, 3598, 4] boxes into two coordinate pairs spent 0.05 ms on two divisions per
            // pair.
            let out = build(outer * part, |range, sink| {
                each_piece(range, &[part], |_, slice, offset, len| {
                    let from = slice * row + first + offset;
                    sink.extend(v[from..from + len].iter().copied())
                })
            });
            start += size;
            let mut shape = x.shape.clone();
            shape[axis] = size;
            result.push(Tensor { shape, data: T::wrap(out) });
        }
        Ok(result)
    })
}

/// To 2-D: the axes before `axis` (which may equal the rank) become the rows.
fn flatten_shape(x: &[usize], axis: i64) -> Result<Vec<usize>, RuntimeError> {
    let r = x.len();
    let at = if axis == r as i64 {
        r
    } else {
        normalize_axis(axis, r)?
    };
    Ok(vec![x[..at].iter().product(), x[at..].iter().product()])
}

/// Without axes, every extent-1 axis goes.
fn squeeze_shape(x: &[usize], axes: Option<&Tensor>) -> Result<Vec<usize>, RuntimeError> {
    Ok(match axes {
        None => x.iter().copied().filter(|&d| d != 1).collect(),
        Some(t) => {
            let axes = distinct_axes(&int_list(t, "axes")?, x.len())?;
            if let Some(&a) = axes.iter().find(|&&a| x[a] != 1) {
                return Err(RuntimeError::bad_input(format!(
                    "cannot squeeze axis {a} of shape {x:?}"
                )));
            }
            (0..x.len())
                .filter(|i| !axes.contains(i))
                .map(|i| x[i])
                .collect()
        }
    })
}

/// Inserts extent-1 axes at `axes`, which count in the result's rank.
fn unsqueeze_shape(x: &[usize], axes: &Tensor) -> Result<Vec<usize>, RuntimeError> {
    let axes = int_list(axes, "axes")?;
    let rank = x.len() + axes.len();
    let axes = distinct_axes(&axes, rank)?;
    let mut rest = x.iter();
    Ok((0..rank)
        .map(|i| match axes.contains(&i) {
            true => 1,
            false => rest.next().copied().unwrap_or(1),
        })
        .collect())
}

/// The `Shape { start, end }` of a value of extents `shape`, as an int64 tensor.
pub fn shape_of(shape: &[usize], start: i64, end: Option<i64>) -> Tensor {
    let axes = temblor_ir::shape_axes(shape.len(), start, end);
    let dims: Vec<i64> = shape[axes].iter().map(|&d| d as i64).collect();
    Tensor::i64(vec![dims.len()], dims)
}

/// The element count of `x` as an int64 scalar.
pub(crate) fn size(x: &Tensor) -> Tensor {
    Tensor::i64(vec![], vec![x.len() as i64])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Concatenating into bytes gives QuantizeLinear's bytes of the f32 concatenation, on every
    /// axis, in outputs split into several parallel chunks and in one; other dtypes are left to
    /// [`concat`].
    #[test]
    fn concatenating_into_bytes_quantizes_the_concatenation() {
        let isa = Isa::detect();
        let q = Quantizer {
            scale: 0.037,
            zero: 0,
            signed: true,
        };
        let mut next = super::super::test_values(3);
        let a = Tensor::f32(
            vec![2, 3, 40, 70],
            (0..2 * 3 * 40 * 70).map(|_| next()).collect(),
        );
        let b = Tensor::f32(
            vec![2, 3, 40, 70],
            (0..2 * 3 * 40 * 70).map(|_| next()).collect(),
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("a thread pool");
        for axis in [0, 1, 2, -1] {
            let (bytes, f32s) = pool.install(|| {
                let bytes = concat_bytes(&[&a, &b, &a], axis, q, isa).unwrap().unwrap();
                (bytes, concat(&[&a, &b, &a], axis).unwrap())
            });
            assert_eq!(bytes.shape, f32s.shape);
            let want: Vec<u8> = f32s.as_f32().unwrap().iter().map(|&v| q.byte(v)).collect();
            assert_eq!(bytes.data, TensorData::U8(want), "axis {axis}");
        }
        let ints = Tensor::i64(vec![2], vec![1, 2]);
        assert!(concat_bytes(&[&ints, &ints], 0, q, isa).unwrap().is_none());
    }

    /// Concatenation and split along the last axis of rows a few elements long (boxes' corner
    /// pairs), in outputs large enough to be copied in parallel chunks that start mid-row,
    /// against the definition element by element; the split undoes the concatenation.
    #[test]
    fn short_rows_concatenate_and_split_in_parallel_chunks() {
        let rows = 40_000;
        let a = Tensor::f32(vec![1, rows, 2], (0..2 * rows).map(|i| i as f32).collect());
        let b = Tensor::f32(
            vec![1, rows, 3],
            (0..3 * rows).map(|i| -(i as f32)).collect(),
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("a thread pool");
        let (joined, parts) = pool.install(|| {
            let joined = concat(&[&a, &b], -1).unwrap();
            let parts = split(&joined, -1, &SplitSizes::Explicit(vec![2, 3]), None, 2).unwrap();
            (joined, parts)
        });
        let (av, bv) = (a.as_f32().unwrap(), b.as_f32().unwrap());
        let want: Vec<f32> = (0..rows)
            .flat_map(|r| {
                av[2 * r..2 * r + 2]
                    .iter()
                    .chain(&bv[3 * r..3 * r + 3])
                    .copied()
            })
            .collect();
        assert_eq!(joined.shape, [1, rows, 5]);
        assert_eq!(joined.as_f32().unwrap(), &want[..]);
        assert_eq!(parts[0], a);
        assert_eq!(parts[1], b);
    }
}
