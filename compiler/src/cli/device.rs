//! `--device cpu|cuda` of `run`, `bench`, `profile` and `eval`. Only the CPU runtime exists; the
//! CUDA backend is issue 23. `--device cuda` fails with exit 2 in two steps: the binary first
//! looks for the CUDA driver (before anything else CUDA-related, since cudarc panics without
//! it) and stops with [`NO_DRIVER`] when it is absent; with a driver, the command itself
//! refuses, through [`cpu_only`].

use temblor_ir::{Error, Result};

/// Where a command runs the model.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceArg {
    /// The CPU runtime.
    Cpu,
    /// An NVIDIA GPU through CUDA (needs the driver; the backend is not built yet).
    Cuda,
}

/// The error of `--device cuda` on a machine without the CUDA driver.
pub const NO_DRIVER: &str =
    "no CUDA driver found (libcuda.so.1): --device cuda needs an NVIDIA GPU and its driver";

/// Refuses every device but the CPU: the first thing a command that takes `--device` does.
pub fn cpu_only(device: DeviceArg) -> Result<()> {
    match device {
        DeviceArg::Cpu => Ok(()),
        DeviceArg::Cuda => Err(Error::usage(
            "this build has no CUDA backend yet (issue 23): the CUDA driver is present, but \
             only --device cpu runs",
        )),
    }
}
