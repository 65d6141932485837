//! Operators temblor provides itself, where frameworks and TensorRT lack them or do them badly.
//! Today: image preprocessing, the first step of every detector's pipeline.

pub mod preprocess;
