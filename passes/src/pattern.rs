//! Small questions patterns ask of a candidate: what are the operands of a value's producer, is
//! an operand a given constant. Patterns need not ask whether a value they absorb is read
//! elsewhere: the rewriter refuses a match whose interior values escape it.
//!
//! A constant operand of Add or Mul is on the right (`commute_constants` runs first), so
//! [`scaled`] and [`shifted`] look there only. Two non-constant operands of a commutative op
//! still come in either order; [`either`] gives both.

use temblor_ir::{BinaryOp, Graph, Op, ValueRef};

/// The value of a one-element f32 constant.
pub(crate) fn scalar(g: &Graph, v: ValueRef) -> Option<f32> {
    match g.constant(v)?.to_f32()?[..] {
        [s] => Some(s),
        _ => None,
    }
}

/// Read by exactly one layer and not a graph output: the only reader may be matched next.
pub(crate) fn private(g: &Graph, v: ValueRef) -> bool {
    g.consumers(v).len() == 1 && !g.outputs.iter().any(|o| o.value == v)
}

/// The operands of `v`'s producer when it is the binary `op`.
pub(crate) fn operands(g: &Graph, v: ValueRef, op: BinaryOp) -> Option<(ValueRef, ValueRef)> {
    if g.node(v.node).op != Op::Binary(op) {
        return None;
    }
    Some((g.input(v.node, 0)?, g.input(v.node, 1)?))
}

/// `(a, b)` and `(b, a)`: the two ways to read the operands of a commutative op.
pub(crate) fn either<T: Copy>(a: T, b: T) -> [(T, T); 2] {
    [(a, b), (b, a)]
}

/// `a * c` for a one-element constant `c` that `is` accepts: `a`.
pub(crate) fn scaled(g: &Graph, v: ValueRef, is: impl Fn(f32) -> bool) -> Option<ValueRef> {
    by_scalar(g, v, BinaryOp::Mul, is)
}

/// `a + c` for a one-element constant `c` that `is` accepts: `a`.
pub(crate) fn shifted(g: &Graph, v: ValueRef, is: impl Fn(f32) -> bool) -> Option<ValueRef> {
    by_scalar(g, v, BinaryOp::Add, is)
}

fn by_scalar(g: &Graph, v: ValueRef, op: BinaryOp, is: impl Fn(f32) -> bool) -> Option<ValueRef> {
    let (a, c) = operands(g, v, op)?;
    scalar(g, c).is_some_and(is).then_some(a)
}

/// Whether `v` is the one-element constant exponent `n`, as a float or, since Pow allows an
/// exponent of another type, an integer.
pub(crate) fn is_exponent(g: &Graph, v: ValueRef, n: i64) -> bool {
    let integer = g
        .constant(v)
        .and_then(|w| w.to_i64())
        .is_some_and(|e| e == [n]);
    integer || scalar(g, v) == Some(n as f32)
}
