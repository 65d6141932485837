//! The temblor compiler: frontends, shape inference, the pipeline, packages and the CLI's
//! commands. The `temblor` binary (`main.rs`) is a thin clap layer over [`cli`].

pub mod cli;
pub mod compare;
pub mod conformance;
pub mod error;
pub mod eval;
pub mod evaluate;
pub mod export;
pub mod frontend;
pub mod measure;
pub mod npy;
pub mod package;
pub mod pipeline;
pub mod precision;
pub mod preprocess_config;
pub mod profile;
pub mod progress;
pub mod report;
pub mod shape;
pub mod verify;

pub use error::{Error, Result};
