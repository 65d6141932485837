//! Control flow: `while` loops and the tensor arrays they fill, and Paddle 2's
//! `conditional_block` / `select_input`. A loop is unrolled at import
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
        "select_input",
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
        "select_input" => {
            // Paddle 2's dy2static if/else: two conditional_blocks, then this picks the
            // output of the one that ran, X[Mask]; only the taken one was imported.
            let mask = c.input("Mask")?;
            let t = c
                .imp
                .static_value(mask)?
                .ok_or("the select_input mask depends on run-time values; not supported")?;
            let at = match t.data {
                temblor_runtime::TensorData::I32(ref v) if v.len() == 1 => v[0] as i64,
                temblor_runtime::TensorData::I64(ref v) if v.len() == 1 => v[0],
                temblor_runtime::TensorData::Bool(ref v) if v.len() == 1 => v[0] as i64,
                _ => return Err("the select_input mask is not one integer".into()),
            };
            let names = args(c.op, "X", false);
            let var = usize::try_from(at)
                .ok()
                .and_then(|k| names.get(k))
                .ok_or_else(|| format!("mask {at} picks none of {} inputs", names.len()))?;
            let v = c.imp.value(var)?;
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

/// Paddle 2's `conditional_block`: its sub-block runs when the condition holds (a scalar
/// condition, `is_scalar_condition`, or else every condition tensor non-empty). A condition
/// known at import imports the sub-block or nothing; one that depends on the data is refused
/// (dy2static pairs two of these with a `select_input`, which `pd_op.if` replaced in Paddle 3).
pub(super) fn conditional_block(imp: &mut Importer, op: &OpDesc) -> Result<(), Failure> {
    let attrs = Attrs(&op.attrs);
    let block = attrs.block("sub_block")?;
    let scalar = attrs.bool_or("is_scalar_condition", false)?;
    let mut run = true;
    for var in args(op, "Cond", false) {
        let v = imp.value(&var)?;
        let t = imp.static_value(v)?.ok_or_else(|| {
            format!(
                "the condition '{var}' depends on run-time values; a conditional_block is only \
                 supported with a condition known at import"
            )
        })?;
        run &= match (scalar, &t.data) {
            (true, temblor_runtime::TensorData::Bool(b)) if b.len() == 1 => b[0],
            (true, _) => return Err(format!("the condition '{var}' is not one boolean").into()),
            (false, _) => !t.is_empty(),
        };
    }
    if run {
        imp.block(block).map_err(Failure::Err)?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::super::files::{Files, Params};
    use super::super::proto::{
        op_desc::{Attr, Var},
        var_type::{LoDTensorDesc, TensorDesc, Type as VarKind},
        AttrType, BlockDesc, OpDesc, ProgramDesc, VarDesc, VarType,
    };

    fn var(name: &str, dtype: VarKind, dims: &[i64]) -> VarDesc {
        VarDesc {
            name: name.into(),
            r#type: VarType {
                r#type: VarKind::LodTensor as i32,
                lod_tensor: Some(LoDTensorDesc {
                    tensor: TensorDesc {
                        data_type: dtype as i32,
                        dims: dims.to_vec(),
                    },
                    lod_level: Some(0),
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn op(
        kind: &str,
        ins: &[(&str, &[&str])],
        outs: &[(&str, &[&str])],
        attrs: Vec<Attr>,
    ) -> OpDesc {
        let vars = |list: &[(&str, &[&str])]| {
            list.iter()
                .map(|(p, args)| Var {
                    parameter: p.to_string(),
                    arguments: args.iter().map(|a| a.to_string()).collect(),
                })
                .collect()
        };
        OpDesc {
            r#type: kind.into(),
            inputs: vars(ins),
            outputs: vars(outs),
            attrs,
            is_target: None,
        }
    }

    fn attr(name: &str, kind: AttrType, set: impl FnOnce(&mut Attr)) -> Attr {
        let mut a = Attr {
            name: name.into(),
            r#type: kind as i32,
            ..Default::default()
        };
        set(&mut a);
        a
    }

    /// Paddle 2's dy2static if/else: `conditional_block` for each branch, `select_input` to
    /// pick the result. With the condition a constant `value`, only the taken branch imports.
    fn if_else(value: f32) -> ProgramDesc {
        let block = |idx: i32, ops: Vec<OpDesc>| BlockDesc {
            idx,
            parent_idx: if idx == 0 { -1 } else { 0 },
            ops,
            ..Default::default()
        };
        let sub = |b: i32| attr("sub_block", AttrType::Block, |a| a.block_idx = Some(b));
        let scalar = || {
            attr("is_scalar_condition", AttrType::Boolean, |a| {
                a.b = Some(true)
            })
        };
        let main = vec![
            op(
                "feed",
                &[("X", &["feed"])],
                &[("Out", &["x"])],
                vec![attr("col", AttrType::Int, |a| a.i = Some(0))],
            ),
            op(
                "fill_constant",
                &[],
                &[("Out", &["cond"])],
                vec![
                    attr("dtype", AttrType::Int, |a| a.i = Some(VarKind::Bool as i32)),
                    attr("shape", AttrType::Longs, |a| a.longs = vec![1]),
                    attr("value", AttrType::Float, |a| a.f = Some(value)),
                ],
            ),
            op(
                "conditional_block",
                &[("Cond", &["cond"]), ("Input", &["x"])],
                &[("Out", &["y_true"])],
                vec![sub(1), scalar()],
            ),
            op(
                "logical_not",
                &[("X", &["cond"])],
                &[("Out", &["not_cond"])],
                vec![],
            ),
            op(
                "conditional_block",
                &[("Cond", &["not_cond"]), ("Input", &["x"])],
                &[("Out", &["y_false"])],
                vec![sub(2), scalar()],
            ),
            op(
                "cast",
                &[("X", &["cond"])],
                &[("Out", &["mask"])],
                vec![attr("out_dtype", AttrType::Int, |a| {
                    a.i = Some(VarKind::Int32 as i32)
                })],
            ),
            op(
                "select_input",
                &[("X", &["y_false", "y_true"]), ("Mask", &["mask"])],
                &[("Out", &["out"])],
                vec![],
            ),
            op(
                "fetch",
                &[("X", &["out"])],
                &[("Out", &["fetch"])],
                vec![attr("col", AttrType::Int, |a| a.i = Some(0))],
            ),
        ];
        let mut b0 = block(0, main);
        b0.vars = vec![
            var("x", VarKind::Fp32, &[1, 4]),
            var("cond", VarKind::Bool, &[1]),
            var("not_cond", VarKind::Bool, &[1]),
            var("mask", VarKind::Int32, &[1]),
            var("y_true", VarKind::Fp32, &[1, 4]),
            var("y_false", VarKind::Fp32, &[1, 4]),
            var("out", VarKind::Fp32, &[1, 4]),
        ];
        ProgramDesc {
            blocks: vec![
                b0,
                block(
                    1,
                    vec![op(
                        "relu",
                        &[("X", &["x"])],
                        &[("Out", &["y_true"])],
                        vec![],
                    )],
                ),
                block(
                    2,
                    vec![op(
                        "tanh",
                        &[("X", &["x"])],
                        &[("Out", &["y_false"])],
                        vec![],
                    )],
                ),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn a_static_if_else_imports_the_taken_branch_and_its_result() {
        let files = Files {
            program: "if_else.pdmodel".into(),
            params: Params::Missing,
        };
        for (value, taken, other) in [(1.0, "Relu", "Tanh"), (0.0, "Tanh", "Relu")] {
            let g = super::super::import(&if_else(value), &files, &[]).unwrap();
            let counts = g.op_counts();
            assert!(counts.iter().any(|(op, _)| op == taken), "{counts:?}");
            assert!(!counts.iter().any(|(op, _)| op == other), "{counts:?}");
            let out = g.outputs[0].value;
            assert_eq!(
                g.node(out.node).op.name(),
                taken,
                "select_input picks the branch that ran"
            );
        }
    }
}
