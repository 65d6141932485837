//! Types of Loop and If, which come from their bodies: each body is typed as a graph of its own
//! once its inputs take the types of the values the op feeds it. A loop-carried value may change
//! shape from one iteration to the next, so the carried types are widened (differing extents
//! become unknown) and the body typed again until they stop changing.

use temblor_ir::{Dim, Error, Graph, NodeId, Op, Result, Shape, TensorType};

/// How often a loop body is retyped before its carried types must have settled: each round can
/// only turn known extents into unknown ones, so the rank of the values bounds it.
const MAX_ROUNDS: usize = 8;

/// The output types of control-flow node `id`, typing its bodies in place; `None` for any other
/// node.
pub(crate) fn infer(g: &mut Graph, id: NodeId) -> Result<Option<Vec<TensorType>>> {
    let op = g.node(id).op.clone();
    let ins: Vec<Option<TensorType>> = g
        .inputs_of(id)
        .into_iter()
        .map(|v| v.map(|v| g.value_type(v).clone()))
        .collect();
    let what = g.describe(id);
    let fail = |e: String| Error::bad_input(format!("{what}: {e}"));
    match op {
        Op::Loop(a) => {
            let body = g.body_mut(a.body);
            let carried_in: Vec<TensorType> = ins
                .get(2..2 + a.carried)
                .ok_or_else(|| fail("fewer inputs than carried values".into()))?
                .iter()
                .map(|t| t.clone().ok_or("a carried value is not connected"))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| fail(e.into()))?;
            let mut carried = carried_in;
            for round in 0.. {
                for (k, ty) in carried.iter().enumerate() {
                    set_input(body, 2 + k, ty.clone());
                }
                for (k, ty) in ins.iter().enumerate().skip(2 + a.carried) {
                    if let Some(ty) = ty {
                        set_input(body, k, ty.clone());
                    }
                }
                crate::infer(body).map_err(|e| fail(format!("in its body: {e}")))?;
                let out = |k: usize| body.value_type(body.outputs[k].value).clone();
                let widened: Vec<TensorType> = carried
                    .iter()
                    .enumerate()
                    .map(|(k, ty)| widen(ty, &out(1 + k)))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(fail)?;
                if widened == carried {
                    break;
                }
                if round == MAX_ROUNDS {
                    return Err(fail("the carried values' types do not settle".into()));
                }
                carried = widened;
            }
            let mut types = carried;
            for k in 1 + a.carried..body.outputs.len() {
                let per = body.value_type(body.outputs[k].value).clone();
                let mut dims = vec![Dim::Unknown];
                dims.extend(per.shape.dims().iter().cloned());
                types.push(TensorType {
                    shape: Shape(dims),
                    ..per
                });
            }
            Ok(Some(types))
        }
        Op::If {
            then_branch,
            else_branch,
        } => {
            let mut branches = Vec::new();
            for b in [then_branch, else_branch] {
                let body = g.body_mut(b);
                for (k, ty) in ins.iter().enumerate().skip(1) {
                    if let Some(ty) = ty {
                        set_input(body, k - 1, ty.clone());
                    }
                }
                crate::infer(body).map_err(|e| fail(format!("in a branch: {e}")))?;
                let types: Vec<TensorType> = body
                    .outputs
                    .iter()
                    .map(|o| body.value_type(o.value).clone())
                    .collect();
                branches.push(types);
            }
            let types = branches[0]
                .iter()
                .zip(&branches[1])
                .map(|(a, b)| widen(a, b))
                .collect::<std::result::Result<_, _>>()
                .map_err(fail)?;
            Ok(Some(types))
        }
        _ => Ok(None),
    }
}

fn set_input(body: &mut Graph, k: usize, ty: TensorType) {
    if let Some(&input) = body.inputs.get(k) {
        body.node_mut(input).outputs[0].ty = ty;
    }
}

/// A type both `a` and `b` have: the same dtype and rank, with the extents they disagree on
/// unknown.
fn widen(a: &TensorType, b: &TensorType) -> std::result::Result<TensorType, String> {
    if a.dtype != b.dtype || a.shape.rank() != b.shape.rank() {
        return Err(format!(
            "a value is {} {} on one path and {} {} on another",
            a.dtype, a.shape, b.dtype, b.shape
        ));
    }
    let dims = a
        .shape
        .dims()
        .iter()
        .zip(b.shape.dims())
        .map(|(x, y)| if x == y { x.clone() } else { Dim::Unknown })
        .collect();
    Ok(TensorType {
        shape: Shape(dims),
        ..a.clone()
    })
}
