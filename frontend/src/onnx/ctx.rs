//! What an op mapping works with: the node's context (attributes, inputs, opset, static dims),
//! its result, the family record each family file declares, and small helpers the families
//! share. The registry (`ops.rs`) imports the families; the families import only this.

use super::attrs::Attrs;
use temblor_ir::{Graph, Op, ValueRef, Weight};

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
    /// attributes (Dropout's training mode). A model that computes them is refused with a clear
    /// error; `temblor conformance --bind-inputs` binds such inputs of a test case as
    /// initializers.
    pub constant_inputs: &'static [(&'static str, &'static [usize])],
    pub map: fn(&NodeCtx) -> Result<Mapped, String>,
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
