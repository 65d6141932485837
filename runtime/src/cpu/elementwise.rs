//! Add, Sub, Mul, Div with numpy broadcasting. Axes are aligned from the right, size-1 axes
//! stretch; adjacent axes that broadcast alike are merged first, so the common cases (equal
//! shapes, a scalar, a per-channel `[1,C,1,1]` operand) run as long contiguous inner loops.

use super::execute::{not_in_family, Args};
use super::Element;
use crate::{RuntimeError, Tensor};
use temblor_ir::{BinaryOp, DType, Op};

pub(crate) fn execute(op: &Op, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
    match op {
        Op::Binary(b) => Ok(vec![binary(*b, args.required(0)?, args.required(1)?)?]),
        Op::Where | Op::Cast { .. } => Err(RuntimeError::unsupported(format!(
            "no CPU kernel for {} yet",
            op.name()
        ))),
        _ => Err(not_in_family(op, "elementwise")),
    }
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

pub(crate) fn binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, RuntimeError> {
    if a.dtype() != b.dtype() {
        return Err(RuntimeError::bad_input(format!(
            "operand dtypes differ: {} and {}",
            a.dtype(),
            b.dtype()
        )));
    }
    let shape = broadcast_shape(&a.shape, &b.shape)?;
    let data = match (&a.data, &b.data) {
        (crate::TensorData::F32(x), crate::TensorData::F32(y)) => {
            let f = (&x[..], &a.shape[..], &y[..], &b.shape[..], &shape[..]);
            crate::TensorData::F32(match op {
                BinaryOp::Add => apply(f, |p, q| p + q),
                BinaryOp::Sub => apply(f, |p, q| p - q),
                BinaryOp::Mul => apply(f, |p, q| p * q),
                BinaryOp::Div => apply(f, |p, q| p / q),
                other => {
                    return Err(RuntimeError::unsupported(format!(
                        "no CPU kernel for {} yet",
                        other.name()
                    )))
                }
            })
        }
        _ => match a.dtype() {
            DType::I64 => integer::<i64>(op, a, b, &shape)?,
            DType::I32 => integer::<i32>(op, a, b, &shape)?,
            other => {
                return Err(RuntimeError::unsupported(format!(
                    "{} of {other} tensors",
                    Op::Binary(op).name()
                )))
            }
        },
    };
    Ok(Tensor { shape, data })
}

/// Integer arithmetic wraps like numpy's; division truncates toward zero as ONNX does, and a
/// zero divisor is an error rather than a crash.
trait Integer: Element + PartialEq {
    const ZERO: Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
}

macro_rules! integer_impl {
    ($t:ty) => {
        impl Integer for $t {
            const ZERO: Self = 0;
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn div(self, o: Self) -> Self {
                self.wrapping_div(o)
            }
        }
    };
}
integer_impl!(i64);
integer_impl!(i32);

fn integer<T: Integer>(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    shape: &[usize],
) -> Result<crate::TensorData, RuntimeError> {
    let (Some(x), Some(y)) = (T::slice(&a.data), T::slice(&b.data)) else {
        return Err(RuntimeError::internal(
            "operand dtypes changed under the kernel",
        ));
    };
    let f = (x, &a.shape[..], y, &b.shape[..], shape);
    Ok(T::wrap(match op {
        BinaryOp::Add => apply(f, T::add),
        BinaryOp::Sub => apply(f, T::sub),
        BinaryOp::Mul => apply(f, T::mul),
        BinaryOp::Div => {
            if y.contains(&T::ZERO) {
                return Err(RuntimeError::bad_input("integer division by zero"));
            }
            apply(f, T::div)
        }
        other => {
            return Err(RuntimeError::unsupported(format!(
                "no CPU kernel for {} yet",
                other.name()
            )))
        }
    }))
}

type Operands<'a, T> = (&'a [T], &'a [usize], &'a [T], &'a [usize], &'a [usize]);

/// `f` over the broadcast of `a` and `b` to `out_shape`.
fn apply<T: Copy>((a, ash, b, bsh, out_shape): Operands<T>, f: impl Fn(T, T) -> T) -> Vec<T> {
    let total: usize = out_shape.iter().product();
    if ash == bsh {
        return a.iter().zip(b).map(|(&p, &q)| f(p, q)).collect();
    }
    if b.len() == 1 && a.len() == total {
        return a.iter().map(|&p| f(p, b[0])).collect();
    }
    if a.len() == 1 && b.len() == total {
        return b.iter().map(|&q| f(a[0], q)).collect();
    }
    let dims = merged_dims(ash, bsh, out_shape);
    let mut out = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    let Some(&(inner, ia, ib)) = dims.last() else {
        out.push(f(a[0], b[0]));
        return out;
    };
    let outer = &dims[..dims.len() - 1];
    let mut index = vec![0usize; outer.len()];
    let (mut oa, mut ob) = (0usize, 0usize);
    loop {
        match (ia, ib) {
            (1, 1) => out.extend(
                a[oa..oa + inner]
                    .iter()
                    .zip(&b[ob..ob + inner])
                    .map(|(&p, &q)| f(p, q)),
            ),
            (1, 0) => out.extend(a[oa..oa + inner].iter().map(|&p| f(p, b[ob]))),
            (0, 1) => out.extend(b[ob..ob + inner].iter().map(|&q| f(a[oa], q))),
            _ => out.extend((0..inner).map(|i| f(a[oa + i * ia], b[ob + i * ib]))),
        }
        let mut d = outer.len();
        loop {
            if d == 0 {
                return out;
            }
            d -= 1;
            let (n, sa, sb) = outer[d];
            index[d] += 1;
            oa += sa;
            ob += sb;
            if index[d] < n {
                break;
            }
            oa -= sa * n;
            ob -= sb * n;
            index[d] = 0;
        }
    }
}

/// The output axes as (extent, stride in a, stride in b), size-1 axes dropped and neighbours
/// that both operands step through contiguously (or both hold still on) merged.
fn merged_dims(ash: &[usize], bsh: &[usize], out_shape: &[usize]) -> Vec<(usize, usize, usize)> {
    let r = out_shape.len();
    let strides_in = |s: &[usize]| {
        let mut st = vec![0; r];
        let mut acc = 1;
        for i in (0..s.len()).rev() {
            st[i + r - s.len()] = if s[i] == 1 { 0 } else { acc };
            acc *= s[i];
        }
        st
    };
    let (sa, sb) = (strides_in(ash), strides_in(bsh));
    let mut dims: Vec<(usize, usize, usize)> = Vec::new();
    for i in 0..r {
        if out_shape[i] == 1 {
            continue;
        }
        let cur = (out_shape[i], sa[i], sb[i]);
        match dims.last_mut() {
            Some(prev) if prev.1 == cur.1 * cur.0 && prev.2 == cur.2 * cur.0 => {
                *prev = (prev.0 * cur.0, cur.1, cur.2);
            }
            _ => dims.push(cur),
        }
    }
    dims
}
