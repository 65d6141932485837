//! Precision assignment: calibrators that turn activation statistics into int8 scales, the
//! precision plan, and its legalization into a strongly typed graph (casts around fp16 layers,
//! QuantizeLinear/DequantizeLinear around int8 ones).

pub mod calibrators;
pub mod histogram;
pub mod legalize;
pub mod plan;

pub use legalize::{int8_weight_axis, legalize, per_channel_scales, runs_in_fp16, LegalizeError};
pub use plan::{LayerPlan, PlanMode, PrecisionPlan};
