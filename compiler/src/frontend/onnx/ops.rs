//! ONNX node -> canonical op: the registry of op families. Each family file maps the op types
//! it lists; Constant is not among them (the importer turns it into a weight). Operands the IR
//! keeps as attributes (Clip bounds, Resize scales or sizes, Split sizes) must be constants; the
//! importer connects only the ports the op's arity allows, leaving those Constant nodes unused.
//! Operands that older opsets gave as attributes (Squeeze axes before 13, ...) come back as
//! [`Mapped::operands`] and become Constant nodes, so the IR has one form per op.

use super::attrs::Attrs;
use super::{conv, detection, elementwise, linalg, movement, pool, quant, reduce, resize};
use temblor_ir::{DType, Graph, Op, ValueRef, Weight};

/// What an op mapping may look at: the node's attributes and inputs, and the graph built so far.
pub(super) struct NodeCtx<'a> {
    pub op_type: &'a str,
    /// The model's default-domain opset.
    pub opset: i64,
    pub attrs: Attrs<'a>,
    /// Inputs by ONNX position; `None` for an omitted optional input.
    pub inputs: &'a [Option<ValueRef>],
    /// ONNX outputs, trailing omitted ones left out.
    pub n_outputs: usize,
    pub g: &'a Graph,
    /// Static extents of every input, when known at import.
    pub dims: &'a [Option<Vec<usize>>],
}

impl NodeCtx<'_> {
    pub fn present(&self, i: usize) -> bool {
        self.inputs.get(i).copied().flatten().is_some()
    }

    /// Static extents of input `i`, when known at import.
    pub fn dims(&self, i: usize) -> Option<&[usize]> {
        self.dims.get(i).and_then(|d| d.as_deref())
    }

    pub fn constant(&self, i: usize) -> Option<&Weight> {
        self.inputs
            .get(i)
            .copied()
            .flatten()
            .and_then(|v| self.g.constant(v))
    }
}

/// A mapped node: its op, and constant operands to connect at the given ports.
pub(super) struct Mapped {
    pub op: Op,
    pub operands: Vec<(usize, Weight)>,
}

impl From<Op> for Mapped {
    fn from(op: Op) -> Mapped {
        Mapped {
            op,
            operands: Vec::new(),
        }
    }
}

/// One op family: the ONNX op types it maps, and the mapping.
pub(super) struct Family {
    pub ops: &'static [&'static str],
    /// Per op type, the input ports that must be constants because the IR holds them as
    /// attributes (Clip's bounds). A model that computes them is refused with a clear error;
    /// the conformance runner binds such inputs of a test case as initializers.
    pub constant_inputs: &'static [(&'static str, &'static [usize])],
    pub map: fn(&NodeCtx) -> Result<Mapped, String>,
}

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
    op_type == "Constant" || FAMILIES.iter().any(|f| f.ops.contains(&op_type))
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
        .find(|(op, _)| *op == op_type)
        .map_or(&[], |(_, ports)| ports)
}

/// The error of a family asked for an op type outside its list.
pub(super) fn unlisted(ctx: &NodeCtx) -> String {
    format!("op {} is not in its family's list", ctx.op_type)
}

pub(super) fn non_negative(v: &[i64], what: &str) -> Result<Vec<usize>, String> {
    v.iter()
        .map(|&x| usize::try_from(x).map_err(|_| format!("{what} holds {x}, expected >= 0")))
        .collect()
}

pub(super) fn floats(w: &Weight) -> Result<Vec<f32>, String> {
    if let Some(v) = w.to_f32() {
        return Ok(v);
    }
    if let Some(v) = w.to_i64() {
        return Ok(v.into_iter().map(|x| x as f32).collect());
    }
    if w.dtype == DType::F64 {
        return Ok(w
            .data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect());
    }
    Err(format!(
        "a {} constant cannot be read as numbers here",
        w.dtype
    ))
}
