//! The host emulator of a CUDA device: the backend's calls, exactly as the driver would make
//! them, run on the CPU, so that specialization, lowering, memory plans and argument bytes are
//! all checked against the CPU runtime on machines without a GPU.
//!
//! - Kernels: the sources of `sources.rs`, compiled once per process for the host
//!   (`emulate/build.rs`, `emulate/shim.h`), each launch running every thread of every block in
//!   order, its parameters read from the same bytes `cuLaunchKernel` would get. Parameter sizes
//!   must match the C signature and pointer parameters must point into live memory. Kernels that
//!   need `__syncthreads` are refused: threads run one after another, so a barrier never holds.
//! - GEMMs: converted to cuBLAS's column-major call as the driver converts them
//!   (`emulate/cublas.rs`), which then runs with cuBLAS's semantics.
//! - Memory: host allocations aligned as `cuMemAlloc`'s (256 bytes), filled with ones (NaN as f32) as fresh GPU memory holds garbage; every copy, upload,
//!   download and GEMM operand is checked to lie inside one allocation.

mod build;
mod cublas;

pub(crate) use cublas::{column_major, CublasGemm, DataType, COMPUTE_32F, GEMM_DEFAULT};

use super::executor::{Call, DevicePtr, Executor, GemmCall, KernelCall};
use crate::RuntimeError;
use std::alloc::Layout;
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::{Mutex, MutexGuard};

/// cuMemAlloc's alignment.
const ALIGN: usize = 256;

/// A CUDA device on the host.
pub(crate) struct Emulator {
    kernels: &'static build::Kernels,
    /// Live allocations: start address to bytes.
    memory: Mutex<BTreeMap<DevicePtr, Layout>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("kernels", &self.kernels.by_name.len())
            .field("allocations", &self.memory().len())
            .finish()
    }
}

impl Emulator {
    /// An emulated device, the kernels built on the first call in the process (seconds).
    pub(crate) fn new() -> Result<Emulator, RuntimeError> {
        Ok(Emulator {
            kernels: build::kernels()?,
            memory: Mutex::new(BTreeMap::new()),
        })
    }

    fn memory(&self) -> MutexGuard<'_, BTreeMap<DevicePtr, Layout>> {
        // The map is never left half-updated, so a panic elsewhere does not spoil it.
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails unless `bytes` from `at` lie inside one live allocation.
    fn check(&self, at: DevicePtr, bytes: usize, what: &str) -> Result<(), RuntimeError> {
        if bytes == 0 {
            return Ok(());
        }
        let memory = self.memory();
        let inside = memory
            .range(..=at)
            .next_back()
            .is_some_and(|(&start, layout)| {
                at.checked_add(bytes as u64)
                    .is_some_and(|end| end <= start + layout.size() as u64)
            });
        match inside {
            true => Ok(()),
            false => Err(RuntimeError::internal(format!(
                "{what}: {bytes} bytes at {at:#x} are outside every allocation"
            ))),
        }
    }

    /// Whether `at` is null or points into (or just past) a live allocation.
    fn points_into(memory: &BTreeMap<DevicePtr, Layout>, at: DevicePtr) -> bool {
        let into = |(&start, layout): (&DevicePtr, &Layout)| at <= start + layout.size() as u64;
        at == 0 || memory.range(..=at).next_back().is_some_and(into)
    }

    fn launch(&self, call: &KernelCall) -> Result<(), RuntimeError> {
        let name = call.function;
        let kernel = self.kernels.by_name.get(name).ok_or_else(|| {
            RuntimeError::internal(format!("no kernel {name} in the CUDA sources"))
        })?;
        if call.params.len() != kernel.sizes.len() {
            return Err(RuntimeError::internal(format!(
                "kernel {name} takes {} parameters, the launch gives {}",
                kernel.sizes.len(),
                call.params.len()
            )));
        }
        check_dimensions(call)?;
        {
            let memory = self.memory();
            for (i, (bytes, &size)) in call.params.iter().zip(&kernel.sizes).enumerate() {
                if bytes.len() != size {
                    return Err(RuntimeError::internal(format!(
                        "kernel {name}'s parameter {i} has {size} bytes, the launch gives {}",
                        bytes.len()
                    )));
                }
                if kernel.pointers[i] {
                    let at = u64::from_ne_bytes(bytes[..8].try_into().unwrap_or_default());
                    if !Self::points_into(&memory, at) {
                        return Err(RuntimeError::internal(format!(
                            "kernel {name}'s parameter {i}, {at:#x}, is in no allocation"
                        )));
                    }
                }
            }
        }
        let mut params = Params::new(&call.params);
        let pointers = params.pointers();
        // SAFETY: the launcher reads each parameter as its C type from `params`, whose sizes
        // were checked against the signature above, each aligned to 16 bytes; the grid and
        // block are three u32s each. The kernel's memory accesses are the lowering's to get
        // right, as on the GPU; its pointers were checked to point into live allocations.
        let status =
            unsafe { (kernel.launch)(pointers.as_ptr(), call.grid.as_ptr(), call.block.as_ptr()) };
        match status {
            0 => Ok(()),
            _ => Err(RuntimeError::unsupported(format!(
                "kernel {name} needs block-wide synchronization (__syncthreads), which the \
                 emulator does not run"
            ))),
        }
    }

    fn gemm(&self, g: &GemmCall) -> Result<(), RuntimeError> {
        let call = column_major(g)?;
        let [a, b, c] = cublas::spans(&call)?;
        for ((at, bytes), what) in [(a, "A"), (b, "B"), (c, "C")] {
            self.check(at, bytes, &format!("GEMM operand {what} (cuBLAS's)"))?;
        }
        let overlaps = |(x, xn): (u64, usize), (y, yn): (u64, usize)| {
            xn > 0 && yn > 0 && x < y + yn as u64 && y < x + xn as u64
        };
        if overlaps(a, c) || overlaps(b, c) {
            return Err(RuntimeError::internal(format!(
                "a GEMM's output overlaps an operand, which cuBLAS does not allow: {g:?}"
            )));
        }
        // SAFETY: every element the call reads or writes lies inside a live allocation
        // (checked above against the spans of its arguments), and C overlaps neither A nor B.
        unsafe { cublas::cublas_gemm_strided_batched(&call) }
    }
}

/// CUDA's launch limits, which the driver would enforce.
fn check_dimensions(call: &KernelCall) -> Result<(), RuntimeError> {
    let [gx, gy, gz] = call.grid;
    let [bx, by, bz] = call.block;
    let threads = bx as u64 * by as u64 * bz as u64;
    let fits = gx >= 1
        && gx <= i32::MAX as u32
        && (1..=65_535).contains(&gy)
        && (1..=65_535).contains(&gz)
        && (1..=1024).contains(&bx)
        && (1..=1024).contains(&by)
        && (1..=64).contains(&bz)
        && threads <= 1024;
    match fits {
        true => Ok(()),
        false => Err(RuntimeError::internal(format!(
            "kernel {}'s grid {:?} and block {:?} are past CUDA's launch limits",
            call.function, call.grid, call.block
        ))),
    }
}

/// A launch's parameters, each copied to its own 16-byte aligned slots, as the launcher reads
/// them.
struct Params {
    slots: Vec<Slot>,
    starts: Vec<usize>,
}

#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Slot([u8; 16]);

impl Params {
    fn new(params: &[Vec<u8>]) -> Params {
        let mut starts = Vec::with_capacity(params.len());
        let mut slots = Vec::new();
        for p in params {
            starts.push(slots.len());
            for chunk in p.chunks(16) {
                let mut slot = Slot([0; 16]);
                slot.0[..chunk.len()].copy_from_slice(chunk);
                slots.push(slot);
            }
            // An empty parameter still gets an address of its own.
            if p.is_empty() {
                slots.push(Slot([0; 16]));
            }
        }
        Params { slots, starts }
    }

    /// The kernelParams array: each parameter's address, valid while `self` is.
    fn pointers(&mut self) -> Vec<*mut c_void> {
        let base = self.slots.as_mut_ptr();
        let at = |&s| base.wrapping_add(s).cast::<c_void>();
        self.starts.iter().map(at).collect()
    }
}

impl Executor for Emulator {
    fn alloc(&self, bytes: usize) -> Result<DevicePtr, RuntimeError> {
        let layout = Layout::from_size_align(bytes.max(1), ALIGN)
            .map_err(|e| RuntimeError::internal(format!("allocating {bytes} bytes: {e}")))?;
        // SAFETY: the layout has a nonzero size.
        let ptr = unsafe { std::alloc::alloc(layout) };
        if ptr.is_null() {
            return Err(RuntimeError::internal(format!(
                "the emulated device is out of host memory for {bytes} bytes"
            )));
        }
        // A GPU's fresh memory holds whatever was there: all ones here (NaN as f32), so an
        // output a lowering forgets to write shows in the comparisons instead of reading as 0.
        // SAFETY: `ptr` holds `layout.size()` bytes.
        unsafe { std::ptr::write_bytes(ptr, 0xFF, layout.size()) };
        self.memory().insert(ptr as DevicePtr, layout);
        Ok(ptr as DevicePtr)
    }

    fn free(&self, ptr: DevicePtr) {
        if let Some(layout) = self.memory().remove(&ptr) {
            // SAFETY: `ptr` was returned by `alloc` with this layout and is freed once, having
            // been removed from the map.
            unsafe { std::alloc::dealloc(ptr as *mut u8, layout) };
        }
    }

    fn upload(&self, to: DevicePtr, bytes: &[u8]) -> Result<(), RuntimeError> {
        self.check(to, bytes.len(), "upload")?;
        // SAFETY: the destination lies inside a live allocation (checked), which no slice of
        // the caller's can alias.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), to as *mut u8, bytes.len()) };
        Ok(())
    }

    fn download(&self, from: DevicePtr, out: &mut [u8]) -> Result<(), RuntimeError> {
        self.check(from, out.len(), "download")?;
        // SAFETY: the source lies inside a live allocation (checked), which `out`, a slice of
        // the caller's, cannot alias.
        unsafe { std::ptr::copy_nonoverlapping(from as *const u8, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    fn run(&self, _key: u64, calls: &[Call]) -> Result<(), RuntimeError> {
        for call in calls {
            match call {
                Call::Kernel(k) => self.launch(k)?,
                Call::Gemm(g) => self.gemm(g)?,
                Call::Copy { from, to, bytes } => {
                    self.check(*from, *bytes, "copy source")?;
                    self.check(*to, *bytes, "copy destination")?;
                    // SAFETY: both ranges lie inside live allocations (checked); `copy` allows
                    // them to overlap.
                    unsafe { std::ptr::copy(*from as *const u8, *to as *mut u8, *bytes) };
                }
                Call::Zero { to, bytes } => {
                    self.check(*to, *bytes, "zeroing")?;
                    // SAFETY: the range lies inside a live allocation (checked).
                    unsafe { std::ptr::write_bytes(*to as *mut u8, 0, *bytes) };
                }
            }
        }
        Ok(())
    }

    /// The emulator keeps nothing per key: there is no graph to capture.
    fn forget(&self, _key: u64) {}
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for (ptr, layout) in std::mem::take(&mut *self.memory()) {
            // SAFETY: every entry is a live allocation of `alloc` with this layout, freed once.
            unsafe { std::alloc::dealloc(ptr as *mut u8, layout) };
        }
    }
}

#[cfg(test)]
mod tests;
