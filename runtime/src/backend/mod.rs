//! The one way into the runtime: [`prepare`] lowers a graph for a [`Device`] into a [`Plan`],
//! and every tool (run, bench, profile, calibration, comparison, verification) runs that plan
//! through the same few calls, whatever backend is behind it.
//!
//! A plan is immutable once prepared and can be shared by threads; what a run changes lives in
//! a [`RunState`], so concurrent runs of one plan each take their own state and share no lock,
//! and a loop that reuses one state allocates nothing once it has reached its steady state.

mod inputs;
mod memory;
mod observe;

pub(crate) use inputs::{input_specs, match_inputs};
pub use memory::{plan_memory, Lifetime, MemoryPlan};
pub use observe::{Observer, StepInfo, ValueView};

use crate::cpu::{CpuPlan, CpuState};
use crate::cuda::{CudaPlan, CudaState};
use crate::{RuntimeError, Tensor};
use std::fmt;
use std::sync::Arc;
use temblor_ir::{DType, Dim, Graph};

/// Where a plan runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    /// The NVIDIA GPU of this ordinal, through the CUDA driver.
    Cuda {
        ordinal: usize,
    },
}

impl Device {
    /// The instruction set a plan prepared for this device would choose kernels for
    /// (`avx512f`, `avx2+fma` or `scalar` on the CPU), for reports made without a plan.
    pub fn isa(&self) -> &'static str {
        match self {
            Device::Cpu => crate::cpu::Isa::detect().name(),
            Device::Cuda { .. } => "cuda",
        }
    }

    /// The instruction set extensions beyond [`Device::isa`] whose kernels a plan prepared for
    /// this device would run (`avx512vnni`, `avx512bf16`, `amx-bf16` on the CPU).
    pub fn isa_extensions(&self) -> Vec<&'static str> {
        match self {
            Device::Cpu => crate::cpu::Isa::detect().extensions(),
            Device::Cuda { .. } => Vec::new(),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda { ordinal } => write!(f, "cuda:{ordinal}"),
        }
    }
}

/// How a plan is prepared.
#[derive(Clone, Debug, Default)]
pub struct PrepareOptions {
    /// Host threads the kernels run on; 0 means one per available core.
    pub threads: usize,
    /// Keep the worker threads spinning between kernels while a run is under way, instead of
    /// letting them sleep: a worker woken through the OS for each of a plan's few hundred short
    /// kernels cost PicoDet at 2 threads more than a tenth of its time, but spinning burns
    /// every core for the whole run. On for latency measurement, off for everything else.
    pub spin: bool,
    /// How a precision plan's int8 and bf16 layers run.
    pub int8: Int8Execution,
    /// Compute every value of the graph, for an observer that reads each layer's (layer
    /// comparison, calibration): no step does another node's work, as a CPU depthwise
    /// convolution otherwise runs the pointwise expansion before it without keeping its output.
    pub every_value: bool,
}

/// How the int8 layers of a compiled graph (`DequantizeLinear(QuantizeLinear(x))` into a
/// convolution with an int8 weight) and its bf16 convolutions run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Int8Execution {
    /// In integers, with the weight packed once and the quantization fused into the
    /// convolution; bf16 convolutions on their bf16 values with bf16 dot products: the same
    /// results as `Simulate` but for the rounding of float sums.
    #[default]
    Native,
    /// As written: quantize, dequantize, and convolve in f32; widen bf16 values to f32,
    /// convolve, and round the outputs.
    Simulate,
}

/// A graph prepared to run on one device.
#[derive(Debug)]
pub struct Plan {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Cpu(CpuPlan),
    Cuda(CudaPlan),
}

/// What one run of a [`Plan`] changes (its memory), kept between runs so that they reuse it.
/// Made by [`Plan::new_state`], for runs of that plan; one state serves one run at a time.
#[derive(Debug)]
pub struct RunState(State);

#[derive(Debug)]
enum State {
    Cpu(CpuState),
    Cuda(CudaState),
}

impl RunState {
    /// Bytes of this state's buffers lent to a run and not given back. Between runs a plan's
    /// every buffer is back, so this is zero; anything else is memory the next run allocates
    /// (and faults in) again.
    pub fn lent_bytes(&self) -> usize {
        match &self.0 {
            State::Cpu(s) => s.lent_bytes(),
            State::Cuda(s) => s.lent_bytes(),
        }
    }
}

/// A graph input as a plan expects it.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub dtype: DType,
    /// The declared extents; a symbolic one takes any size.
    pub dims: Vec<Dim>,
}

/// Whether `device` can take a plan here, checked without preparing one: on the GPU, that the
/// CUDA driver is installed and has every function the backend calls. For commands that should
/// refuse a device before their other work.
pub fn check_device(device: &Device) -> Result<(), RuntimeError> {
    match device {
        Device::Cpu => Ok(()),
        Device::Cuda { .. } => crate::cuda::driver::check_driver(),
    }
}

/// Lowers `graph` for `device`: every op's kernel, packed weights and instruction set are
/// chosen here, once. Fails, naming every node, when the device has no kernel for some.
pub fn prepare(
    graph: &Graph,
    device: &Device,
    options: &PrepareOptions,
) -> Result<Plan, RuntimeError> {
    let backend = match device {
        Device::Cpu => Backend::Cpu(CpuPlan::new(graph, options)?),
        Device::Cuda { ordinal } => {
            let gpu = crate::cuda::driver::Gpu::new(*ordinal)?;
            let name = gpu.name.clone();
            Backend::Cuda(CudaPlan::new(graph, Arc::new(gpu), name)?)
        }
    };
    Ok(Plan { backend })
}

/// [`prepare`] for the CUDA backend with its host emulator in place of a GPU: the same
/// specialization, lowering, memory plan and argument bytes, and the same kernel sources
/// compiled for the CPU by the system's C++ compiler. For tests on machines without a GPU;
/// slow, and no measure of anything a GPU does.
#[doc(hidden)]
pub fn prepare_emulated_cuda(graph: &Graph) -> Result<Plan, RuntimeError> {
    let emulator = crate::cuda::emulate::Emulator::new()?;
    Ok(Plan {
        backend: Backend::Cuda(CudaPlan::new(
            graph,
            Arc::new(emulator),
            "the CUDA emulator".to_owned(),
        )?),
    })
}

impl Plan {
    pub fn device(&self) -> Device {
        match &self.backend {
            Backend::Cpu(_) => Device::Cpu,
            Backend::Cuda(_) => Device::Cuda { ordinal: 0 },
        }
    }

    /// How many host threads the kernels of this plan run on.
    pub fn threads(&self) -> usize {
        match &self.backend {
            Backend::Cpu(p) => p.threads(),
            Backend::Cuda(_) => 1,
        }
    }

    /// The instruction set the kernels were chosen for, for reports: `avx512f`, `avx2+fma`
    /// or `scalar` on the CPU.
    pub fn isa(&self) -> &str {
        match &self.backend {
            Backend::Cpu(p) => p.isa().name(),
            Backend::Cuda(p) => p.name(),
        }
    }

    /// Where the computed values live, when all their sizes are static: the plan's memory
    /// peak is its arena.
    pub fn memory(&self) -> Option<&MemoryPlan> {
        match &self.backend {
            Backend::Cpu(p) => p.memory(),
            Backend::Cuda(_) => None,
        }
    }

    /// The steps a run takes, in order; observers get their index in this list.
    pub fn steps(&self) -> &[StepInfo] {
        match &self.backend {
            Backend::Cpu(p) => p.steps(),
            Backend::Cuda(p) => p.steps(),
        }
    }

    /// The nodes a device backend leaves to the host for inputs of the shapes of `inputs`
    /// (given as to [`Plan::run`]), with why; `None` on the CPU, and before the first run of
    /// those shapes.
    pub fn host_nodes(&self, inputs: &[(String, Tensor)]) -> Option<Vec<(String, String)>> {
        match &self.backend {
            Backend::Cpu(_) => None,
            Backend::Cuda(p) => p.host_nodes(inputs),
        }
    }

    /// The graph inputs a run takes, in the graph's order.
    pub fn inputs(&self) -> &[InputSpec] {
        match &self.backend {
            Backend::Cpu(p) => p.inputs(),
            Backend::Cuda(p) => p.inputs(),
        }
    }

    /// Fresh memory for runs of this plan.
    pub fn new_state(&self) -> RunState {
        match &self.backend {
            Backend::Cpu(p) => RunState(State::Cpu(p.new_state())),
            Backend::Cuda(p) => RunState(State::Cuda(p.new_state())),
        }
    }

    /// Runs the plan on named inputs and returns the graph outputs, in order, by name.
    pub fn run(
        &self,
        state: &mut RunState,
        inputs: &[(String, Tensor)],
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        self.run_with(state, inputs, None)
    }

    /// [`Plan::run`], showing `observer` every step as it completes.
    pub fn run_observed(
        &self,
        state: &mut RunState,
        inputs: &[(String, Tensor)],
        observer: &mut dyn Observer,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        self.run_with(state, inputs, Some(observer))
    }

    /// [`Plan::run`] in a state of its own, for a single run; a loop keeps one state instead.
    pub fn run_once(
        &self,
        inputs: &[(String, Tensor)],
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        self.run(&mut self.new_state(), inputs)
    }

    fn run_with(
        &self,
        state: &mut RunState,
        inputs: &[(String, Tensor)],
        observer: Option<&mut dyn Observer>,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        match (&self.backend, &mut state.0) {
            (Backend::Cpu(p), State::Cpu(s)) => p.run(s, inputs, observer),
            (Backend::Cuda(p), State::Cuda(s)) => p.run(s, inputs, observer),
            _ => Err(RuntimeError::internal(
                "a run state of one backend given to a plan of another",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_shared_and_states_sent_between_threads() {
        fn shared<T: Send + Sync>() {}
        fn sent<T: Send>() {}
        shared::<Plan>();
        sent::<RunState>();
    }
}
