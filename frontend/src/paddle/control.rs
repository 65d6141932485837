//! Control flow: `while` loops and the tensor arrays they fill. A loop is unrolled at import
//! while its condition is known: it is evaluated at compile time (`temblor_infer::evaluate`)
//! before each pass through the sub-block, whose ops then write into the enclosing scope as
//! Paddle's own executor does. The loops PaddleDetection exports iterate over the images of a
//! batch or the levels of a feature pyramid, so their trip counts are static once the input
//! sizes are. A condition that depends on the data makes the rest of the loop an IR Loop
//! (bodies.rs).

use super::ctx::{Ctx, Family, Res};
use super::proto::OpDesc;
use super::{args, attrs::Attrs, Failure, Importer};
use temblor_ir::{BinaryOp, Op, ValueRef};

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

/// A tensor array as the import knows it.
pub(super) enum Array {
    /// Elements by index, each known at import.
    Slots(Vec<Option<ValueRef>>),
    /// Inside the body of a loop decided at run time: the array had `base` elements before the
    /// loop, and each iteration appends one at its end (`index`, the length the body read).
    Appending {
        base: usize,
        index: Option<ValueRef>,
        value: Option<ValueRef>,
    },
    /// After such a loop: every element, stacked on a new axis 0.
    Stacked(ValueRef),
}

fn map(c: &mut Ctx) -> Res {
    match c.op_type() {
        "write_to_array" => {
            let x = c.input("X")?;
            let array = output_var(c, "Out")?;
            if let Some(&Array::Appending {
                index, ref value, ..
            }) = c.imp.arrays.get(&array)
            {
                let written = value.is_some();
                let at = c.input("I")?;
                if index != Some(at) || written {
                    return Err(format!(
                        "array '{array}' is written inside a loop decided at run time other than \
                         by one append per iteration"
                    )
                    .into());
                }
                if let Some(Array::Appending { value, .. }) = c.imp.arrays.get_mut(&array) {
                    *value = Some(x);
                }
                return Ok(());
            }
            let i = index(c, "I")?;
            match c
                .imp
                .arrays
                .entry(array.clone())
                .or_insert(Array::Slots(Vec::new()))
            {
                Array::Slots(slots) => {
                    if slots.len() <= i {
                        slots.resize(i + 1, None);
                    }
                    slots[i] = Some(x);
                    Ok(())
                }
                _ => Err(format!(
                    "array '{array}' was filled by a loop decided at run time; writing into it \
                     is not supported"
                )
                .into()),
            }
        }
        "read_from_array" => {
            let i = index(c, "I")?;
            let array = input_var(c, "X")?;
            let v = match c.imp.arrays.get(&array) {
                Some(Array::Slots(slots)) => slots.get(i).copied().flatten(),
                Some(Array::Stacked(all)) => {
                    let all = *all;
                    let at = c.const_i64(vec![], &[i as i64]);
                    Some(c.add(Op::Gather { axis: 0 }, &[all, at]))
                }
                _ => None,
            }
            .ok_or_else(|| format!("array '{array}' has no element {i} known at import"))?;
            c.bind("Out", v)
        }
        "lod_array_length" => {
            let array = input_var(c, "X")?;
            let v = match c.imp.arrays.get(&array) {
                None => c.const_i64(vec![1], &[0]),
                Some(Array::Slots(slots)) => {
                    let n = slots.len() as i64;
                    c.const_i64(vec![1], &[n])
                }
                Some(Array::Stacked(all)) => {
                    let all = *all;
                    c.add(
                        Op::Shape {
                            start: 0,
                            end: Some(1),
                        },
                        &[all],
                    )
                }
                Some(Array::Appending { base, .. }) => {
                    let base = *base as i64;
                    let iteration = c.imp.iteration.ok_or("an append outside a loop body")?;
                    let base = c.const_i64(vec![1], &[base]);
                    let n = c.add(Op::Binary(BinaryOp::Add), &[base, iteration]);
                    if let Some(Array::Appending { index, .. }) = c.imp.arrays.get_mut(&array) {
                        *index = Some(n);
                    }
                    n
                }
            };
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
    let axis = c.attrs.int_or("axis", 0)?;
    let stack = c.attrs.bool_or("use_stack", false)?;
    let elements: Vec<ValueRef> = match c.imp.arrays.get(&array) {
        Some(Array::Slots(slots)) => slots
            .iter()
            .copied()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("array '{array}' has unwritten elements"))?,
        Some(Array::Stacked(all)) => {
            let all = *all;
            let out = match (stack, axis) {
                (true, 0) => all,
                // Concatenated on axis 0: the stacking axis merged into the next one.
                (false, 0) => {
                    let rest = c.add(
                        Op::Shape {
                            start: 2,
                            end: None,
                        },
                        &[all],
                    );
                    let merged = c.const_i64(vec![1], &[-1]);
                    let shape = c.add(Op::Concat { axis: 0 }, &[merged, rest]);
                    c.add(Op::Reshape { allowzero: false }, &[all, shape])
                }
                _ => {
                    return Err(format!(
                        "array '{array}' was filled by a loop decided at run time; only its \
                         elements along axis 0 are supported"
                    )
                    .into())
                }
            };
            return c.bind("Out", out);
        }
        _ => Vec::new(),
    };
    if elements.is_empty() {
        return Err(format!("array '{array}' is empty").into());
    }
    let parts: Vec<ValueRef> = if stack {
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
        if value.is_none() {
            // A loop over the images of a batch is static once the batch is.
            let fixed = imp.fix_batch();
            if !fixed.is_empty() {
                value = imp.static_value(v)?;
                if value.is_some() {
                    imp.keep_batch(&fixed);
                } else {
                    imp.open_batch(&fixed);
                }
            }
        }
        // The rest of the loop is decided at run time: it becomes a Loop with the block as its
        // body.
        let Some(value) = value else {
            return super::bodies::run_time_loop(imp, op, block, &cond);
        };
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
