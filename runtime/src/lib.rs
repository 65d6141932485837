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
    plan_memory, prepare, Device, InputSpec, Int8Execution, Lifetime, MemoryPlan, Observer, Plan,
    PrepareOptions, RunState, StepInfo, ValueView,
};
pub use cpu::{fma_peak_gflops, run_op, shape_of};
pub use error::{ErrorKind, RuntimeError};
pub use tensor::{bf16, f16, Tensor, TensorData};
