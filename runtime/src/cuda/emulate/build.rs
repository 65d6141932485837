//! Building the kernel sources for the host: every module of `sources.rs`, with `shim.h`
//! force-included, plus a generated launcher per kernel, compiled by the system's C++ compiler
//! into one shared library, once per process.
//!
//! Each kernel `K` gets, appended to its own module's translation unit (so the launch loop can
//! inline the kernel and its coordinates are that module's):
//! - `int emu_K(void* const* params, const unsigned* grid, const unsigned* block)`: runs every
//!   thread of the launch, each parameter read from the bytes `params[i]` points at, as
//!   `cuLaunchKernel`'s kernelParams do;
//! - `unsigned long long emu_sizes_K[]`: the parameter count, then each parameter's size, so a
//!   launch whose bytes do not fit the C signature is refused instead of misread.
//!
//! The flags keep f32 arithmetic as written, as NVRTC's `--fmad=false` does: no contraction
//! into FMAs, no fast math (x86-64 evaluates f32 in f32, with no excess precision).

use super::super::sources::{Source, HEADERS, MODULES};
use crate::RuntimeError;
use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const SHIM: &str = include_str!("shim.h");

const FLAGS: &[&str] = &[
    "-std=c++17",
    "-O2",
    "-fPIC",
    "-ffp-contract=off",
    "-fno-fast-math",
    // CUDA code reinterprets pointers freely; nothing here may depend on type-based aliasing.
    "-fno-strict-aliasing",
    // Lets a launcher inline its kernel, which -fPIC alone keeps interposable.
    "-fno-semantic-interposition",
    "-include",
    "shim.h",
];

/// `emu_K`: 1 if the kernel reached a `__syncthreads`.
pub(super) type Launcher =
    unsafe extern "C" fn(params: *const *mut c_void, grid: *const u32, block: *const u32) -> c_int;

/// One kernel of the library.
#[derive(Debug)]
pub(super) struct Kernel {
    pub launch: Launcher,
    /// Each parameter's size in bytes.
    pub sizes: Vec<usize>,
    /// Which parameters are pointers.
    pub pointers: Vec<bool>,
}

/// The compiled kernels, by their `extern "C"` names.
#[derive(Debug)]
pub(super) struct Kernels {
    pub by_name: HashMap<&'static str, Kernel>,
    /// Keeps the code of the launchers loaded, for the rest of the process.
    _library: libloading::Library,
}

/// The kernels, built on first use; a failed build fails every later call the same way.
pub(super) fn kernels() -> Result<&'static Kernels, RuntimeError> {
    static KERNELS: OnceLock<Result<Kernels, RuntimeError>> = OnceLock::new();
    KERNELS.get_or_init(build).as_ref().map_err(Clone::clone)
}

/// A kernel's C signature as the source spells it.
#[derive(Clone, Debug, PartialEq)]
struct Signature {
    name: &'static str,
    /// Each parameter's type: the declaration less its name.
    types: Vec<String>,
}

fn build() -> Result<Kernels, RuntimeError> {
    let dir = std::env::temp_dir().join(format!(
        "temblor-emulator-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let built = compile(&dir).and_then(|(library, signatures)| load(&library, &signatures));
    // The loaded library stays mapped once its file is gone.
    let _ = std::fs::remove_dir_all(&dir);
    built
}

/// Writes and compiles everything in `dir`: the library's path and every kernel's signature.
fn compile(dir: &Path) -> Result<(PathBuf, Vec<Signature>), RuntimeError> {
    let io = |e: std::io::Error| {
        RuntimeError::internal(format!("emulator build in {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::write(dir.join("shim.h"), SHIM).map_err(io)?;
    for source in HEADERS.iter().chain(MODULES) {
        std::fs::write(dir.join(source.name), source.text).map_err(io)?;
    }
    let mut signatures = Vec::new();
    let mut units = Vec::new();
    for module in MODULES {
        let found = kernel_signatures(module).map_err(RuntimeError::internal)?;
        let unit = format!("emu_{}.cpp", module.name.trim_end_matches(".cu"));
        std::fs::write(dir.join(&unit), launchers(module, &found)).map_err(io)?;
        signatures.extend(found);
        units.push(unit);
    }
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut objects = Vec::new();
    for chunk in units.chunks(jobs) {
        let children = chunk
            .iter()
            .map(|unit| {
                let object = format!("{unit}.o");
                let mut command = compiler();
                command
                    .args(FLAGS)
                    .args(["-I", ".", "-c", unit, "-o", &object]);
                objects.push(object);
                spawn(command, dir)
            })
            .collect::<Result<Vec<_>, _>>()?;
        for child in children {
            finish(child)?;
        }
    }
    let library = dir.join("libtemblor_emulator.so");
    let mut link = compiler();
    link.args(["-shared", "-o"]).arg(&library).args(&objects);
    finish(spawn(link, dir)?)?;
    Ok((library, signatures))
}

/// The C++ compiler: `$CXX` (which may carry arguments, as `ccache g++`), else `c++`.
fn compiler() -> Command {
    let cxx = std::env::var("CXX").unwrap_or_default();
    let mut words = cxx.split_whitespace();
    let mut command = Command::new(words.next().unwrap_or("c++"));
    command.args(words);
    command
}

fn spawn(mut command: Command, dir: &Path) -> Result<(String, std::process::Child), RuntimeError> {
    let shown = format!("{command:?}");
    let child = command
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            RuntimeError::unsupported(format!(
                "the CUDA emulator compiles its kernels with a C++ compiler (set CXX to \
                 choose one), but {shown} did not start: {e}"
            ))
        })?;
    Ok((shown, child))
}

fn finish((shown, child): (String, std::process::Child)) -> Result<(), RuntimeError> {
    let output = child
        .wait_with_output()
        .map_err(|e| RuntimeError::internal(format!("{shown}: {e}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(RuntimeError::internal(format!(
        "building the CUDA emulator's kernels: {shown} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}

fn load(library: &Path, signatures: &[Signature]) -> Result<Kernels, RuntimeError> {
    let failed = |e: libloading::Error| {
        RuntimeError::internal(format!("loading {}: {e}", library.display()))
    };
    // SAFETY: the library is the one just built from the kernel sources and the shim, whose
    // only initializers are those of their thread_local coordinates.
    let loaded = unsafe { libloading::Library::new(library) }.map_err(failed)?;
    let mut by_name = HashMap::new();
    for s in signatures {
        // SAFETY: `emu_K` is defined by the generated unit with exactly `Launcher`'s signature.
        let launch = unsafe { loaded.get::<Launcher>(format!("emu_{}", s.name).as_bytes()) }
            .map_err(failed)?;
        // SAFETY: `emu_sizes_K` is a const array of 1 + (parameter count) u64s, generated
        // beside `emu_K` from the same signature, alive while the library is.
        let sizes = unsafe {
            let table = loaded
                .get::<*const u64>(format!("emu_sizes_{}", s.name).as_bytes())
                .map_err(failed)?;
            std::slice::from_raw_parts(*table, s.types.len() + 1)
        };
        if sizes[0] as usize != s.types.len() {
            return Err(RuntimeError::internal(format!(
                "kernel {} has {} parameters in its launcher, {} in its source",
                s.name,
                sizes[0],
                s.types.len()
            )));
        }
        let kernel = Kernel {
            launch: *launch,
            sizes: sizes[1..].iter().map(|&n| n as usize).collect(),
            pointers: s.types.iter().map(|t| t.contains('*')).collect(),
        };
        if by_name.insert(s.name, kernel).is_some() {
            return Err(RuntimeError::internal(format!(
                "kernel {} is defined in two modules",
                s.name
            )));
        }
    }
    Ok(Kernels {
        by_name,
        _library: loaded,
    })
}

/// The generated translation unit of `module`: the module itself, then each kernel's launcher
/// and parameter sizes.
fn launchers(module: &Source, kernels: &[Signature]) -> String {
    let mut unit = format!("#include \"{}\"\n", module.name);
    for k in kernels {
        let sizes: Vec<String> = k.types.iter().map(|t| format!("sizeof({t})")).collect();
        let args: Vec<String> = (k.types.iter().enumerate())
            .map(|(i, t)| format!("emu_arg<{t}>(params[{i}])"))
            .collect();
        unit += &format!(
            "\nextern \"C\" const unsigned long long emu_sizes_{name}[] = {{{count}{sep}{sizes}}};\n\
             extern \"C\" int emu_{name}(void* const* params, const unsigned int* grid,\n\
             \x20                          const unsigned int* block) {{\n\
             \x20   return emu_launch(grid, block, [params] {{ {name}({args}); }});\n\
             }}\n",
            name = k.name,
            count = k.types.len(),
            sep = if k.types.is_empty() { "" } else { ", " },
            sizes = sizes.join(", "),
            args = args.join(", "),
        );
    }
    unit
}

/// Every `extern "C" __global__ void NAME(PARAMS)` of `module`, comments aside.
fn kernel_signatures(module: &Source) -> Result<Vec<Signature>, String> {
    let text = module.text;
    let code = blank_comments(text);
    let mut found = Vec::new();
    let mut rest = 0;
    while let Some(at) = code[rest..].find("extern \"C\"") {
        let start = rest + at + "extern \"C\"".len();
        rest = start;
        let declaration = code[start..].trim_start();
        if !declaration.starts_with("__global__") {
            continue;
        }
        let head = start + (code.len() - start - declaration.len());
        let open = code[head..]
            .find('(')
            .map(|i| head + i)
            .ok_or_else(|| format!("{}: a kernel without parameters", module.name))?;
        let name = match code[head..open].split_whitespace().collect::<Vec<_>>()[..] {
            ["__global__", "void", name] if is_identifier(name) => name,
            _ => {
                return Err(format!(
                    "{}: cannot read the kernel signature `{}`",
                    module.name,
                    code[head..open].trim()
                ))
            }
        };
        let close = matching_paren(&code, open)
            .ok_or_else(|| format!("{}: kernel {name}'s parameters do not end", module.name))?;
        let types = parameter_types(&code[open + 1..close])
            .map_err(|e| format!("{}: kernel {name}: {e}", module.name))?;
        // The name is sliced from the source itself, which lives as long as the program.
        let name_at = head + code[head..open].rfind(name).unwrap_or(0);
        found.push(Signature {
            name: &text[name_at..name_at + name.len()],
            types,
        });
        rest = close;
    }
    Ok(found)
}

/// `text` with every comment's characters (newlines aside) replaced by spaces, so offsets into
/// it are offsets into `text`.
fn blank_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let next = bytes.get(i + 1).copied();
        if in_string {
            in_string = bytes[i] != b'"' || bytes[i - 1] == b'\\';
            out.push(bytes[i]);
            i += 1;
        } else if bytes[i] == b'/' && next == Some(b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if bytes[i] == b'/' && next == Some(b'*') {
            let end = text[i + 2..]
                .find("*/")
                .map_or(bytes.len(), |e| i + 2 + e + 2);
            out.extend(
                bytes[i..end]
                    .iter()
                    .map(|&b| if b == b'\n' { b'\n' } else { b' ' }),
            );
            i = end;
        } else {
            in_string = bytes[i] == b'"';
            out.push(bytes[i]);
            i += 1;
        }
    }
    // Only ASCII bytes were replaced, by ASCII, so the text is as valid as it was.
    String::from_utf8(out).unwrap_or_default()
}

/// The offset of the `)` that closes the `(` at `open`.
fn matching_paren(code: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in code[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Each parameter's type: the declaration less its last identifier, spaces collapsed.
fn parameter_types(list: &str) -> Result<Vec<String>, String> {
    let list = list.trim();
    if list.is_empty() || list == "void" {
        return Ok(Vec::new());
    }
    let mut params = Vec::new();
    let (mut depth, mut begin) = (0i32, 0);
    for (i, c) in list.char_indices() {
        match c {
            '(' | '<' | '[' => depth += 1,
            ')' | '>' | ']' => depth -= 1,
            ',' if depth == 0 => {
                params.push(&list[begin..i]);
                begin = i + 1;
            }
            _ => {}
        }
    }
    params.push(&list[begin..]);
    params
        .into_iter()
        .map(|p| {
            let p = p.split_whitespace().collect::<Vec<_>>().join(" ");
            let name_at = p
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            let (ty, name) = p.split_at(name_at);
            let ty = ty.trim();
            match is_identifier(name) && !ty.is_empty() {
                true => Ok(ty.to_string()),
                false => Err(format!("cannot split `{p}` into a type and a name")),
            }
        })
        .collect()
}

fn is_identifier(word: &str) -> bool {
    let mut chars = word.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_split_types_from_names_past_comments() {
        let module = Source {
            name: "test.cu",
            text: "// extern \"C\" __global__ void commented(int a) {}\n\
                   template <typename T> __device__ void helper(T x) {}\n\
                   extern \"C\" __global__ void first(const float* x, long long n,\n\
                   \x20   StridedParams /* by value */ p, unsigned char *out) {}\n\
                   extern \"C\" __global__ void second() {}\n",
        };
        let found = kernel_signatures(&module).unwrap();
        let expected = [
            (
                "first",
                vec![
                    "const float*",
                    "long long",
                    "StridedParams",
                    "unsigned char *",
                ],
            ),
            ("second", vec![]),
        ];
        assert_eq!(found.len(), expected.len());
        for (s, (name, types)) in found.iter().zip(expected) {
            assert_eq!(
                (s.name, s.types.iter().map(String::as_str).collect()),
                (name, types)
            );
        }
    }

    #[test]
    fn a_parameter_without_a_name_is_refused() {
        let module = Source {
            name: "test.cu",
            text: "extern \"C\" __global__ void k(const float*, int n) {}\n",
        };
        let err = kernel_signatures(&module).unwrap_err();
        assert!(err.contains("cannot split `const float*`"), "{err}");
    }

    #[test]
    fn every_module_of_the_sources_has_readable_kernels() {
        let names: Vec<&str> = MODULES
            .iter()
            .flat_map(|m| kernel_signatures(m).unwrap())
            .map(|s| s.name)
            .collect();
        assert!(names.contains(&"runtime_strided_copy_4"), "{names:?}");
        assert!(names.contains(&"ops_lib_nms_reduce"), "{names:?}");
    }
}
