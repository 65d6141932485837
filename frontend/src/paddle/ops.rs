//! The registry of Paddle op types: each family file lists the op types it maps and one function
//! that maps them. ops_lib operators (detection ops with no canonical equivalent) are recognized
//! through `temblor_ir::LibOp`.

use super::ctx::{Ctx, Family, Res};
use super::proto::ProgramDesc;
use super::{control, conv, creation, detection, linalg, math, movement};

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
const STRUCTURAL: [&str; 3] = ["feed", "fetch", "while"];

fn family(op_type: &str) -> Option<&'static Family> {
    FAMILIES.into_iter().find(|f| f.ops.contains(&op_type))
}

fn supported(op_type: &str) -> bool {
    STRUCTURAL.contains(&op_type) || family(op_type).is_some() || temblor_ir::LibOp::known(op_type)
}

/// Every op type of every block the importer cannot map, each with where it first occurs.
pub(super) fn check_supported(program: &ProgramDesc) -> Result<(), String> {
    let mut missing: Vec<(String, String)> = Vec::new();
    for block in &program.blocks {
        for (index, op) in block.ops.iter().enumerate() {
            let t = &op.r#type;
            if !supported(t) && !missing.iter().any(|(m, _)| m == t) {
                missing.push((t.clone(), format!("block {}, op {index}", block.idx)));
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing
        .iter()
        .map(|(op, at)| format!("{op} (first at {at})"))
        .collect();
    Err(format!("unsupported Paddle ops: {}", list.join(", ")))
}

pub(super) fn map(ctx: &mut Ctx) -> Res {
    match family(ctx.op_type()) {
        Some(f) => (f.map)(ctx),
        None => detection::library_op(ctx),
    }
}
