//! The registry of Paddle op types: each family file lists the op types it maps and one function
//! that maps them. ops_lib operators (detection ops with no canonical equivalent) are recognized
//! through `temblor_ir::LibOp`; any other op imports as an opaque node.

use super::ctx::{Ctx, Family, Res};
use super::{control, conv, creation, detection, linalg, math, movement};
use temblor_ir::{Op, ValueRef};

const FAMILIES: [&Family; 7] = [
    &conv::FAMILY,
    &math::FAMILY,
    &linalg::FAMILY,
    &movement::FAMILY,
    &creation::FAMILY,
    &detection::FAMILY,
    &control::FAMILY,
];

/// Ops the importer handles itself rather than mapping: graph inputs, outputs and loops.
const STRUCTURAL: [&str; 5] = [
    "feed",
    "fetch",
    "while",
    "conditional_block",
    super::pir::IF_ELSE,
];

fn family(op_type: &str) -> Option<&'static Family> {
    FAMILIES.into_iter().find(|f| f.ops.contains(&op_type))
}

/// Whether the importer maps `op_type` (or handles it itself, as the structural ops).
pub(super) fn supported(op_type: &str) -> bool {
    STRUCTURAL.contains(&op_type) || family(op_type).is_some() || temblor_ir::LibOp::known(op_type)
}

/// An op with no mapping, found at `at`: one [`Op::Opaque`] node reading every argument of its
/// input parameters and writing every argument of its output parameters, in the program's
/// order, so the model can still be inspected and viewed; [`temblor_ir::check_supported`]
/// refuses it after import.
pub(super) fn opaque(ctx: &mut Ctx, at: String) -> Res {
    let op = ctx.op;
    let mut inputs = Vec::new();
    for var in op.inputs.iter().flat_map(|v| &v.arguments) {
        inputs.push(Some(ctx.imp.value(var)?));
    }
    let vars: Vec<&String> = op.outputs.iter().flat_map(|v| &v.arguments).collect();
    let declared = vars
        .iter()
        .map(|var| ctx.imp.declared_type(var).ok())
        .collect();
    let opaque = Op::Opaque {
        domain: String::new(),
        op_type: op.r#type.clone(),
        at,
        declared,
    };
    let id = ctx.node(opaque, &inputs, vars.len());
    let mut port = 0;
    for param in &op.outputs {
        let n = param.arguments.len();
        let values: Vec<ValueRef> = (port..port + n).map(|p| ValueRef::new(id, p)).collect();
        ctx.bind_all(&param.parameter, &values)?;
        port += n;
    }
    Ok(())
}

pub(super) fn map(ctx: &mut Ctx) -> Res {
    match family(ctx.op_type()) {
        Some(f) => (f.map)(ctx),
        None => detection::library_op(ctx),
    }
}
