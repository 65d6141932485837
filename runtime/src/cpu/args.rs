//! What a step's kernel receives: its inputs by port, and what the plan worked out for the step
//! when it was prepared. `execute.rs` unpacks it for most kernels; the few that read a variable
//! run of optional inputs (Slice, Pad) take it whole.

use super::bf16_conv::Bf16Conv;
use super::byte_table::ByteTable;
use super::control::Control;
use super::conv::ConvWeights;
use super::conv_transpose_phases::PhaseWeights;
use super::expand_depthwise::ExpandDepthwise;
use super::fully_connected::FullyConnected;
use super::int8_conv::Int8Conv;
use super::int8_depthwise::Int8Depthwise;
use super::int8_gemm::Quantizer;
use super::isa::Isa;
use super::matmul_packed::PackedRight;
use crate::{RuntimeError, Tensor};

/// A step's inputs by port (`None` for an omitted optional one), how many outputs the node
/// declares, the plan's instruction set, and what the plan lowered the step to.
pub(crate) struct Args<'a> {
    pub ins: &'a [Option<&'a Tensor>],
    pub outputs: usize,
    pub isa: Isa,
    pub lowered: Option<&'a Lowered>,
    /// How a convolution or concatenation stores its output in bytes, when every step that
    /// reads it is an int8 layer quantizing it so (`CpuPlan`'s `bytes_between_layers`).
    pub bytes: Option<Quantizer>,
}

/// The part of a step's work a plan does once when it is prepared, so that runs only compute.
#[derive(Debug)]
pub(crate) enum Lowered {
    /// A convolution's constant weight, packed for its GEMM.
    ConvWeights(ConvWeights),
    /// A MatMul's constant right operand, packed in panels.
    MatMulRight(PackedRight),
    /// A strided transposed convolution's constant weight, split into its output phases'.
    ConvTransposeWeights(PhaseWeights),
    /// An int8 layer's convolution, which reads the float input of its quantization.
    Int8Conv(Box<Int8Conv>),
    /// An int8 layer's depthwise convolution, computed in integers like [`Lowered::Int8Conv`].
    Int8Depthwise(Box<Int8Depthwise>),
    /// A bf16 layer's convolution, which reads its bf16 input as it is.
    Bf16Conv(Box<Bf16Conv>),
    /// A `DequantizeLinear(QuantizeLinear(x))` pair, which reads `x` and rounds it in one pass;
    /// or a float stencil convolution (depthwise, few outputs) of an int8 layer, which reads
    /// `x` and rounds it as it pads each plane.
    FakeQuantize(Quantizer),
    /// An elementwise function of `DequantizeLinear(QuantizeLinear(y))` (an activation, SiLU's
    /// Sigmoid and Mul), which reads `y` and looks its results up.
    ByteTable(Box<ByteTable>),
    /// A depthwise convolution that runs the pointwise expansion making its input, band by
    /// band, reading the expansion's input, weight and bias; or a pointwise projection that
    /// runs both, reading the depthwise weight and bias too.
    ExpandDepthwise(Box<ExpandDepthwise>),
    /// A MatMul with a constant weight and the bias Add after it, then optionally GELU, a
    /// per-column scale and a residual Add, at the chain's last node.
    FullyConnected(Box<FullyConnected>),
    /// A loop's or a conditional's bodies, prepared as plans of their own.
    Control(Box<Control>),
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

    /// The convolution weight the plan packed, if it did.
    pub fn packed(&self) -> Option<&'a ConvWeights> {
        match self.lowered {
            Some(Lowered::ConvWeights(p)) => Some(p),
            _ => None,
        }
    }

    /// The MatMul right operand the plan packed, if it did.
    pub fn packed_right(&self) -> Option<&'a PackedRight> {
        match self.lowered {
            Some(Lowered::MatMulRight(p)) => Some(p),
            _ => None,
        }
    }

    /// The phase weights of a transposed convolution the plan made, if it did.
    pub fn phase_weights(&self) -> Option<&'a PhaseWeights> {
        match self.lowered {
            Some(Lowered::ConvTransposeWeights(p)) => Some(p),
            _ => None,
        }
    }

    /// How the step quantizes the `x` it reads, where the plan lowered it to read `x` past a
    /// `DequantizeLinear(QuantizeLinear(x))` pair.
    pub fn fake_quantize(&self) -> Option<Quantizer> {
        match self.lowered {
            Some(Lowered::FakeQuantize(q)) => Some(*q),
            _ => None,
        }
    }

    /// The table of results the plan lowered an activation to, if it did.
    pub fn byte_table(&self) -> Option<&'a ByteTable> {
        match self.lowered {
            Some(Lowered::ByteTable(t)) => Some(t),
            _ => None,
        }
    }

    /// The bf16 convolution the plan lowered the step to, if it did.
    pub fn bf16_conv(&self) -> Option<&'a Bf16Conv> {
        match self.lowered {
            Some(Lowered::Bf16Conv(c)) => Some(c),
            _ => None,
        }
    }

    /// The fused expansion and depthwise convolution the plan lowered the step to, if it did.
    pub fn expand_depthwise(&self) -> Option<&'a ExpandDepthwise> {
        match self.lowered {
            Some(Lowered::ExpandDepthwise(f)) => Some(f),
            _ => None,
        }
    }

    /// The fully connected layer the plan lowered the step to, if it did.
    pub fn fully_connected(&self) -> Option<&'a FullyConnected> {
        match self.lowered {
            Some(Lowered::FullyConnected(f)) => Some(f),
            _ => None,
        }
    }

    /// The int8 depthwise convolution the plan lowered the step to, if it did.
    pub fn int8_depthwise(&self) -> Option<&'a Int8Depthwise> {
        match self.lowered {
            Some(Lowered::Int8Depthwise(d)) => Some(d),
            _ => None,
        }
    }

    /// The int8 convolution the plan lowered the step to, if it did.
    pub fn int8_conv(&self) -> Option<&'a Int8Conv> {
        match self.lowered {
            Some(Lowered::Int8Conv(c)) => Some(c),
            _ => None,
        }
    }
}
