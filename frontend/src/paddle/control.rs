//! Control flow: `while` loops and the tensor arrays they fill. A loop is unrolled at import:
//! its condition is evaluated at compile time (`temblor_infer::evaluate`) before each pass through the
//! sub-block, whose ops then write into the enclosing scope as Paddle's own executor does. The
//! loops PaddleDetection exports iterate over the images of a batch or the levels of a feature
//! pyramid, so their trip counts are static once the input sizes are.

use super::ctx::{Ctx, Family, Res};
use super::proto::OpDesc;
use super::{args, attrs::Attrs, describe_input_dims, Failure, Importer};
use temblor_ir::{Op, ValueRef};

pub(super) const FAMILY: Family = Family {
    ops: &[
        "write_to_array",
        "read_from_array",
        "lod_array_length",
        "tensor_array_to_tensor",
    ],
    map,
};

/// A loop that runs longer than this is not a structural loop an exporter unrolls.
const MAX_TRIPS: usize = 1024;

fn map(c: &mut Ctx) -> Res {
    match c.op_type() {
        "write_to_array" => {
            let x = c.input("X")?;
            let i = index(c, "I")?;
            let array = output_var(c, "Out")?;
            let slots = c.imp.arrays.entry(array).or_default();
            if slots.len() <= i {
                slots.resize(i + 1, None);
            }
            slots[i] = Some(x);
            Ok(())
        }
        "read_from_array" => {
            let i = index(c, "I")?;
            let array = input_var(c, "X")?;
            let v = c
                .imp
                .arrays
                .get(&array)
                .and_then(|a| a.get(i).copied().flatten())
                .ok_or_else(|| format!("array '{array}' has no element {i}"))?;
            c.bind("Out", v)
        }
        "lod_array_length" => {
            let array = input_var(c, "X")?;
            let n = c.imp.arrays.get(&array).map_or(0, Vec::len) as i64;
            let v = c.const_i64(vec![1], &[n]);
            c.bind("Out", v)
        }
        _ => array_to_tensor(c),
    }
}

fn input_var(c: &Ctx, param: &str) -> Res<String> {
    args(c.op, param, false)
        .into_iter()
        .next()
        .ok_or_else(|| format!("input '{param}' is missing").into())
}

fn output_var(c: &Ctx, param: &str) -> Res<String> {
    args(c.op, param, true)
        .into_iter()
        .next()
        .ok_or_else(|| format!("output '{param}' is missing").into())
}

/// An array index, which must be static.
fn index(c: &mut Ctx, param: &str) -> Res<usize> {
    let v = c.input(param)?;
    let t = c.imp.static_value(v)?.ok_or_else(|| {
        format!(
            "the array index '{param}' is computed at run time; only static indices are supported"
        )
    })?;
    match t.as_i64() {
        Some([i]) if *i >= 0 => Ok(*i as usize),
        _ => Err(format!("the array index '{param}' is not one non-negative int64").into()),
    }
}

/// Stacks (or concatenates) the array's elements along `axis`.
fn array_to_tensor(c: &mut Ctx) -> Res {
    let array = input_var(c, "X")?;
    let elements: Vec<ValueRef> = c
        .imp
        .arrays
        .get(&array)
        .map(|a| a.iter().copied().collect::<Option<Vec<_>>>())
        .unwrap_or_default()
        .ok_or_else(|| format!("array '{array}' has unwritten elements"))?;
    if elements.is_empty() {
        return Err(format!("array '{array}' is empty").into());
    }
    let axis = c.attrs.int_or("axis", 0)?;
    let parts: Vec<ValueRef> = if c.attrs.bool_or("use_stack", false)? {
        let axes = c.const_i64(vec![1], &[axis]);
        elements
            .iter()
            .map(|&e| c.add(Op::Unsqueeze, &[e, axes]))
            .collect()
    } else {
        elements
    };
    let out = c.add(Op::Concat { axis }, &parts);
    c.bind("Out", out)
}

pub(super) fn unroll(imp: &mut Importer, op: &OpDesc) -> Result<(), Failure> {
    let attrs = Attrs(&op.attrs);
    let block = attrs.block("sub_block")?;
    let cond = args(op, "Condition", false)
        .into_iter()
        .next()
        .ok_or("input 'Condition' is missing")?;
    for _ in 0..MAX_TRIPS {
        let v = imp.value(&cond)?;
        let mut value = imp.static_value(v)?;
        if value.is_none() && imp.fix_batch() {
            value = imp.static_value(v)?;
        }
        let value = value.ok_or_else(|| {
            format!(
                "the loop condition '{cond}' depends on run-time values, so the loop cannot be \
                 unrolled (inputs: {})",
                describe_input_dims(imp)
            )
        })?;
        match value.data {
            temblor_runtime::TensorData::Bool(ref b) if b.len() == 1 => {
                if !b[0] {
                    return Ok(());
                }
            }
            _ => return Err(format!("the loop condition '{cond}' is not one boolean").into()),
        }
        imp.block(block).map_err(Failure::Err)?;
    }
    Err(format!("the loop ran {MAX_TRIPS} times without its condition turning false").into())
}
