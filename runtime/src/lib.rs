//! temblor's executors. The CPU runtime ([`CpuPlan`]) runs any graph whose ops it has kernels
//! for; it is the reference every optimization and lowering is checked against, so kernels are
//! correct first and fast second.

mod cpu;
mod error;
mod tensor;

pub use cpu::{run_op, shape_of, CpuPlan, Observer, StepInfo};
pub use error::{ErrorKind, RuntimeError};
pub use tensor::{f16, Tensor, TensorData};
