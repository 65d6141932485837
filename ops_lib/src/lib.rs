//! Operators temblor provides itself, where frameworks and TensorRT lack them or do them badly:
//! the detection operators of PaddleDetection (box decoding, NMS variants, proposal generation)
//! and image preprocessing. Each operator has a typed definition parsed from the IR's
//! `Op::Custom` attributes, a shape rule and a CPU kernel.

#![forbid(unsafe_code)]

pub mod detection;
pub mod preprocess;
mod tensor;

pub use detection::LibOp;
pub use tensor::{LibData, LibSlice, LibTensor, LibView};

/// The IR domain of every ops_lib operator (`Op::Custom { domain, .. }`).
pub const DOMAIN: &str = "temblor.ops_lib";
