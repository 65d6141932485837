//! The precision plan: which layers leave fp32, at which precision, with which activation scale,
//! and why. It is what `precision.yml` holds and what `--plan FILE` re-applies.

use serde::{Deserialize, Serialize};
use temblor_ir::Precision;

/// How the plan was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanMode {
    #[default]
    Fp32,
    Fp16,
    Bf16,
    Int8,
    Auto,
    /// Written or edited by a person.
    Manual,
}

impl PlanMode {
    pub fn name(self) -> &'static str {
        match self {
            PlanMode::Fp32 => "fp32",
            PlanMode::Fp16 => "fp16",
            PlanMode::Bf16 => "bf16",
            PlanMode::Int8 => "int8",
            PlanMode::Auto => "auto",
            PlanMode::Manual => "manual",
        }
    }
}

/// What `--precision auto` lowers layers to int8 on top of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AutoBase {
    /// fp16 wherever values fit (when that alone meets the budget): what TensorRT runs fastest.
    #[default]
    Fp16,
    /// fp32: the CPU runtime computes fp16 layers in f32 and only adds their conversions, so
    /// there the fastest plans are int8 over fp32.
    Fp32,
    /// bf16 wherever it can run (its range is f32's, so every value fits), when that alone
    /// meets the budget: the CPU runtime computes bf16 convolutions with AVX-512 BF16's dot
    /// products, two multiply-adds per instruction.
    Bf16,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PrecisionPlan {
    pub mode: PlanMode,
    /// Layers that do not run in fp32; every other layer does.
    #[serde(default)]
    pub layers: Vec<LayerPlan>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerPlan {
    /// The layer's name in the optimize view.
    pub layer: String,
    pub precision: Precision,
    /// int8 only: the per-tensor scale of the activation input (clip threshold / 127).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_scale: Option<f32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
}

impl PrecisionPlan {
    pub fn precision_of(&self, layer: &str) -> Precision {
        self.layers
            .iter()
            .find(|l| l.layer == layer)
            .map_or(Precision::Fp32, |l| l.precision)
    }
}
