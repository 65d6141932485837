//! The CUDA backend (issue 23): being written.
pub(crate) mod executor;
pub(crate) mod lower;
pub(crate) mod sources;
