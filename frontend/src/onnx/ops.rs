//! ONNX node -> canonical op: the registry of op families. Each family file maps the op types
//! it lists; Constant is not among them (the importer turns it into a weight), nor are the
//! control-flow ops (`control.rs` unrolls them into the importer's graph). Operands the IR
//! keeps as attributes (Resize scales or sizes, Split sizes) must be constants; the
//! importer connects only the ports the op's arity allows, leaving those Constant nodes unused.
//! Operands that older opsets gave as attributes (Squeeze axes before 13, ...) come back as
//! [`Mapped::operands`] and become Constant nodes, so the IR has one form per op.

use super::ctx::{Family, Mapped, NodeCtx};
use super::{conv, detection, elementwise, expand, linalg, movement, pool, quant, reduce, resize};

const FAMILIES: [Family; 9] = [
    conv::FAMILY,
    resize::FAMILY,
    elementwise::FAMILY,
    movement::FAMILY,
    pool::FAMILY,
    reduce::FAMILY,
    linalg::FAMILY,
    detection::FAMILY,
    quant::FAMILY,
];

/// Whether a default-domain op type has a mapping.
pub(super) fn supported(op_type: &str) -> bool {
    op_type == "Constant"
        || expand::OPS.contains(&op_type)
        || super::control::OPS.contains(&op_type)
        || FAMILIES.iter().any(|f| f.ops.contains(&op_type))
}

pub(super) fn map(ctx: &NodeCtx) -> Result<Mapped, String> {
    let family = FAMILIES
        .iter()
        .find(|f| f.ops.contains(&ctx.op_type))
        .ok_or_else(|| format!("op {} has no mapping", ctx.op_type))?;
    (family.map)(ctx)
}

/// The input ports of a default-domain op type that must be constants.
pub fn constant_inputs(op_type: &str) -> &'static [usize] {
    FAMILIES
        .iter()
        .flat_map(|f| f.constant_inputs)
        .chain(super::control::CONSTANT_INPUTS)
        .find(|(op, _)| *op == op_type)
        .map_or(&[], |(_, ports)| ports)
}
