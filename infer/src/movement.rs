//! Rules of the data-movement ops: Concat, Reshape, Transpose, Split, Flatten, Squeeze,
//! Unsqueeze, Expand, Tile, Pad, and the shape-computing Shape, Size, ConstantOfShape and Range.
//! The indexing ops are in [`super::indexing`]. Operands that are constants give exact dims; computed
//! ones leave the dims they decide unknown, keeping the rank whenever an operand's length
//! determines it.

use super::{dims, Ins};
use temblor_ir::{DType, Dim, Layout, Shape, SplitSizes, TensorType};

pub(super) fn concat(axis: i64, ins: &[&TensorType]) -> Result<TensorType, String> {
    let first = ins.first().ok_or("has no inputs")?;
    let rank = first.shape.rank();
    let ax = dims::axis(axis, rank)?;
    let mut out = first.shape.0.clone();
    let mut total = Some(0usize);
    for (i, t) in ins.iter().enumerate() {
        if t.dtype != first.dtype {
            return Err(format!(
                "input {i} is {}, input 0 is {}",
                t.dtype, first.dtype
            ));
        }
        if t.shape.rank() != rank {
            return Err(format!(
                "input {i} has shape {}, input 0 has {}",
                t.shape, first.shape
            ));
        }
        for (k, (o, d)) in out.iter_mut().zip(t.shape.dims()).enumerate() {
            if k == ax {
                total = total.zip(d.known()).map(|(a, b)| a.saturating_add(b));
            } else {
                *o =
                    dims::unify(o, d).map_err(|e| format!("input {i} differs on axis {k}: {e}"))?;
            }
        }
    }
    out[ax] = total.map_or(Dim::Unknown, Dim::Known);
    let layout = if ins.iter().all(|t| t.layout == first.layout) {
        first.layout
    } else {
        Layout::Any
    };
    Ok(TensorType {
        dtype: first.dtype,
        shape: Shape(out),
        layout,
    })
}

/// `target` is the shape input's value when it is a constant; otherwise only the rank follows
/// (from the shape input's length).
pub(super) fn reshape(
    x: &TensorType,
    shape_in: &TensorType,
    target: Option<&[i64]>,
    allowzero: bool,
) -> Result<TensorType, String> {
    let Some(target) = target else {
        return match shape_in.shape.dims() {
            [Dim::Known(n)] => Ok(TensorType::new(x.dtype, Shape(vec![Dim::Unknown; *n]))),
            _ => Err(format!(
                "shape input has shape {}; its length must be known",
                shape_in.shape
            )),
        };
    };
    let xd = x.shape.dims();
    let mut out = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &v) in target.iter().enumerate() {
        out.push(match v {
            0 if !allowzero => xd.get(i).cloned().ok_or_else(|| {
                format!(
                    "shape entry {i} copies an axis the input (rank {}) lacks",
                    xd.len()
                )
            })?,
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                Dim::Unknown
            }
            -1 => return Err("shape has more than one -1".into()),
            v => Dim::Known(usize::try_from(v).map_err(|_| format!("shape entry {i} is {v}"))?),
        });
    }
    match infer_at {
        Some(i) => out[i] = inferred(xd, &out)?,
        None => {
            if let (Some(a), Some(b)) = (product(xd), product(&out)) {
                if a != b {
                    return Err(format!(
                        "cannot reshape {} ({a} elements) to {} ({b})",
                        x.shape,
                        Shape(out)
                    ));
                }
            }
        }
    }
    Ok(TensorType::new(x.dtype, Shape(out)))
}

fn product(d: &[Dim]) -> Option<usize> {
    d.iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(d.known()?))
}

/// The `-1` entry: input elements over the other output entries, cancelling symbols that appear
/// on both sides (a copied batch symbol), when nothing unknown remains.
fn inferred(input: &[Dim], output: &[Dim]) -> Result<Dim, String> {
    let mut syms: Vec<&str> = Vec::new();
    let (mut num, mut den) = (1usize, 1usize);
    for d in input {
        match d {
            Dim::Known(n) => num = num.saturating_mul(*n),
            Dim::Symbol(s) => syms.push(s),
            Dim::Unknown => return Ok(Dim::Unknown),
        }
    }
    for d in output {
        match d {
            Dim::Known(n) => den = den.saturating_mul(*n),
            Dim::Symbol(s) => match syms.iter().position(|x| x == s) {
                Some(p) => {
                    syms.swap_remove(p);
                }
                None => return Ok(Dim::Unknown),
            },
            Dim::Unknown => {}
        }
    }
    if !syms.is_empty() || output.iter().filter(|d| **d == Dim::Unknown).count() > 1 {
        return Ok(Dim::Unknown);
    }
    if den == 0 || num % den != 0 {
        return Err(format!(
            "{num} elements do not divide into the fixed entries' {den}"
        ));
    }
    Ok(Dim::Known(num / den))
}

/// An empty perm reverses the axes. Returns the resolved perm and the result type.
pub(super) fn transpose(
    perm: &[usize],
    x: &TensorType,
) -> Result<(Vec<usize>, TensorType), String> {
    let rank = x.shape.rank();
    let perm: Vec<usize> = if perm.is_empty() {
        (0..rank).rev().collect()
    } else {
        perm.to_vec()
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank
        || perm
            .iter()
            .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
    {
        return Err(format!(
            "perm {perm:?} is not a permutation of the {rank} axes"
        ));
    }
    let d = x.shape.dims();
    let identity = perm.iter().enumerate().all(|(i, &p)| i == p);
    let out = TensorType {
        dtype: x.dtype,
        shape: Shape(perm.iter().map(|&p| d[p].clone()).collect()),
        layout: if identity { x.layout } else { Layout::Any },
    };
    Ok((perm, out))
}

/// An equal split becomes explicit when the axis extent is known; otherwise its parts stay
/// unknown and the runtime divides the actual extent.
/// `operand`: the value of input 1 where it is static; an operand's sizes stay an operand (the
/// op keeps its input), only the output extents take them.
pub(super) fn split(
    axis: i64,
    sizes: &SplitSizes,
    x: &TensorType,
    operand: Option<Vec<i64>>,
) -> Result<(SplitSizes, Vec<TensorType>), String> {
    let ax = dims::axis(axis, x.shape.rank())?;
    if let SplitSizes::Operand(n) = sizes {
        let parts = match operand {
            Some(v) => {
                let v = v
                    .iter()
                    .map(|&s| usize::try_from(s).map_err(|_| format!("split holds {s}")))
                    .collect::<Result<Vec<usize>, String>>()?;
                let fits = SplitSizes::Explicit(v.clone())
                    .resolve(x.shape.dims()[ax].known().unwrap_or(v.iter().sum()))
                    .is_some();
                if v.len() != *n || !fits {
                    return Err(format!(
                        "split {v:?} does not divide axis {ax} of {} into {n} parts",
                        x.shape
                    ));
                }
                v.into_iter().map(Dim::Known).collect()
            }
            None => vec![Dim::Unknown; *n],
        };
        return Ok((sizes.clone(), parts_of(x, ax, parts)));
    }
    let (sizes, parts): (SplitSizes, Vec<Dim>) = match x.shape.dims()[ax].known() {
        Some(n) => {
            let resolved = sizes
                .resolve(n)
                .ok_or_else(|| format!("split {sizes:?} does not fit axis {ax} of size {n}"))?;
            let parts = resolved.iter().map(|&s| Dim::Known(s)).collect();
            (SplitSizes::Explicit(resolved), parts)
        }
        None => {
            let parts = match sizes {
                SplitSizes::Explicit(s) => s.iter().map(|&s| Dim::Known(s)).collect(),
                SplitSizes::Equal(n) | SplitSizes::Operand(n) => vec![Dim::Unknown; *n],
            };
            (sizes.clone(), parts)
        }
    };
    Ok((sizes, parts_of(x, ax, parts)))
}

/// The parts of `x` with extents `parts` on axis `ax`.
fn parts_of(x: &TensorType, ax: usize, parts: Vec<Dim>) -> Vec<TensorType> {
    parts
        .into_iter()
        .map(|part| {
            let mut d = x.shape.0.clone();
            d[ax] = part;
            TensorType {
                dtype: x.dtype,
                shape: Shape(d),
                layout: x.layout,
            }
        })
        .collect()
}

/// The length of a 1-D operand (axes, pads, a target shape), which decides the result's rank.
pub(super) fn operand_len(t: &TensorType, what: &str) -> Result<usize, String> {
    match t.shape.dims() {
        [Dim::Known(n)] => Ok(*n),
        _ => Err(format!(
            "the {what} input has shape {}; a 1-D operand of known length is needed to know the \
             result's rank",
            t.shape
        )),
    }
}

/// The product of `d`: known when every factor is, a symbol when it is the one factor other
/// than 1.
fn product_dim(d: &[Dim]) -> Dim {
    if let Some(n) = product(d) {
        return Dim::Known(n);
    }
    if d.contains(&Dim::Known(0)) {
        return Dim::Known(0);
    }
    let mut rest = d.iter().filter(|x| **x != Dim::Known(1));
    match (rest.next(), rest.next()) {
        (Some(s @ Dim::Symbol(_)), None) => s.clone(),
        _ => Dim::Unknown,
    }
}

pub(super) fn flatten(axis: i64, x: &TensorType) -> Result<TensorType, String> {
    let d = x.shape.dims();
    // Unlike other axes, Flatten's may equal the rank (everything goes into the rows).
    let at = if axis == d.len() as i64 {
        d.len()
    } else {
        dims::axis(axis, d.len())?
    };
    let shape = Shape(vec![product_dim(&d[..at]), product_dim(&d[at..])]);
    Ok(TensorType::new(x.dtype, shape))
}

/// Normalized, distinct axes below `rank`.
fn distinct_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    let mut seen = vec![false; rank];
    axes.iter()
        .map(|&a| {
            let ax = dims::axis(a, rank)?;
            if std::mem::replace(&mut seen[ax], true) {
                return Err(format!("axis {a} is given twice in {axes:?}"));
            }
            Ok(ax)
        })
        .collect()
}

/// Without axes, every extent-1 axis goes; a dim that is not known is taken not to be 1, as
/// the rank must be known and dynamic axes are batch or sequence lengths.
pub(super) fn squeeze(
    x: &TensorType,
    axes_in: Option<&TensorType>,
    axes: Option<&[i64]>,
) -> Result<TensorType, String> {
    let d = x.shape.dims();
    let keep: Vec<bool> = match (axes_in, axes) {
        (None, _) => d.iter().map(|x| *x != Dim::Known(1)).collect(),
        (Some(_), Some(axes)) => {
            let axes = distinct_axes(axes, d.len())?;
            if let Some(&a) = axes
                .iter()
                .find(|&&a| matches!(d[a], Dim::Known(n) if n != 1))
            {
                return Err(format!("cannot squeeze axis {a} of shape {}", x.shape));
            }
            (0..d.len()).map(|i| !axes.contains(&i)).collect()
        }
        (Some(t), None) => {
            let n = operand_len(t, "axes")?;
            let rank = d
                .len()
                .checked_sub(n)
                .ok_or_else(|| format!("{n} axes cannot be squeezed from shape {}", x.shape))?;
            let maybe_one: Vec<bool> = d.iter().map(|x| x.known().is_none_or(|k| k == 1)).collect();
            if maybe_one.iter().filter(|&&m| m).count() != n {
                return Ok(TensorType::new(x.dtype, Shape(vec![Dim::Unknown; rank])));
            }
            maybe_one.iter().map(|m| !m).collect()
        }
    };
    let shape = d
        .iter()
        .zip(keep)
        .filter(|&(_, k)| k)
        .map(|(x, _)| x.clone())
        .collect();
    Ok(TensorType::new(x.dtype, Shape(shape)))
}

pub(super) fn unsqueeze(
    x: &TensorType,
    axes_in: &TensorType,
    axes: Option<&[i64]>,
) -> Result<TensorType, String> {
    let d = x.shape.dims();
    let Some(axes) = axes else {
        let rank = d.len() + operand_len(axes_in, "axes")?;
        return Ok(TensorType::new(x.dtype, Shape(vec![Dim::Unknown; rank])));
    };
    let rank = d.len() + axes.len();
    let axes = distinct_axes(axes, rank)?;
    let mut rest = d.iter();
    let shape = (0..rank)
        .map(|i| match axes.contains(&i) {
            true => Dim::Known(1),
            false => rest.next().cloned().unwrap_or(Dim::Unknown),
        })
        .collect();
    Ok(TensorType::new(x.dtype, Shape(shape)))
}

/// Broadcasts `x` against the target shape; a computed target still fixes the axes where `x`
/// has a known extent other than 1.
pub(super) fn expand(
    x: &TensorType,
    shape_in: &TensorType,
    target: Option<&[i64]>,
) -> Result<TensorType, String> {
    let target: Vec<Dim> = match target {
        Some(t) => t
            .iter()
            .map(|&v| {
                usize::try_from(v)
                    .map(Dim::Known)
                    .map_err(|_| format!("target shape {t:?} has a negative extent"))
            })
            .collect::<Result<_, _>>()?,
        None => vec![Dim::Unknown; operand_len(shape_in, "shape")?],
    };
    let xd = x.shape.dims();
    let rank = xd.len().max(target.len());
    let aligned = |d: &[Dim], i: usize| {
        (i + d.len())
            .checked_sub(rank)
            .map_or(Dim::Known(1), |j| d[j].clone())
    };
    let shape = (0..rank)
        .map(|i| dims::broadcast(&aligned(xd, i), &aligned(&target, i)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "{} does not expand to {}: {e}",
                x.shape,
                Shape(target.clone())
            )
        })?;
    Ok(TensorType::new(x.dtype, Shape(shape)))
}

pub(super) fn tile(x: &TensorType, repeats: Option<&[i64]>) -> Result<TensorType, String> {
    let d = x.shape.dims();
    let shape = match repeats {
        Some(r) if r.len() != d.len() => {
            return Err(format!("{} repeats for shape {}", r.len(), x.shape))
        }
        Some(r) => d
            .iter()
            .zip(r)
            .map(|(x, &k)| {
                let k = usize::try_from(k).map_err(|_| format!("repeats {r:?} hold a negative"))?;
                Ok(product_dim(&[x.clone(), Dim::Known(k)]))
            })
            .collect::<Result<Vec<_>, String>>()?,
        None => d
            .iter()
            .map(|x| match x {
                Dim::Known(0) => Dim::Known(0),
                _ => Dim::Unknown,
            })
            .collect(),
    };
    Ok(TensorType {
        dtype: x.dtype,
        shape: Shape(shape),
        layout: x.layout,
    })
}

/// The length of `x`'s shape between `start` and `end`, both clamped to the rank.
/// The element count: an int64 scalar whatever the input.
pub(super) fn size() -> TensorType {
    TensorType::new(DType::I64, Shape(vec![]))
}

pub(super) fn shape_of(x: &TensorType, start: i64, end: Option<i64>) -> TensorType {
    let len = temblor_ir::shape_axes(x.shape.rank(), start, end).len();
    TensorType::new(DType::I64, Shape(vec![Dim::Known(len)]))
}

pub(super) fn constant_of_shape(
    dtype: DType,
    shape_in: &TensorType,
    shape: Option<&[i64]>,
) -> Result<TensorType, String> {
    let dims = match shape {
        Some(s) => s
            .iter()
            .map(|&v| {
                usize::try_from(v)
                    .map(Dim::Known)
                    .map_err(|_| format!("shape {s:?} has a negative extent"))
            })
            .collect::<Result<_, _>>()?,
        None => vec![Dim::Unknown; operand_len(shape_in, "shape")?],
    };
    Ok(TensorType::new(dtype, Shape(dims)))
}

/// A 1-D result whose length is known when start, limit and delta are constants.
pub(super) fn range(ins: &Ins) -> Result<TensorType, String> {
    let t = ins.ty(0)?;
    for p in 1..3 {
        if ins.ty(p)?.dtype != t.dtype {
            return Err(format!(
                "input {p} is {}, input 0 is {}",
                ins.ty(p)?.dtype,
                t.dtype
            ));
        }
    }
    let scalar = |p: usize| -> Option<f64> {
        let w = ins.weight(p)?;
        let v = match w.dtype {
            DType::F32 => w.to_f32()?.first().map(|&x| x as f64),
            _ => w.to_i64()?.first().map(|&x| x as f64),
        };
        v.filter(|_| w.element_count() == 1)
    };
    let len = match (scalar(0), scalar(1), scalar(2)) {
        (_, _, Some(0.0)) => return Err("delta is 0".into()),
        (Some(start), Some(limit), Some(delta)) => {
            Dim::Known(((limit - start) / delta).ceil().max(0.0) as usize)
        }
        _ => Dim::Unknown,
    };
    Ok(TensorType::new(t.dtype, Shape(vec![len])))
}

/// Pads (begins then ends, for `axes` or every axis) grow each axis; computed pads leave the
/// padded axes unknown.
pub(super) fn pad(ins: &Ins) -> Result<TensorType, String> {
    let x = ins.ty(0)?;
    let d = x.shape.dims();
    let axes = match ins.opt(3) {
        None => Some((0..d.len()).collect::<Vec<_>>()),
        Some(_) => ins
            .ints(3)
            .map(|a| distinct_axes(&a, d.len()))
            .transpose()?,
    };
    let mut shape = d.to_vec();
    match (axes, ins.ints(1)) {
        (Some(axes), Some(pads)) => {
            if pads.len() != 2 * axes.len() {
                return Err(format!("{} pads for {} axes", pads.len(), axes.len()));
            }
            for (i, &a) in axes.iter().enumerate() {
                let grow = pads[i] + pads[i + axes.len()];
                shape[a] = match (&d[a], grow) {
                    (x, 0) => x.clone(),
                    (Dim::Known(n), g) => {
                        Dim::Known(usize::try_from(*n as i64 + g).map_err(|_| {
                            format!("pads {pads:?} remove more than axis {a} holds")
                        })?)
                    }
                    _ => Dim::Unknown,
                };
            }
        }
        (Some(axes), None) => axes.iter().for_each(|&a| shape[a] = Dim::Unknown),
        (None, _) => shape.iter_mut().for_each(|s| *s = Dim::Unknown),
    }
    Ok(TensorType {
        dtype: x.dtype,
        shape: Shape(shape),
        layout: x.layout,
    })
}
