//! Combining dimensions: broadcasting, unification of dims that must be equal, axes.

use temblor_ir::Dim;

/// numpy broadcasting of one aligned pair. A symbol against a size other than 1 must be that
/// size for the model to be valid, so the known size wins.
pub(super) fn broadcast(a: &Dim, b: &Dim) -> Result<Dim, String> {
    Ok(match (a, b) {
        (Dim::Known(x), Dim::Known(y)) if x == y => Dim::Known(*x),
        (Dim::Known(1), other) | (other, Dim::Known(1)) => other.clone(),
        (Dim::Known(x), Dim::Known(y)) => {
            return Err(format!("sizes {x} and {y} do not broadcast"))
        }
        (Dim::Known(x), _) | (_, Dim::Known(x)) => Dim::Known(*x),
        (Dim::Symbol(s), Dim::Symbol(t)) if s == t => Dim::Symbol(s.clone()),
        _ => Dim::Unknown,
    })
}

/// Two dims that the op requires to be equal.
pub(super) fn unify(a: &Dim, b: &Dim) -> Result<Dim, String> {
    Ok(match (a, b) {
        (Dim::Known(x), Dim::Known(y)) if x != y => {
            return Err(format!("sizes {x} and {y} differ"))
        }
        (Dim::Known(x), _) | (_, Dim::Known(x)) => Dim::Known(*x),
        (Dim::Symbol(s), _) | (_, Dim::Symbol(s)) => Dim::Symbol(s.clone()),
        _ => Dim::Unknown,
    })
}

/// An ONNX axis (negative counts from the end) as an index below `rank`.
pub(super) fn axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}
