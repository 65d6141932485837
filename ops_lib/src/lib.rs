//! Operators temblor provides itself, where frameworks and TensorRT lack them or do them badly:
//! the detection operators of PaddleDetection (box decoding, NMS variants, proposal generation)
//! and image preprocessing. Each detection operator is typed in the IR ([`LibOp`], parsed once
//! at import); here are its shape rule ([`infer`]) and CPU kernel ([`run`]). The CUDA C++
//! kernels of these operators, of NMS and RoIAlign, of preprocessing, and of the CPU runtime's
//! DeformSample and GridSample sampling are in `ops_lib/cuda` (no runtime launches them yet:
//! issue 23); tests/tests/cuda_kernels.rs compiles them with nvcc and checks their arithmetic
//! against the CPU kernels.

#![forbid(unsafe_code)]

pub mod detection;
pub mod preprocess;
mod tensor;

pub use detection::{infer, run};
pub use temblor_ir::LibOp;
pub use tensor::{LibData, LibSlice, LibTensor, LibView};
