//! Compiling the kernel sources at run time with NVRTC, for the GPU a plan runs on. NVRTC needs
//! no GPU and no driver, so the tests compile every module through this same code on any
//! machine that has the library (the `nvidia-cuda-nvrtc` wheel of `scripts/requirements.txt`).
//!
//! Bound by hand (six calls) rather than through cudarc's NVRTC module, which finds the library
//! only under the sonames of the CUDA version it was built for and panics when it cannot:
//! the library here is chosen by path and version (`toolkit.rs`), and its absence is an error.

use super::sources::{Source, HEADERS, MODULES};
use super::toolkit::{self, Found};
use crate::RuntimeError;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

type Program = *mut c_void;
type Status = c_int;

/// The options every module is compiled with. `--fmad=false`: a multiply and an add stay two
/// roundings, as on the CPU, so the elementwise kernels give the CPU runtime's bits.
const OPTIONS: &[&str] = &["--fmad=false", "--std=c++17", "-default-device"];

/// A loaded NVRTC.
pub(crate) struct Nvrtc {
    lib: libloading::Library,
    pub found: Found,
}

impl std::fmt::Debug for Nvrtc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Nvrtc({})", self.found.path.display())
    }
}

/// What compiling one module gives: a CUBIN for the GPU's own architecture (`sm_90`), which the
/// driver loads as it is, where PTX would be compiled again by the driver's JIT, whose PTX
/// version must not be newer than the driver's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub major: u32,
    pub minor: u32,
}

impl Target {
    fn arch(self) -> String {
        format!("--gpu-architecture=sm_{}{}", self.major, self.minor)
    }
}

impl Nvrtc {
    /// The newest NVRTC of CUDA `at_most` or older (the driver's major version), from the
    /// usual folders and the `nvidia-*` wheels.
    pub fn load(at_most: Option<u32>) -> Result<Nvrtc, RuntimeError> {
        let (lib, found) = toolkit::load("nvrtc", at_most)?;
        Ok(Nvrtc { lib, found })
    }

    fn symbol<T: Copy>(&self, name: &str) -> Result<T, RuntimeError> {
        // SAFETY: every caller names an NVRTC function with the signature `T` the NVRTC
        // headers give it.
        unsafe { self.lib.get::<T>(name.as_bytes()) }
            .map(|s| *s)
            .map_err(|e| RuntimeError::unsupported(format!("NVRTC lacks {name}: {e}")))
    }

    fn check(&self, status: Status, what: &str) -> Result<(), RuntimeError> {
        if status == 0 {
            return Ok(());
        }
        let text = self
            .symbol::<unsafe extern "C" fn(Status) -> *const c_char>("nvrtcGetErrorString")
            .map(|f| {
                // SAFETY: NVRTC returns a static string for every status.
                let text = unsafe { CStr::from_ptr(f(status)) };
                text.to_string_lossy().into_owned()
            })
            .unwrap_or_else(|_| format!("status {status}"));
        Err(RuntimeError::internal(format!("NVRTC {what}: {text}")))
    }

    /// Compiles `module` with every header, for `target`.
    pub fn compile(&self, module: &Source, target: Target) -> Result<Vec<u8>, RuntimeError> {
        let create = self.symbol::<unsafe extern "C" fn(
            *mut Program,
            *const c_char,
            *const c_char,
            c_int,
            *const *const c_char,
            *const *const c_char,
        ) -> Status>("nvrtcCreateProgram")?;
        let compile = self
            .symbol::<unsafe extern "C" fn(Program, c_int, *const *const c_char) -> Status>(
                "nvrtcCompileProgram",
            )?;
        let destroy =
            self.symbol::<unsafe extern "C" fn(*mut Program) -> Status>("nvrtcDestroyProgram")?;
        let size = self
            .symbol::<unsafe extern "C" fn(Program, *mut usize) -> Status>("nvrtcGetCUBINSize")?;
        let get =
            self.symbol::<unsafe extern "C" fn(Program, *mut c_char) -> Status>("nvrtcGetCUBIN")?;

        let c = |s: &str| CString::new(s).expect("sources and options hold no NUL");
        let text = c(module.text);
        let name = c(module.name);
        let header_texts: Vec<CString> = HEADERS.iter().map(|h| c(h.text)).collect();
        let header_names: Vec<CString> = HEADERS.iter().map(|h| c(h.name)).collect();
        let texts: Vec<*const c_char> = header_texts.iter().map(|s| s.as_ptr()).collect();
        let names: Vec<*const c_char> = header_names.iter().map(|s| s.as_ptr()).collect();
        let mut options: Vec<CString> = OPTIONS.iter().map(|o| c(o)).collect();
        options.push(c(&target.arch()));
        let option_ptrs: Vec<*const c_char> = options.iter().map(|s| s.as_ptr()).collect();

        let mut program: Program = std::ptr::null_mut();
        // SAFETY: every pointer is to a NUL-terminated string that outlives the call, and the
        // counts are the arrays' lengths.
        let created = unsafe {
            create(
                &mut program,
                text.as_ptr(),
                name.as_ptr(),
                texts.len() as c_int,
                texts.as_ptr(),
                names.as_ptr(),
            )
        };
        self.check(created, &format!("creating {}", module.name))?;
        // SAFETY: `program` was created above; the options outlive the call.
        let compiled =
            unsafe { compile(program, option_ptrs.len() as c_int, option_ptrs.as_ptr()) };
        let result = if compiled != 0 {
            let log = self.log(program).unwrap_or_default();
            self.check(compiled, &format!("compiling {}", module.name))
                .map_err(|e| RuntimeError::internal(format!("{e}\n{log}")))
                .map(|_| Vec::new())
        } else {
            let mut bytes = 0usize;
            // SAFETY: `program` compiled; NVRTC writes the size, then that many bytes.
            let sized = unsafe { size(program, &mut bytes) };
            self.check(sized, "sizing the output").and_then(|_| {
                let mut out = vec![0u8; bytes];
                // SAFETY: `out` holds the `bytes` NVRTC said it writes.
                let read = unsafe { get(program, out.as_mut_ptr().cast()) };
                self.check(read, "reading the output").map(|_| out)
            })
        };
        // SAFETY: `program` was created above and is destroyed once.
        unsafe { destroy(&mut program) };
        result
    }

    fn log(&self, program: Program) -> Result<String, RuntimeError> {
        let size = self.symbol::<unsafe extern "C" fn(Program, *mut usize) -> Status>(
            "nvrtcGetProgramLogSize",
        )?;
        let get = self
            .symbol::<unsafe extern "C" fn(Program, *mut c_char) -> Status>("nvrtcGetProgramLog")?;
        let mut bytes = 0usize;
        // SAFETY: NVRTC writes the log's size, then that many bytes.
        let sized = unsafe { size(program, &mut bytes) };
        self.check(sized, "sizing the log")?;
        let mut log = vec![0u8; bytes];
        // SAFETY: `log` holds the `bytes` NVRTC said it writes.
        let read = unsafe { get(program, log.as_mut_ptr().cast()) };
        self.check(read, "reading the log")?;
        Ok(String::from_utf8_lossy(&log)
            .trim_end_matches('\0')
            .to_owned())
    }

    /// Every module, compiled for `target`, by name, through the cache of [`cache_dir`].
    pub fn compile_all(
        &self,
        target: Target,
    ) -> Result<Vec<(&'static str, Vec<u8>)>, RuntimeError> {
        let cache = cache_dir();
        MODULES
            .iter()
            .map(|m| Ok((m.name, self.compile_cached(m, target, cache.as_deref())?)))
            .collect()
    }

    /// `module` for `target` as an earlier process compiled it into `cache` (the same
    /// sources, options, NVRTC and target), or compiled now and stored there. NVRTC takes
    /// seconds for all the modules, which every process using the GPU would otherwise spend.
    /// A cache that cannot be read or written, or a file that fails its checksum, is passed
    /// over: the cache only ever saves time.
    pub fn compile_cached(
        &self,
        module: &Source,
        target: Target,
        cache: Option<&Path>,
    ) -> Result<Vec<u8>, RuntimeError> {
        let Some(dir) = cache else {
            return self.compile(module, target);
        };
        let key = {
            let mut h = DefaultHasher::new();
            module.text.hash(&mut h);
            for header in HEADERS {
                (header.name, header.text).hash(&mut h);
            }
            (OPTIONS, target.arch(), &self.found.path).hash(&mut h);
            h.finish()
        };
        let file = dir.join(format!("{}-{key:016x}.cubin", module.name));
        if let Some(image) = std::fs::read(&file).ok().and_then(|b| checked(&b)) {
            return Ok(image);
        }
        let image = self.compile(module, target)?;
        let mut stored = image.clone();
        stored.extend_from_slice(&checksum(&image).to_le_bytes());
        // Written aside and renamed, so a process reading the cache never sees half a file.
        let aside = dir.join(format!(
            ".{}-{key:016x}.{}",
            module.name,
            std::process::id()
        ));
        let written = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&aside, &stored))
            .and_then(|_| std::fs::rename(&aside, &file));
        if written.is_err() {
            let _ = std::fs::remove_file(&aside);
        }
        Ok(image)
    }
}

/// Where compiled modules are kept: `$TEMBLOR_CUDA_CACHE`, else `~/.cache/temblor/cuda`.
pub(crate) fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("TEMBLOR_CUDA_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/temblor/cuda")))
}

fn checksum(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// A stored image without its checksum, when the checksum holds.
fn checked(stored: &[u8]) -> Option<Vec<u8>> {
    let (image, sum) = stored.split_at_checked(stored.len().checked_sub(8)?)?;
    (checksum(image).to_le_bytes() == sum).then(|| image.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NVRTC of the test environment: the `nvidia-cuda-nvrtc` wheel of the test venv.
    fn nvrtc() -> Nvrtc {
        Nvrtc::load(None).unwrap_or_else(|e| {
            panic!("{e}: run scripts/setup-python.sh, which installs NVRTC from PyPI")
        })
    }

    #[test]
    fn every_module_compiles_for_ampere_and_hopper() {
        let nvrtc = nvrtc();
        for (major, minor) in [(8, 0), (9, 0)] {
            let target = Target { major, minor };
            for module in MODULES {
                let out = nvrtc
                    .compile(module, target)
                    .unwrap_or_else(|e| panic!("{} for {target:?}: {e}", module.name));
                // An ELF image.
                assert_eq!(&out[..4], b"\x7fELF", "{}", module.name);
            }
        }
    }

    #[test]
    fn the_cache_returns_what_nvrtc_compiled_and_recompiles_a_damaged_file() {
        let nvrtc = nvrtc();
        let dir = tempfile::tempdir().unwrap();
        let target = Target { major: 8, minor: 0 };
        let module = &MODULES[0];
        let fresh = nvrtc.compile(module, target).unwrap();
        let first = nvrtc
            .compile_cached(module, target, Some(dir.path()))
            .unwrap();
        assert_eq!(first, fresh);
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        // From the file now: the same image.
        let again = nvrtc
            .compile_cached(module, target, Some(dir.path()))
            .unwrap();
        assert_eq!(again, fresh);
        // A byte changed: the checksum fails, and the module is compiled again.
        let mut damaged = std::fs::read(&files[0]).unwrap();
        damaged[100] ^= 1;
        std::fs::write(&files[0], &damaged).unwrap();
        let repaired = nvrtc
            .compile_cached(module, target, Some(dir.path()))
            .unwrap();
        assert_eq!(repaired, fresh);
        assert_eq!(std::fs::read(&files[0]).unwrap()[..fresh.len()], fresh[..]);
    }

    #[test]
    fn a_compile_error_carries_nvrtc_log() {
        let broken = Source {
            name: "broken.cu",
            text: "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }",
        };
        let e = nvrtc()
            .compile(&broken, Target { major: 8, minor: 0 })
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("broken.cu") && e.contains("undefined_name"),
            "{e}"
        );
    }
}
