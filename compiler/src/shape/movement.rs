//! Rules of the data-movement ops: Concat, Reshape, Transpose, Split.

use super::{dims, not_in_family, one, Inferred, Ins};
use temblor_ir::{Dim, Layout, Op, Shape, SplitSizes, TensorType};

pub(super) fn infer(op: &Op, ins: &Ins) -> Result<Inferred, String> {
    match op {
        Op::Concat { axis } => one(concat(*axis, &ins.all()?)?),
        Op::Reshape { allowzero } => one(reshape(
            ins.ty(0)?,
            ins.ty(1)?,
            ins.ints(1).as_deref(),
            *allowzero,
        )?),
        Op::Transpose { perm } => {
            let (perm, out) = transpose(perm, ins.ty(0)?)?;
            Ok((Some(Op::Transpose { perm }), vec![out]))
        }
        Op::Split { axis, sizes } => {
            let (sizes, outs) = split(*axis, sizes, ins.ty(0)?)?;
            Ok((Some(Op::Split { axis: *axis, sizes }), outs))
        }
        Op::Slice
        | Op::Flatten { .. }
        | Op::Squeeze
        | Op::Unsqueeze
        | Op::Expand
        | Op::Tile
        | Op::Gather { .. }
        | Op::GatherElements { .. }
        | Op::GatherNd { .. }
        | Op::ScatterNd { .. }
        | Op::Shape { .. }
        | Op::Size
        | Op::ConstantOfShape { .. }
        | Op::Range
        | Op::Pad { .. }
        | Op::NonZero => Err(format!("no shape rule for {} yet", op.name())),
        _ => Err(not_in_family(op)),
    }
}

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
pub(super) fn split(
    axis: i64,
    sizes: &SplitSizes,
    x: &TensorType,
) -> Result<(SplitSizes, Vec<TensorType>), String> {
    let ax = dims::axis(axis, x.shape.rank())?;
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
                SplitSizes::Equal(n) => vec![Dim::Unknown; *n],
            };
            (sizes.clone(), parts)
        }
    };
    let outs = parts
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
        .collect();
    Ok((sizes, outs))
}
