//! What a kernel family receives: a step's inputs by port. Every family file imports this
//! module, which imports only the GEMM packing, and only `execute.rs` imports the families.

use super::conv_gemm::PackedWeights;
use crate::RuntimeError;
use crate::Tensor;
use temblor_ir::Op;

/// A step's inputs by port (`None` for an omitted optional one), how many outputs the node
/// declares, and a convolution's weights as the plan packed them.
pub(crate) struct Args<'a> {
    pub ins: &'a [Option<&'a Tensor>],
    pub outputs: usize,
    pub packed: Option<&'a PackedWeights>,
}

impl<'a> Args<'a> {
    /// The input at `port`, which the op requires.
    pub fn required(&self, port: usize) -> Result<&'a Tensor, RuntimeError> {
        self.optional(port).ok_or_else(|| {
            RuntimeError::internal(format!("required input {port} is not connected"))
        })
    }

    pub fn optional(&self, port: usize) -> Option<&'a Tensor> {
        self.ins.get(port).copied().flatten()
    }

    /// Every connected input, in port order, all required.
    pub fn all(&self) -> Result<Vec<&'a Tensor>, RuntimeError> {
        (0..self.ins.len()).map(|p| self.required(p)).collect()
    }
}

/// The error of a family kernel asked for an op outside its family.
pub(crate) fn not_in_family(op: &Op, family: &str) -> RuntimeError {
    RuntimeError::internal(format!("{} is not a {family} op", op.name()))
}
