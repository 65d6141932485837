//! What a CUDA program runs on: the GPU through the driver (`driver.rs`), or the host emulator
//! (`emulate.rs`), which runs the same kernel sources compiled for the host so that the whole
//! backend (specialization, lowering, memory plan, argument bytes) is checked against the CPU
//! runtime on machines without a GPU. Both take the same calls with the same bytes; only the
//! driver's own calls (cudarc, cuBLAS, graph capture) are left to a machine with a device.

use super::lower::GemmInputs;
use crate::RuntimeError;

/// An address in the executor's memory: a device pointer on the GPU, a host address in the
/// emulator. Kernels take it by value, 8 bytes, as CUDA passes pointers.
pub(crate) type DevicePtr = u64;

/// A resolved kernel launch: every argument as the bytes the kernel's C parameter has
/// (pointers as 8-byte addresses), in order, as `cuLaunchKernel`'s `kernelParams` points at them.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct KernelCall {
    pub function: &'static str,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: u32,
    pub params: Vec<Vec<u8>>,
}

/// A resolved GEMM, row-major as [`super::lower::Gemm`] defines it, at addresses.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GemmCall {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub a: DevicePtr,
    pub a_transposed: bool,
    pub lda: usize,
    pub stride_a: usize,
    pub b: DevicePtr,
    pub b_transposed: bool,
    pub ldb: usize,
    pub stride_b: usize,
    pub c: DevicePtr,
    pub ldc: usize,
    pub stride_c: usize,
    pub alpha: f32,
    pub beta: f32,
    pub inputs: GemmInputs,
}

/// One resolved piece of work.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Call {
    Kernel(KernelCall),
    Gemm(GemmCall),
    Copy {
        from: DevicePtr,
        to: DevicePtr,
        bytes: usize,
    },
    Zero {
        to: DevicePtr,
        bytes: usize,
    },
}

/// Memory and work on one device, in one stream: every call is ordered after the previous one,
/// and [`Executor::download`] waits for all of them.
pub(crate) trait Executor: Send + Sync + std::fmt::Debug {
    /// `bytes` of device memory, aligned to 256 bytes.
    fn alloc(&self, bytes: usize) -> Result<DevicePtr, RuntimeError>;
    /// Frees what [`Executor::alloc`] returned.
    fn free(&self, ptr: DevicePtr);
    fn upload(&self, to: DevicePtr, bytes: &[u8]) -> Result<(), RuntimeError>;
    fn download(&self, from: DevicePtr, out: &mut [u8]) -> Result<(), RuntimeError>;
    /// Runs `calls` in order. `key` names this exact list (the same key, the same calls): the
    /// GPU captures the list once per key as a CUDA graph and replays it after.
    fn run(&self, key: u64, calls: &[Call]) -> Result<(), RuntimeError>;
    /// Forgets what [`Executor::run`] kept for `key` (a run state's memory goes away).
    fn forget(&self, key: u64);
}
