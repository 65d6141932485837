//! One IR node as the lowering sees it: its ONNX value names, input types and target.

use super::emit::Emitter;
use super::Target;
use temblor_frontend::onnx_proto::AttributeProto;
use temblor_ir::{DType, Node, TensorType};

/// One IR node to write: its value names (an omitted optional input is ""), and whether each
/// output is read by anything.
pub(super) struct Lower<'a> {
    pub node: &'a Node,
    pub ins: Vec<String>,
    pub in_types: Vec<Option<&'a TensorType>>,
    pub outs: Vec<String>,
    pub used: Vec<bool>,
    pub target: Target,
}

/// The dtype a value of `dtype` has in the file written for `target`: the onnxruntime file
/// holds float16 and bfloat16 values widened to float32 (see `lib.rs`).
fn file_dtype(target: Target, dtype: DType) -> DType {
    match (target, dtype) {
        (Target::OnnxRuntime, DType::F16 | DType::BF16) => DType::F32,
        _ => dtype,
    }
}

impl Lower<'_> {
    pub fn name(&self) -> &str {
        &self.node.name
    }

    pub fn dtype(&self, dtype: DType) -> DType {
        file_dtype(self.target, dtype)
    }

    /// The node as one ONNX op with the same inputs and outputs.
    pub fn same(&self, em: &mut Emitter, op_type: &str, attrs: Vec<AttributeProto>) {
        em.node(
            op_type,
            self.name(),
            self.ins.clone(),
            self.outs.clone(),
            attrs,
        );
    }

    /// The type of input `port`, which must be connected.
    pub fn in_type(&self, port: usize) -> Result<&TensorType, String> {
        self.in_types
            .get(port)
            .copied()
            .flatten()
            .ok_or_else(|| format!("input {port} is not connected"))
    }

    /// The outputs with unused trailing ones left out, for ops whose later outputs are
    /// optional (MaxPool's indices, LayerNormalization's statistics): TensorRT implements
    /// those ops only without them.
    pub fn optional_outs(&self) -> Vec<String> {
        let keep = self.used.iter().rposition(|&u| u).map_or(1, |i| i + 1);
        self.outs
            .iter()
            .zip(&self.used)
            .take(keep)
            .enumerate()
            .map(|(i, (name, &u))| {
                if u || i == 0 {
                    name.clone()
                } else {
                    String::new()
                }
            })
            .collect()
    }
}
