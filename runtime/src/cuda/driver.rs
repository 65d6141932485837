//! The GPU executor: the CUDA driver API through cudarc (loaded at run time), the kernels
//! compiled by NVRTC for the GPU's own architecture, GEMMs through cuBLAS, one stream, and
//! each segment captured as a CUDA graph on its first run and replayed after.
//!
//! Nothing here runs without a GPU: `scripts/gpu_check.sh` runs it on one. What it is given
//! (the calls, their argument bytes, the GEMMs in cuBLAS's terms) is what the emulator runs in
//! the tests, so only these driver calls themselves are left unchecked without a device.

use super::emulate::{column_major, CublasGemm, DataType, COMPUTE_32F, GEMM_DEFAULT};
use super::executor::{Call, DevicePtr, Executor, KernelCall};
use super::nvrtc::{Nvrtc, Target};
use super::toolkit;
use crate::RuntimeError;
use cudarc::driver::sys::{self, CUresult};
use std::collections::HashMap;
use std::ffi::{c_int, c_void, CString};
use std::sync::{Mutex, PoisonError};

/// Every driver function this file calls. cudarc looks each up on first use and panics when it
/// is missing, so they are all looked up first: a library that is not a CUDA driver, or one
/// too old, is an error instead.
const DRIVER_FUNCTIONS: &[&str] = &[
    "cuInit",
    "cuDriverGetVersion",
    "cuDeviceGet",
    "cuDeviceGetAttribute",
    "cuDeviceGetName",
    "cuDevicePrimaryCtxRetain",
    "cuCtxSetCurrent",
    "cuStreamCreate",
    "cuStreamSynchronize",
    "cuModuleLoadData",
    "cuModuleGetFunction",
    "cuLaunchKernel",
    "cuMemAlloc_v2",
    "cuMemFree_v2",
    "cuMemHostAlloc",
    "cuMemFreeHost",
    "cuMemcpyHtoDAsync_v2",
    "cuMemcpyDtoHAsync_v2",
    "cuMemcpyDtoDAsync_v2",
    "cuMemsetD8Async",
    "cuStreamBeginCapture_v2",
    "cuStreamEndCapture",
    "cuGraphInstantiateWithFlags",
    "cuGraphLaunch",
    "cuGraphDestroy",
    "cuGraphExecDestroy",
    "cuGetErrorString",
];

/// cuBLAS's workspace: set once, so that captured GEMMs never allocate.
const BLAS_WORKSPACE: usize = 32 << 20;

fn check(result: CUresult, what: &str) -> Result<(), RuntimeError> {
    if result == CUresult::CUDA_SUCCESS {
        return Ok(());
    }
    let mut text: *const std::ffi::c_char = std::ptr::null();
    // SAFETY: the driver writes a pointer to a static string, or leaves it null.
    unsafe { sys::cuGetErrorString(result, &mut text) };
    let name = if text.is_null() {
        format!("{result:?}")
    } else {
        // SAFETY: non-null, the driver's static NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    };
    Err(RuntimeError::internal(format!("CUDA {what}: {name}")))
}

type BlasHandle = *mut c_void;
type SgemmStridedBatched = unsafe extern "C" fn(
    BlasHandle,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    *const f32,
    *const f32,
    c_int,
    i64,
    *const f32,
    c_int,
    i64,
    *const f32,
    *mut f32,
    c_int,
    i64,
    c_int,
) -> c_int;

/// `cublasGemmStridedBatchedEx`: the SGEMM's arguments, each matrix's `cudaDataType_t` after
/// it, then the compute type and the algorithm; matrices and scalars untyped.
type GemmStridedBatchedEx = unsafe extern "C" fn(
    BlasHandle,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    *const c_void,
    *const c_void,
    c_int,
    c_int,
    i64,
    *const c_void,
    c_int,
    c_int,
    i64,
    *const c_void,
    *mut c_void,
    c_int,
    c_int,
    i64,
    c_int,
    c_int,
    c_int,
) -> c_int;

/// cuBLAS, bound by hand for the same reason as NVRTC (chosen by path and version).
struct Blas {
    _lib: libloading::Library,
    handle: BlasHandle,
    sgemm: SgemmStridedBatched,
    gemm_ex: GemmStridedBatchedEx,
}

struct Inner {
    ctx: sys::CUcontext,
    stream: sys::CUstream,
    modules: Vec<sys::CUmodule>,
    functions: HashMap<&'static str, sys::CUfunction>,
    blas: Blas,
    graphs: HashMap<u64, sys::CUgraphExec>,
    pinned: (*mut c_void, usize),
}

/// One GPU, one stream.
pub(crate) struct Gpu {
    inner: Mutex<Inner>,
    pub name: String,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({})", self.name)
    }
}

// SAFETY: the driver's handles may be used from any thread once the context is current there;
// every use goes through the mutex and makes the context current first.
unsafe impl Send for Gpu {}
// SAFETY: as above: all access is serialized by the mutex.
unsafe impl Sync for Gpu {}

/// Whether the driver is there with every function this file calls, without calling any.
pub(crate) fn check_driver() -> Result<(), RuntimeError> {
    if !toolkit::driver_present() {
        return Err(RuntimeError::unsupported(toolkit::NO_DRIVER));
    }
    toolkit::driver_has(DRIVER_FUNCTIONS)
}

/// Every kernel module, compiled for `target` by the newest NVRTC the driver can run, loaded
/// into the current context.
fn load_modules(driver_major: u32, target: Target) -> Result<Vec<sys::CUmodule>, RuntimeError> {
    let nvrtc = Nvrtc::load(Some(driver_major))?;
    let mut modules = Vec::new();
    for (name, image) in nvrtc.compile_all(target)? {
        let mut module: sys::CUmodule = std::ptr::null_mut();
        // SAFETY: `image` is a CUBIN NVRTC made for this device's architecture; the context is
        // current.
        let loaded = unsafe { sys::cuModuleLoadData(&mut module, image.as_ptr().cast()) };
        check(loaded, &format!("loading {name}"))?;
        modules.push(module);
    }
    Ok(modules)
}

impl Blas {
    /// The newest cuBLAS the driver can run, on `stream`, with its workspace set so that
    /// captured GEMMs never allocate.
    fn load(driver_major: u32, stream: sys::CUstream) -> Result<Blas, RuntimeError> {
        let (lib, _) = toolkit::load("cublas", Some(driver_major))?;
        let symbol = |name: &str| -> Result<*const c_void, RuntimeError> {
            // SAFETY: only the address is read here; each is transmuted below to the
            // signature cuBLAS's headers give that function.
            unsafe { lib.get::<*const c_void>(name.as_bytes()) }
                .map(|s| *s)
                .map_err(|e| RuntimeError::unsupported(format!("cuBLAS lacks {name}: {e}")))
        };
        let blas_check = |status: c_int, what: &str| {
            if status == 0 {
                Ok(())
            } else {
                Err(RuntimeError::internal(format!(
                    "cuBLAS {what}: status {status}"
                )))
            }
        };
        // SAFETY: each symbol has the signature it is transmuted to (cublas_api.h); the stream
        // and the workspace are live device objects of the current context.
        unsafe {
            let create: unsafe extern "C" fn(*mut BlasHandle) -> c_int =
                std::mem::transmute(symbol("cublasCreate_v2")?);
            let set_stream: unsafe extern "C" fn(BlasHandle, sys::CUstream) -> c_int =
                std::mem::transmute(symbol("cublasSetStream_v2")?);
            let set_workspace: unsafe extern "C" fn(BlasHandle, *mut c_void, usize) -> c_int =
                std::mem::transmute(symbol("cublasSetWorkspace_v2")?);
            let sgemm: SgemmStridedBatched =
                std::mem::transmute(symbol("cublasSgemmStridedBatched")?);
            let gemm_ex: GemmStridedBatchedEx =
                std::mem::transmute(symbol("cublasGemmStridedBatchedEx")?);
            let mut handle: BlasHandle = std::ptr::null_mut();
            blas_check(create(&mut handle), "create")?;
            blas_check(set_stream(handle, stream), "set stream")?;
            let mut workspace: sys::CUdeviceptr = 0;
            check(
                sys::cuMemAlloc_v2(&mut workspace, BLAS_WORKSPACE),
                "cuBLAS workspace",
            )?;
            blas_check(
                set_workspace(handle, workspace as *mut c_void, BLAS_WORKSPACE),
                "set workspace",
            )?;
            Ok(Blas {
                _lib: lib,
                handle,
                sgemm,
                gemm_ex,
            })
        }
    }
}

impl Gpu {
    /// The GPU `ordinal`, its kernels compiled for it. Fails with the driver's absence before
    /// any cudarc call, which would panic.
    pub fn new(ordinal: usize) -> Result<Gpu, RuntimeError> {
        check_driver()?;
        // SAFETY: plain driver calls with out-pointers to locals; the driver library is loaded.
        unsafe {
            check(sys::cuInit(0), "initialization")?;
            let mut version: c_int = 0;
            check(sys::cuDriverGetVersion(&mut version), "driver version")?;
            let driver_major = (version / 1000) as u32;
            let mut device: sys::CUdevice = 0;
            check(sys::cuDeviceGet(&mut device, ordinal as c_int), "device")?;
            let attribute = |a| -> Result<i32, RuntimeError> {
                let mut v: c_int = 0;
                check(
                    sys::cuDeviceGetAttribute(&mut v, a, device),
                    "device attribute",
                )?;
                Ok(v)
            };
            let major =
                attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
            let minor =
                attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
            let mut raw_name = [0 as std::ffi::c_char; 256];
            check(
                sys::cuDeviceGetName(raw_name.as_mut_ptr(), 256, device),
                "device name",
            )?;
            let device_name = std::ffi::CStr::from_ptr(raw_name.as_ptr())
                .to_string_lossy()
                .into_owned();
            let mut ctx: sys::CUcontext = std::ptr::null_mut();
            check(sys::cuDevicePrimaryCtxRetain(&mut ctx, device), "context")?;
            check(sys::cuCtxSetCurrent(ctx), "context")?;
            let mut stream: sys::CUstream = std::ptr::null_mut();
            check(
                sys::cuStreamCreate(
                    &mut stream,
                    sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32,
                ),
                "stream",
            )?;

            let target = Target {
                major: major as u32,
                minor: minor as u32,
            };
            let modules = load_modules(driver_major, target)?;
            let blas = Blas::load(driver_major, stream)?;
            Ok(Gpu {
                inner: Mutex::new(Inner {
                    ctx,
                    stream,
                    modules,
                    functions: HashMap::new(),
                    blas,
                    graphs: HashMap::new(),
                    pinned: (std::ptr::null_mut(), 0),
                }),
                name: format!("{device_name} (sm_{major}{minor}, driver {version})"),
            })
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, RuntimeError> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: the context lives as long as `self`.
        check(unsafe { sys::cuCtxSetCurrent(inner.ctx) }, "context")?;
        Ok(inner)
    }
}

impl Inner {
    fn function(&mut self, name: &'static str) -> Result<sys::CUfunction, RuntimeError> {
        if let Some(&f) = self.functions.get(name) {
            return Ok(f);
        }
        let c_name = CString::new(name).expect("kernel names hold no NUL");
        for &module in &self.modules {
            let mut f: sys::CUfunction = std::ptr::null_mut();
            // SAFETY: a loaded module and a NUL-terminated name.
            if unsafe { sys::cuModuleGetFunction(&mut f, module, c_name.as_ptr()) }
                == CUresult::CUDA_SUCCESS
            {
                self.functions.insert(name, f);
                return Ok(f);
            }
        }
        Err(RuntimeError::internal(format!(
            "no kernel named {name} in the modules"
        )))
    }

    fn launch(&mut self, k: &KernelCall) -> Result<(), RuntimeError> {
        let f = self.function(k.function)?;
        let mut params: Vec<*mut c_void> =
            k.params.iter().map(|p| p.as_ptr() as *mut c_void).collect();
        // SAFETY: each pointer is to the bytes of one parameter, as the kernel's C signature
        // takes it (lowering and the emulator's tests hold that); they outlive the call,
        // which copies them.
        check(
            unsafe {
                sys::cuLaunchKernel(
                    f,
                    k.grid[0],
                    k.grid[1],
                    k.grid[2],
                    k.block[0],
                    k.block[1],
                    k.block[2],
                    k.shared_bytes,
                    self.stream,
                    params.as_mut_ptr(),
                    std::ptr::null_mut(),
                )
            },
            &format!("launching {}", k.function),
        )
    }

    fn gemm(&mut self, g: &CublasGemm) -> Result<(), RuntimeError> {
        // SAFETY: the addresses are device memory of the arena and constants, sized by the
        // lowering for these extents and types; cuBLAS reads alpha and beta from host memory,
        // f32s for SGEMM and for the Ex call's CUBLAS_COMPUTE_32F alike.
        let status = unsafe {
            match g.ab_type {
                DataType::F32 => (self.blas.sgemm)(
                    self.blas.handle,
                    g.transa as c_int,
                    g.transb as c_int,
                    g.m,
                    g.n,
                    g.k,
                    &g.alpha,
                    g.a as *const f32,
                    g.lda,
                    g.stride_a,
                    g.b as *const f32,
                    g.ldb,
                    g.stride_b,
                    &g.beta,
                    g.c as *mut f32,
                    g.ldc,
                    g.stride_c,
                    g.batch_count,
                ),
                DataType::F16 => (self.blas.gemm_ex)(
                    self.blas.handle,
                    g.transa as c_int,
                    g.transb as c_int,
                    g.m,
                    g.n,
                    g.k,
                    (&g.alpha as *const f32).cast(),
                    g.a as *const c_void,
                    g.ab_type as c_int,
                    g.lda,
                    g.stride_a,
                    g.b as *const c_void,
                    g.ab_type as c_int,
                    g.ldb,
                    g.stride_b,
                    (&g.beta as *const f32).cast(),
                    g.c as *mut c_void,
                    DataType::F32 as c_int,
                    g.ldc,
                    g.stride_c,
                    g.batch_count,
                    COMPUTE_32F,
                    GEMM_DEFAULT,
                ),
            }
        };
        if status == 0 {
            Ok(())
        } else {
            Err(RuntimeError::internal(format!(
                "cuBLAS GEMM ({:?} A and B): status {status}",
                g.ab_type
            )))
        }
    }

    fn issue(&mut self, calls: &[Call]) -> Result<(), RuntimeError> {
        for call in calls {
            match call {
                Call::Kernel(k) => self.launch(k)?,
                Call::Gemm(g) => self.gemm(&column_major(g)?)?,
                Call::Copy { from, to, bytes } => {
                    // SAFETY: device addresses of the arena and constants, in bounds by the
                    // program's layout.
                    let copied =
                        unsafe { sys::cuMemcpyDtoDAsync_v2(*to, *from, *bytes, self.stream) };
                    check(copied, "copy")?
                }
                Call::Zero { to, bytes } => {
                    // SAFETY: as for copies.
                    let zeroed = unsafe { sys::cuMemsetD8Async(*to, 0, *bytes, self.stream) };
                    check(zeroed, "zero")?
                }
            }
        }
        Ok(())
    }

    /// A pinned host buffer of at least `bytes`, kept for the next transfers.
    fn pinned(&mut self, bytes: usize) -> Result<*mut c_void, RuntimeError> {
        if self.pinned.1 < bytes {
            // SAFETY: the old buffer came from cuMemHostAlloc and no copy is in flight (every
            // transfer waits for its stream).
            unsafe {
                if !self.pinned.0.is_null() {
                    sys::cuMemFreeHost(self.pinned.0);
                }
                let mut p: *mut c_void = std::ptr::null_mut();
                check(sys::cuMemHostAlloc(&mut p, bytes, 0), "pinned buffer")?;
                self.pinned = (p, bytes);
            }
        }
        Ok(self.pinned.0)
    }

    fn wait(&self) -> Result<(), RuntimeError> {
        // SAFETY: the stream lives as long as `self`.
        check(
            unsafe { sys::cuStreamSynchronize(self.stream) },
            "synchronize",
        )
    }
}

impl Executor for Gpu {
    fn alloc(&self, bytes: usize) -> Result<DevicePtr, RuntimeError> {
        let _inner = self.lock()?;
        let mut p: sys::CUdeviceptr = 0;
        // SAFETY: an out-pointer to a local.
        check(unsafe { sys::cuMemAlloc_v2(&mut p, bytes) }, "allocation")?;
        Ok(p)
    }

    fn free(&self, ptr: DevicePtr) {
        if let Ok(inner) = self.lock() {
            // Frees wait for the work that may still read the memory.
            let _ = inner.wait();
            // SAFETY: `ptr` came from `alloc` and is freed once.
            unsafe { sys::cuMemFree_v2(ptr) };
        }
    }

    fn upload(&self, to: DevicePtr, bytes: &[u8]) -> Result<(), RuntimeError> {
        let mut inner = self.lock()?;
        let staging = inner.pinned(bytes.len())?;
        // SAFETY: the staging buffer holds at least `bytes.len()` bytes, and the copy is
        // waited for before the buffer is reused.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), staging.cast::<u8>(), bytes.len());
            check(
                sys::cuMemcpyHtoDAsync_v2(to, staging, bytes.len(), inner.stream),
                "upload",
            )?;
        }
        inner.wait()
    }

    fn download(&self, from: DevicePtr, out: &mut [u8]) -> Result<(), RuntimeError> {
        let mut inner = self.lock()?;
        let staging = inner.pinned(out.len())?;
        // SAFETY: as for uploads; the copy is complete once the stream is waited for.
        unsafe {
            check(
                sys::cuMemcpyDtoHAsync_v2(staging, from, out.len(), inner.stream),
                "download",
            )?;
            inner.wait()?;
            std::ptr::copy_nonoverlapping(staging.cast::<u8>(), out.as_mut_ptr(), out.len());
        }
        Ok(())
    }

    fn run(&self, key: u64, calls: &[Call]) -> Result<(), RuntimeError> {
        let mut inner = self.lock()?;
        if key == 0 {
            inner.issue(calls)?;
            return inner.wait();
        }
        if let Some(&exec) = inner.graphs.get(&key) {
            // SAFETY: an instantiated graph of this context.
            return check(
                unsafe { sys::cuGraphLaunch(exec, inner.stream) },
                "graph launch",
            );
        }
        // SAFETY: capture on this thread's stream; the graph is instantiated, then destroyed
        // (the instance keeps what it needs).
        unsafe {
            check(
                sys::cuStreamBeginCapture_v2(
                    inner.stream,
                    sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
                ),
                "begin capture",
            )?;
            let issued = inner.issue(calls);
            let mut graph: sys::CUgraph = std::ptr::null_mut();
            let ended = check(
                sys::cuStreamEndCapture(inner.stream, &mut graph),
                "end capture",
            );
            issued?;
            ended?;
            let mut exec: sys::CUgraphExec = std::ptr::null_mut();
            let made = check(
                sys::cuGraphInstantiateWithFlags(&mut exec, graph, 0),
                "instantiate",
            );
            sys::cuGraphDestroy(graph);
            made?;
            inner.graphs.insert(key, exec);
            check(sys::cuGraphLaunch(exec, inner.stream), "graph launch")
        }
    }

    fn forget(&self, key: u64) {
        if let Ok(mut inner) = self.lock() {
            if let Some(exec) = inner.graphs.remove(&key) {
                let _ = inner.wait();
                // SAFETY: an instantiated graph no longer launched.
                unsafe { sys::cuGraphExecDestroy(exec) };
            }
        }
    }
}
