//! Rules of MatMul (numpy semantics), Gemm and Einsum.

use super::dims;
use temblor_ir::{Dim, Shape, TensorType};

fn same_dtype(a: &TensorType, b: &TensorType) -> Result<(), String> {
    if a.dtype == b.dtype {
        Ok(())
    } else {
        Err(format!("operands are {} and {}", a.dtype, b.dtype))
    }
}

/// Broadcast of two batch shapes, aligned from the right.
fn broadcast_all(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, String> {
    let r = a.len().max(b.len());
    let one = Dim::Known(1);
    let at = |s: &[Dim], i: usize| s.get((i + s.len()).wrapping_sub(r)).unwrap_or(&one).clone();
    (0..r)
        .map(|i| dims::broadcast(&at(a, i), &at(b, i)))
        .collect()
}

pub(super) fn matmul(a: &TensorType, b: &TensorType) -> Result<TensorType, String> {
    same_dtype(a, b)?;
    let (ad, bd) = (a.shape.dims(), b.shape.dims());
    let (ra, rb) = (ad.len(), bd.len());
    if ra == 0 || rb == 0 {
        return Err(format!(
            "operands must have rank >= 1, got {} and {}",
            a.shape, b.shape
        ));
    }
    let k_a = &ad[ra - 1];
    let k_b = &bd[rb.saturating_sub(2)];
    dims::unify(k_a, k_b).map_err(|e| format!("inner dimensions differ: {e}"))?;
    let mut out = broadcast_all(&ad[..ra.saturating_sub(2)], &bd[..rb.saturating_sub(2)])
        .map_err(|e| format!("batch dimensions: {e}"))?;
    if ra > 1 {
        out.push(ad[ra - 2].clone());
    }
    if rb > 1 {
        out.push(bd[rb - 1].clone());
    }
    Ok(TensorType::new(a.dtype, Shape(out)))
}

pub(super) fn gemm(
    a: &TensorType,
    b: &TensorType,
    trans_a: bool,
    trans_b: bool,
) -> Result<TensorType, String> {
    same_dtype(a, b)?;
    let (ad, bd) = match (a.shape.dims(), b.shape.dims()) {
        (ad @ [_, _], bd @ [_, _]) => (ad, bd),
        _ => {
            return Err(format!(
                "operands must be 2-D, got {} and {}",
                a.shape, b.shape
            ))
        }
    };
    let (m, k) = if trans_a { (1, 0) } else { (0, 1) };
    let (kb, n) = if trans_b { (1, 0) } else { (0, 1) };
    dims::unify(&ad[k], &bd[kb]).map_err(|e| format!("inner dimensions differ: {e}"))?;
    Ok(TensorType::new(
        a.dtype,
        Shape(vec![ad[m].clone(), bd[n].clone()]),
    ))
}

/// One operand's subscripts: its letters and whether it has an ellipsis, and where.
struct Term {
    letters: Vec<u8>,
    ellipsis_at: Option<usize>,
}

fn term(s: &str) -> Result<Term, String> {
    let (before, after) = match s.split_once("...") {
        Some((b, a)) => (b, Some(a)),
        None => (s, None),
    };
    let letters: Vec<u8> = before.bytes().chain(after.unwrap_or("").bytes()).collect();
    if let Some(c) = letters.iter().find(|c| !c.is_ascii_alphabetic()) {
        return Err(format!("'{}' is not a subscript letter", *c as char));
    }
    Ok(Term {
        letters,
        ellipsis_at: after.map(|_| before.len()),
    })
}

/// The output of an Einsum: letters keep the extent their operands give them (a 1 yields to
/// another extent), ellipsis axes broadcast; an implicit output is the ellipsis, then the
/// letters used once, in alphabetical order.
pub(super) fn einsum(equation: &str, ins: &[&TensorType]) -> Result<TensorType, String> {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let terms = lhs.split(',').map(term).collect::<Result<Vec<_>, _>>()?;
    if terms.len() != ins.len() {
        return Err(format!(
            "equation '{equation}' has {} operands, the node {} inputs",
            terms.len(),
            ins.len()
        ));
    }
    let first = ins.first().ok_or("Einsum has no inputs")?;
    let mut letter_dim: Vec<Option<Dim>> = vec![None; 128];
    let mut ellipsis: Vec<Dim> = Vec::new();
    for (t, x) in terms.iter().zip(ins) {
        same_dtype(first, x)?;
        let d = x.shape.dims();
        let e = match t.ellipsis_at {
            Some(_) => d.len().checked_sub(t.letters.len()),
            None => (d.len() == t.letters.len()).then_some(0),
        }
        .ok_or_else(|| format!("subscripts do not fit an operand of shape {}", x.shape))?;
        let at = t.ellipsis_at.unwrap_or(t.letters.len());
        ellipsis = broadcast_all(&ellipsis, &d[at..at + e])?;
        for (i, &c) in t.letters.iter().enumerate() {
            let dim = &d[if i < at { i } else { i + e }];
            let slot = &mut letter_dim[c as usize];
            *slot = Some(match slot.take() {
                None => dim.clone(),
                Some(prev) => dims::broadcast(&prev, dim)
                    .map_err(|err| format!("subscript {}: {err}", c as char))?,
            });
        }
    }
    let out = match rhs {
        Some(r) => term(r)?,
        None => Term {
            letters: (b'A'..=b'z')
                .filter(|c| {
                    terms
                        .iter()
                        .flat_map(|t| &t.letters)
                        .filter(|l| *l == c)
                        .count()
                        == 1
                })
                .collect(),
            ellipsis_at: terms.iter().any(|t| t.ellipsis_at.is_some()).then_some(0),
        },
    };
    let mut shape = Vec::new();
    for (i, &c) in out.letters.iter().enumerate() {
        if out.ellipsis_at == Some(i) {
            shape.extend(ellipsis.iter().cloned());
        }
        let dim = letter_dim[c as usize]
            .clone()
            .ok_or_else(|| format!("output subscript {} appears in no operand", c as char))?;
        shape.push(dim);
    }
    if out.ellipsis_at == Some(out.letters.len()) {
        shape.extend(ellipsis);
    }
    Ok(TensorType::new(first.dtype, Shape(shape)))
}
