//! temblor's executors behind one seam: [`prepare`] a graph for a [`Device`], then run the
//! [`Plan`] with a [`RunState`]. The CPU backend runs any graph whose ops it has kernels for;
//! it is the reference every optimization and lowering is checked against, so kernels are
//! correct first and fast second.

mod backend;
mod cpu;
mod cuda;
mod error;
mod tensor;

pub use backend::{
    check_device, plan_memory, prepare, prepare_emulated_cuda, Device, InputSpec, Int8Execution,
    Lifetime, MemoryPlan, Observer, Plan, PrepareOptions, RunState, StepInfo, ValueView,
};
pub use cpu::{fma_peak_gflops, run_op, shape_of};
#[doc(hidden)]
pub use cuda::lower::params::{layouts as cuda_param_layouts, Layout as CudaParamLayout};
pub use cuda::preprocess::{GpuPreprocessor, PreprocessSpec};
pub use cuda::toolkit::{driver_present as cuda_driver_present, NO_DRIVER as NO_CUDA_DRIVER};
pub use error::{ErrorKind, RuntimeError};
pub use tensor::{bf16, f16, Tensor, TensorData};
