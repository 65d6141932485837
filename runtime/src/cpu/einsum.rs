//! Einsum. Two-operand equations that are a batched matrix product (every label is a batch,
//! row, column or contracted axis) run as one: the operands are permuted to `[batch, m, k]` and
//! `[batch, k, n]` and multiplied on `gemm`. Everything else (diagonals, one-sided sums, more
//! operands, broadcast ellipsis axes) runs on a direct loop over every label combination.

use super::buffers;
use super::isa::Isa;
use super::matmul::{batched, Dims, View};
use super::real::{dispatch_real, values, Real};
use super::shape_ops::transpose;
use super::strides;
use crate::RuntimeError;
use crate::Tensor;

/// Labels are letters (their ASCII code) or ellipsis axes (`ELLIPSIS + i`, aligned right).
const ELLIPSIS: usize = 128;

/// One operand's subscripts as written: letters, and where the ellipsis stands.
#[derive(Debug, PartialEq)]
struct Term {
    letters: Vec<u8>,
    /// The number of letters before the ellipsis, when there is one.
    ellipsis_at: Option<usize>,
}

fn parse_term(s: &str) -> Result<Term, String> {
    let (before, after) = match s.split_once("...") {
        Some((b, a)) => (b, Some(a)),
        None => (s, None),
    };
    let mut letters = Vec::new();
    for part in [Some(before), after].into_iter().flatten() {
        for c in part.bytes() {
            if !c.is_ascii_alphabetic() {
                return Err(format!("'{}' is not a subscript letter", c as char));
            }
            letters.push(c);
        }
    }
    Ok(Term {
        ellipsis_at: after.map(|_| before.len()),
        letters,
    })
}

/// The operand terms and the output term; an implicit output is the ellipsis, then the letters
/// used exactly once, in alphabetical order.
fn parse(equation: &str) -> Result<(Vec<Term>, Term), String> {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let inputs = lhs
        .split(',')
        .map(parse_term)
        .collect::<Result<Vec<_>, _>>()?;
    let output = match rhs {
        Some(r) => parse_term(r)?,
        None => {
            let once: Vec<u8> = (b'A'..=b'z')
                .filter(|c| {
                    inputs
                        .iter()
                        .map(|t| t.letters.iter().filter(|l| *l == c).count())
                        .sum::<usize>()
                        == 1
                })
                .collect();
            Term {
                ellipsis_at: inputs.iter().any(|t| t.ellipsis_at.is_some()).then_some(0),
                letters: once,
            }
        }
    };
    Ok((inputs, output))
}

/// A term's labels for an operand of `rank` axes (the output's ellipsis spans `width` axes).
fn labels(t: &Term, rank: usize, width: usize) -> Result<Vec<usize>, String> {
    let letters = t.letters.iter().map(|&c| c as usize);
    let Some(at) = t.ellipsis_at else {
        if rank != t.letters.len() {
            return Err(format!(
                "{} subscripts for an operand of rank {rank}",
                t.letters.len()
            ));
        }
        return Ok(letters.collect());
    };
    let e = rank
        .checked_sub(t.letters.len())
        .ok_or_else(|| format!("too many subscripts for an operand of rank {rank}"))?;
    let mut out: Vec<usize> = letters.clone().take(at).collect();
    out.extend((width - e..width).map(|i| ELLIPSIS + i));
    out.extend(letters.skip(at));
    Ok(out)
}

/// The resolved equation: each operand's labels, the output's, and every label's extent.
struct Plan {
    inputs: Vec<Vec<usize>>,
    output: Vec<usize>,
    extent: Vec<usize>,
}

fn plan(equation: &str, shapes: &[&[usize]]) -> Result<Plan, String> {
    let (terms, out_term) = parse(equation)?;
    if terms.len() != shapes.len() {
        return Err(format!(
            "equation '{equation}' has {} operands, {} inputs given",
            terms.len(),
            shapes.len()
        ));
    }
    let width = terms
        .iter()
        .zip(shapes)
        .map(|(t, s)| s.len().saturating_sub(t.letters.len()))
        .max()
        .unwrap_or(0);
    let inputs = terms
        .iter()
        .zip(shapes)
        .map(|(t, s)| labels(t, s.len(), width))
        .collect::<Result<Vec<_>, _>>()?;
    let out_rank = out_term.letters.len() + out_term.ellipsis_at.map_or(0, |_| width);
    let output = labels(&out_term, out_rank, width)?;
    let mut extent = vec![1; ELLIPSIS + width];
    let mut seen = vec![false; ELLIPSIS + width];
    for (ls, s) in inputs.iter().zip(shapes) {
        for (&l, &d) in ls.iter().zip(s.iter()) {
            match (seen[l], extent[l]) {
                (false, _) | (true, 1) => extent[l] = d,
                (true, e) if e == d || d == 1 => {}
                (true, e) => {
                    return Err(format!(
                        "subscript {} has extents {e} and {d}",
                        label_name(l)
                    ))
                }
            }
            seen[l] = true;
        }
    }
    if let Some(&l) = output.iter().find(|&&l| !seen[l] && l < ELLIPSIS) {
        return Err(format!(
            "output subscript {} appears in no operand",
            label_name(l)
        ));
    }
    Ok(Plan {
        inputs,
        output,
        extent,
    })
}

fn label_name(l: usize) -> String {
    if l < ELLIPSIS {
        (l as u8 as char).to_string()
    } else {
        "...".into()
    }
}

pub(crate) fn einsum(equation: &str, inputs: &[&Tensor], isa: Isa) -> Result<Tensor, RuntimeError> {
    let first = inputs
        .first()
        .ok_or_else(|| RuntimeError::bad_input("Einsum needs at least one input"))?;
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape.as_slice()).collect();
    let p = plan(equation, &shapes).map_err(RuntimeError::bad_input)?;
    dispatch_real!(first.dtype(), "Einsum", T => {
        let vals = inputs
            .iter()
            .map(|t| values::<T>(t, "an operand"))
            .collect::<Result<Vec<_>, _>>()?;
        match matmul_split(&p, &shapes) {
            Some(split) => as_matmul::<T>(&p, &split, inputs, isa),
            None => Ok(direct::<T>(&p, &shapes, &vals)),
        }
    })
}

/// The labels of a two-operand product by role, in output order (`k` in A's order).
struct Split {
    batch: Vec<usize>,
    m: Vec<usize>,
    n: Vec<usize>,
    k: Vec<usize>,
}

fn matmul_split(p: &Plan, shapes: &[&[usize]]) -> Option<Split> {
    let [a, b] = &p.inputs[..] else { return None };
    let distinct = |ls: &[usize]| ls.iter().enumerate().all(|(i, l)| !ls[..i].contains(l));
    if !distinct(a) || !distinct(b) || !distinct(&p.output) {
        return None;
    }
    let (o, ext) = (&p.output, &p.extent);
    let one_sided = |x: &[usize], y: &[usize]| x.iter().any(|l| !y.contains(l) && !o.contains(l));
    let missing = o.iter().any(|l| !a.contains(l) && !b.contains(l));
    let stretched = [(a, shapes[0]), (b, shapes[1])]
        .iter()
        .any(|(ls, s)| ls.iter().zip(s.iter()).any(|(&l, &d)| d != ext[l]));
    if one_sided(a, b) || one_sided(b, a) || missing || stretched {
        return None;
    }
    let pick = |f: &dyn Fn(usize) -> bool, from: &[usize]| {
        from.iter().copied().filter(|&l| f(l)).collect()
    };
    Some(Split {
        batch: pick(&|l| a.contains(&l) && b.contains(&l), o),
        m: pick(&|l| a.contains(&l) && !b.contains(&l), o),
        n: pick(&|l| b.contains(&l) && !a.contains(&l), o),
        k: pick(&|l| b.contains(&l) && !o.contains(&l), a),
    })
}

/// `t` with its axes (labelled `from`) in the order of `to`.
fn arrange(t: &Tensor, from: &[usize], to: &[usize]) -> Result<Tensor, RuntimeError> {
    let perm: Vec<usize> = to
        .iter()
        .map(|l| from.iter().position(|x| x == l).unwrap_or(0))
        .collect();
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(t.clone());
    }
    transpose(t, &perm)
}

fn as_matmul<T: Real>(
    p: &Plan,
    s: &Split,
    inputs: &[&Tensor],
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    let size = |ls: &[usize]| ls.iter().map(|&l| p.extent[l]).product::<usize>();
    let (count, m, n, k) = (size(&s.batch), size(&s.m), size(&s.n), size(&s.k));
    let cat = |parts: [&[usize]; 3]| parts.concat();
    let a = arrange(inputs[0], &p.inputs[0], &cat([&s.batch, &s.m, &s.k]))?;
    let b = arrange(inputs[1], &p.inputs[1], &cat([&s.batch, &s.k, &s.n]))?;
    // Every element is written: `batched` sets the output, not adds to it.
    let mut out = T::written(count * m * n);
    let a_views: Vec<View> = (0..count)
        .map(|i| View::row_major(k).at(i * m * k))
        .collect();
    let b_views: Vec<View> = (0..count)
        .map(|i| View::row_major(n).at(i * k * n))
        .collect();
    batched(
        Dims { m, n, k },
        values::<T>(&a, "A")?,
        &a_views,
        values::<T>(&b, "B")?,
        &b_views,
        &mut out,
        T::ONE,
        false,
        isa,
    );
    let order = cat([&s.batch, &s.m, &s.n]);
    let product = Tensor {
        shape: order.iter().map(|&l| p.extent[l]).collect(),
        data: T::wrap(out),
    };
    arrange(&product, &order, &p.output)
}

/// The sum over every label combination of the operands' product.
fn direct<T: Real>(p: &Plan, shapes: &[&[usize]], vals: &[&[T]]) -> Tensor {
    let mut order = p.output.clone();
    for ls in &p.inputs {
        for &l in ls {
            if !order.contains(&l) {
                order.push(l);
            }
        }
    }
    let extents: Vec<usize> = order.iter().map(|&l| p.extent[l]).collect();
    // Per operand (and last the output), the offset step of each label in `order`; a repeated
    // label walks the diagonal, a stretched one stays put.
    let step_of = |ls: &[usize], shape: &[usize]| -> Vec<usize> {
        let st = strides(shape);
        order
            .iter()
            .map(|&l| {
                ls.iter()
                    .zip(shape.iter().zip(&st))
                    .filter(|(&x, (&d, _))| x == l && d != 1)
                    .map(|(_, (_, &s))| s)
                    .sum()
            })
            .collect()
    };
    let out_shape: Vec<usize> = p.output.iter().map(|&l| p.extent[l]).collect();
    let mut steps: Vec<Vec<usize>> = p
        .inputs
        .iter()
        .zip(shapes)
        .map(|(ls, s)| step_of(ls, s))
        .collect();
    steps.push(step_of(&p.output, &out_shape));
    let mut out = buffers::zeros_of(out_shape.iter().product(), T::ZERO);
    let total: usize = extents.iter().product();
    let mut idx = vec![0; order.len()];
    let mut offs = vec![0; steps.len()];
    let (ins, o) = offs.split_at_mut(vals.len());
    for _ in 0..total {
        let prod = vals
            .iter()
            .zip(ins.iter())
            .fold(T::ONE, |acc, (v, &off)| acc * v[off]);
        out[o[0]] = out[o[0]] + prod;
        for ax in (0..order.len()).rev() {
            idx[ax] += 1;
            for (off, st) in ins.iter_mut().chain(o.iter_mut()).zip(&steps) {
                *off += st[ax];
            }
            if idx[ax] < extents[ax] {
                break;
            }
            for (off, st) in ins.iter_mut().chain(o.iter_mut()).zip(&steps) {
                *off -= st[ax] * extents[ax];
            }
            idx[ax] = 0;
        }
    }
    Tensor {
        shape: out_shape,
        data: T::wrap(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(eq: &str, inputs: &[Tensor]) -> Tensor {
        let refs: Vec<&Tensor> = inputs.iter().collect();
        einsum(eq, &refs, crate::cpu::isa::Isa::detect()).expect("einsum runs")
    }

    fn seq(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::f32(
            shape.to_vec(),
            (0..n).map(|i| i as f32 * 0.5 - 3.0).collect(),
        )
    }

    #[test]
    fn implicit_output_is_sorted_single_letters() {
        let (ins, out) = parse("ba,cb").expect("parses");
        assert_eq!(ins.len(), 2);
        assert_eq!(out.letters, b"ac".to_vec());
    }

    #[test]
    fn matmul_path_agrees_with_the_direct_loop() {
        let a = seq(&[2, 3, 4, 5]);
        let b = seq(&[2, 3, 6, 5]);
        let fast = run("bhqd,bhkd->bhqk", &[a.clone(), b.clone()]);
        let shapes = [a.shape.as_slice(), b.shape.as_slice()];
        let p = plan("bhqd,bhkd->bhqk", &shapes).expect("plans");
        assert!(matmul_split(&p, &shapes).is_some());
        let av = a.as_f32().expect("f32");
        let bv = b.as_f32().expect("f32");
        let slow = direct::<f32>(&p, &shapes, &[av, bv]);
        assert_eq!(fast.shape, vec![2, 3, 4, 6]);
        let (f, s) = (fast.as_f32().expect("f32"), slow.as_f32().expect("f32"));
        assert!(f
            .iter()
            .zip(s)
            .all(|(x, y)| (x - y).abs() <= 1e-3 * y.abs().max(1.0)));
    }

    #[test]
    fn diagonal_trace_and_ellipsis() {
        let x = seq(&[2, 3, 3]);
        let d = run("...ii->...i", std::slice::from_ref(&x));
        assert_eq!(d.shape, vec![2, 3]);
        let v = x.as_f32().expect("f32");
        assert_eq!(d.as_f32().expect("f32")[4], v[9 + 4]);
        let t = run("bii", std::slice::from_ref(&x));
        assert_eq!(t.shape, vec![2]);
        assert_eq!(t.as_f32().expect("f32")[0], v[0] + v[4] + v[8]);
    }
}
