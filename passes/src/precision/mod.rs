//! Precision assignment: calibrators that turn activation statistics into int8 scales, the
//! precision plan, and its legalization into a strongly typed graph (casts around fp16 layers,
//! QuantizeLinear/DequantizeLinear around int8 ones).

pub mod calibrators;
