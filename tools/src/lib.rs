//! What shows and proves what the compiler did, each usable on its own: `verify` (the optimized
//! graph computes what the parsed one did), `measure` (each pass's latency effect), `profile`
//! (where a plan's time goes), `compare` (two graphs of one model, layer by layer through
//! provenance), `eval` (COCO AP), `conformance` (the ONNX backend node suite), and the inputs
//! they share: `.npy` files, preprocessing configs and progress bars.

#![forbid(unsafe_code)]

pub mod compare;
pub mod conformance;
pub mod eval;
pub mod measure;
pub mod npy;
pub mod preprocess_config;
pub mod profile;
pub mod progress;
pub mod verify;

pub use temblor_ir::{Error, Result};
