//! Small questions the recognition passes ask of a candidate pattern: is a value a scalar
//! constant, is it private to the pattern, what are the operands of its producer.

use temblor_ir::{BinaryOp, Graph, Op, ValueRef};

/// The value of a one-element f32 constant.
pub(crate) fn scalar(g: &Graph, v: ValueRef) -> Option<f32> {
    match g.constant(v)?.to_f32()?[..] {
        [s] => Some(s),
        _ => None,
    }
}

/// Read by exactly one layer and not a graph output: the pattern may consume it.
pub(crate) fn private(g: &Graph, v: ValueRef) -> bool {
    g.consumers(v).len() == 1 && !g.outputs.iter().any(|o| o.value == v)
}

/// The operands of `v`'s producer when it is the binary `op` and `v` is private to the pattern.
pub(crate) fn private_operands(
    g: &Graph,
    v: ValueRef,
    op: BinaryOp,
) -> Option<(ValueRef, ValueRef)> {
    if g.node(v.node).op != Op::Binary(op) || !private(g, v) {
        return None;
    }
    Some((g.input(v.node, 0)?, g.input(v.node, 1)?))
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
