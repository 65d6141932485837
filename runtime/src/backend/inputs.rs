//! The graph inputs a plan takes, and a run's inputs matched to them, for every backend.

use super::InputSpec;
use crate::{RuntimeError, Tensor};

/// `given` in the order of `specs`, each checked against its spec: an unknown, repeated or
/// missing name, or a tensor of another dtype or shape than declared, is a bad input.
pub(crate) fn match_inputs<'a>(
    specs: &[InputSpec],
    given: &'a [(String, Tensor)],
) -> Result<Vec<&'a Tensor>, RuntimeError> {
    let expected = || {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        format!("the graph's inputs are [{}]", names.join(", "))
    };
    let mut found: Vec<Option<&Tensor>> = vec![None; specs.len()];
    for (name, t) in given {
        let i = specs.iter().position(|s| &s.name == name).ok_or_else(|| {
            RuntimeError::bad_input(format!("unknown input '{name}'; {}", expected()))
        })?;
        if found[i].replace(t).is_some() {
            return Err(RuntimeError::bad_input(format!(
                "input '{name}' is given twice"
            )));
        }
        check_input(&specs[i], t)?;
    }
    let missing: Vec<&str> = specs
        .iter()
        .zip(&found)
        .filter(|(_, t)| t.is_none())
        .map(|(s, _)| s.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(RuntimeError::bad_input(format!(
            "missing input(s) [{}]; {}",
            missing.join(", "),
            expected()
        )));
    }
    Ok(found.into_iter().flatten().collect())
}

fn check_input(spec: &InputSpec, t: &Tensor) -> Result<(), RuntimeError> {
    let declared = || {
        let dims: Vec<String> = spec.dims.iter().map(|d| d.to_string()).collect();
        format!("{} [{}]", spec.dtype, dims.join(", "))
    };
    let fits = t.shape.len() == spec.dims.len()
        && t.shape
            .iter()
            .zip(&spec.dims)
            .all(|(&n, d)| d.known().is_none_or(|k| k == n));
    if t.dtype() != spec.dtype || !fits {
        return Err(RuntimeError::bad_input(format!(
            "input '{}' is {} {:?}, the graph expects {}",
            spec.name,
            t.dtype(),
            t.shape,
            declared()
        )));
    }
    let count: usize = t.shape.iter().product();
    if t.len() != count {
        return Err(RuntimeError::bad_input(format!(
            "input '{}' has shape {:?} ({count} elements) but holds {} elements",
            spec.name,
            t.shape,
            t.len()
        )));
    }
    Ok(())
}

/// The inputs of `g`, in the order the CPU plan lists them (its topological order).
pub(crate) fn input_specs(g: &temblor_ir::Graph) -> Result<Vec<InputSpec>, RuntimeError> {
    let order = g.topo_order().map_err(|n| {
        RuntimeError::internal(format!("graph has a cycle through {}", g.describe(n)))
    })?;
    Ok(order
        .into_iter()
        .filter(|&id| matches!(g.node(id).op, temblor_ir::Op::Input { .. }))
        .map(|id| {
            let out = &g.node(id).outputs[0];
            InputSpec {
                name: out.name.clone(),
                dtype: out.ty.dtype,
                dims: out.ty.shape.dims().to_vec(),
            }
        })
        .collect())
}
