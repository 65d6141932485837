//! Binary ops, Where and Cast, with numpy broadcasting. Axes are aligned from the right, size-1
//! axes stretch; adjacent axes that broadcast alike are merged first, so the common cases (equal
//! shapes, a scalar, a per-channel `[1,C,1,1]` operand) run as long contiguous inner loops.

use super::execute::{not_in_family, Args};
use super::{cast, dispatch, elementwise_binary, Element};
use crate::{RuntimeError, Tensor};
use temblor_ir::{DType, Op};

pub(crate) fn execute(op: &Op, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
    Ok(vec![match op {
        Op::Binary(b) => elementwise_binary::binary(*b, args.required(0)?, args.required(1)?)?,
        Op::Where => where_(args.required(0)?, args.required(1)?, args.required(2)?)?,
        Op::Cast { to } => cast::cast(args.required(0)?, *to)?,
        _ => return Err(not_in_family(op, "elementwise")),
    }])
}

pub(crate) fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, RuntimeError> {
    let r = a.len().max(b.len());
    let at = |s: &[usize], i: usize| {
        if i + s.len() >= r {
            s[i + s.len() - r]
        } else {
            1
        }
    };
    (0..r)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            _ => Err(RuntimeError::bad_input(format!(
                "shapes {a:?} and {b:?} do not broadcast"
            ))),
        })
        .collect()
}

/// An operand of a broadcasting kernel: its elements and shape.
pub(crate) type Operand<'a, T> = (&'a [T], &'a [usize]);

/// The elements of `t` as `T`, with its shape.
pub(crate) fn operand<T: Element>(t: &Tensor) -> Result<Operand<'_, T>, RuntimeError> {
    let data = T::slice(&t.data)
        .ok_or_else(|| RuntimeError::internal("tensor data disagrees with the kernel's dtype"))?;
    Ok((data, &t.shape))
}

/// `f` over the broadcast of `a` and `b` to `out_shape`.
pub(crate) fn apply<A: Copy, B: Copy, R>(
    (a, ash): Operand<A>,
    (b, bsh): Operand<B>,
    out_shape: &[usize],
    f: impl Fn(A, B) -> R,
) -> Vec<R> {
    let total: usize = out_shape.iter().product();
    if total == 0 {
        return Vec::new();
    }
    if ash == bsh {
        return a.iter().zip(b).map(|(&p, &q)| f(p, q)).collect();
    }
    if b.len() == 1 && a.len() == total {
        return a.iter().map(|&p| f(p, b[0])).collect();
    }
    if a.len() == 1 && b.len() == total {
        return b.iter().map(|&q| f(a[0], q)).collect();
    }
    let dims = merged_dims([ash, bsh], out_shape);
    let Some((&(inner, [ia, ib]), outer)) = dims.split_last() else {
        return vec![f(a[0], b[0])];
    };
    let mut out = Vec::with_capacity(total);
    rows(outer, |[oa, ob]| match (ia, ib) {
        (1, 1) => out.extend(
            a[oa..oa + inner]
                .iter()
                .zip(&b[ob..ob + inner])
                .map(|(&p, &q)| f(p, q)),
        ),
        (1, 0) => {
            let q = b[ob];
            out.extend(a[oa..oa + inner].iter().map(|&p| f(p, q)))
        }
        (0, 1) => {
            let p = a[oa];
            out.extend(b[ob..ob + inner].iter().map(|&q| f(p, q)))
        }
        _ => out.extend((0..inner).map(|i| f(a[oa + i * ia], b[ob + i * ib]))),
    });
    out
}

fn where_(cond: &Tensor, x: &Tensor, y: &Tensor) -> Result<Tensor, RuntimeError> {
    let c = super::elements::<bool>(cond, "condition", DType::Bool)?;
    if x.dtype() != y.dtype() {
        return Err(RuntimeError::bad_input(format!(
            "x and y dtypes differ: {} and {}",
            x.dtype(),
            y.dtype()
        )));
    }
    let shape = broadcast_shape(&broadcast_shape(&x.shape, &y.shape)?, &cond.shape)?;
    let data = dispatch!(x.dtype(), T => T::wrap(select((c, &cond.shape), operand::<T>(x)?, operand::<T>(y)?, &shape)));
    Ok(Tensor { shape, data })
}

fn select<T: Copy>(
    (c, csh): Operand<bool>,
    (x, xsh): Operand<T>,
    (y, ysh): Operand<T>,
    out_shape: &[usize],
) -> Vec<T> {
    let total: usize = out_shape.iter().product();
    if total == 0 {
        return Vec::new();
    }
    let dims = merged_dims([csh, xsh, ysh], out_shape);
    let Some((&(inner, [ic, ix, iy]), outer)) = dims.split_last() else {
        return vec![if c[0] { x[0] } else { y[0] }];
    };
    let mut out = Vec::with_capacity(total);
    rows(outer, |[oc, ox, oy]| {
        out.extend((0..inner).map(|i| {
            if c[oc + i * ic] {
                x[ox + i * ix]
            } else {
                y[oy + i * iy]
            }
        }))
    });
    out
}

/// Calls `row` with each operand's offset at the start of every row of the innermost merged
/// axis, the `outer` axes counting like an odometer.
fn rows<const N: usize>(outer: &[(usize, [usize; N])], mut row: impl FnMut([usize; N])) {
    let mut index = vec![0usize; outer.len()];
    let mut offsets = [0usize; N];
    loop {
        row(offsets);
        let mut d = outer.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            let (n, steps) = outer[d];
            index[d] += 1;
            for (o, s) in offsets.iter_mut().zip(steps) {
                *o += s;
            }
            if index[d] < n {
                break;
            }
            for (o, s) in offsets.iter_mut().zip(steps) {
                *o -= s * n;
            }
            index[d] = 0;
        }
    }
}

/// The output axes as (extent, stride in each operand), size-1 axes dropped and neighbours
/// that every operand steps through contiguously (or holds still on) merged.
fn merged_dims<const N: usize>(
    shapes: [&[usize]; N],
    out_shape: &[usize],
) -> Vec<(usize, [usize; N])> {
    let r = out_shape.len();
    let strides = shapes.map(|s| {
        let mut st = vec![0; r];
        let mut acc = 1;
        for i in (0..s.len()).rev() {
            st[i + r - s.len()] = if s[i] == 1 { 0 } else { acc };
            acc *= s[i];
        }
        st
    });
    let mut dims: Vec<(usize, [usize; N])> = Vec::new();
    for (i, &n) in out_shape.iter().enumerate() {
        if n == 1 {
            continue;
        }
        let cur: [usize; N] = std::array::from_fn(|k| strides[k][i]);
        match dims.last_mut() {
            Some((m, prev)) if (0..N).all(|k| prev[k] == cur[k] * n) => {
                *m *= n;
                *prev = cur;
            }
            _ => dims.push((n, cur)),
        }
    }
    dims
}
