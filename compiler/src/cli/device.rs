//! `--device cpu|cuda` of `run`, `bench`, `preprocess`, `profile` and `eval`. The binary looks for the CUDA
//! driver before anything else CUDA-related (cudarc panics without it) and stops with
//! [`NO_DRIVER`] when it is absent; with a driver, the runtime's CUDA backend runs the plan.

use temblor_runtime::Device;

/// Where a command runs the model.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceArg {
    /// The CPU runtime.
    Cpu,
    /// The first NVIDIA GPU, through CUDA (needs the driver).
    Cuda,
}

/// The error of `--device cuda` on a machine without the CUDA driver.
pub const NO_DRIVER: &str = temblor_runtime::NO_CUDA_DRIVER;

impl DeviceArg {
    /// The runtime's device.
    pub fn device(self) -> Device {
        match self {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => Device::Cuda { ordinal: 0 },
        }
    }
}
