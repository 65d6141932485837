//! The `temblor` CLI's commands as a library, so that the Python package (`python/`) runs the
//! very code the binary does: `compile` writes the same package, and a session loads a model,
//! and reads a photo's answer, as `run` does.

#![forbid(unsafe_code)]

pub mod cli;
