//! Finding the CUDA libraries where they are installed, without linking any: the driver
//! (`libcuda.so.1`, from the GPU's driver package), and NVRTC and cuBLAS from a toolkit or from
//! the `nvidia-*` Python wheels that PyTorch and `scripts/requirements.txt` install
//! (`site-packages/nvidia/<part>/lib`, or `nvidia/cu13/lib` for CUDA 13's wheels). Every build
//! runs on machines without any of them: a missing library is an error that says which, never
//! a panic, and nothing CUDA is called before the driver has been found.

use crate::RuntimeError;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The soname of the driver library, which every driver installs.
pub(crate) const DRIVER: &str = "libcuda.so.1";

/// The error of a machine without the driver, as the CLI prints it.
pub const NO_DRIVER: &str =
    "no CUDA driver found (libcuda.so.1): --device cuda needs an NVIDIA GPU and its driver";

/// Whether the driver library loads. Checked before the first driver call, since cudarc
/// panics when it cannot load the library; loading it here also leaves it loaded for cudarc.
pub fn driver_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    *PRESENT.get_or_init(|| {
        // SAFETY: the driver library's initializers only register the library; loading it
        // runs no CUDA call.
        match unsafe { libloading::Library::new(DRIVER) } {
            // Kept loaded for the process, as cudarc's own load of the same soname will be.
            Ok(lib) => {
                std::mem::forget(lib);
                true
            }
            Err(_) => false,
        }
    })
}

/// Checks that the driver library has every function in `names`.
pub(crate) fn driver_has(names: &[&str]) -> Result<(), RuntimeError> {
    // SAFETY: as in `driver_present`; the library is already loaded, this takes a reference.
    let lib = unsafe { libloading::Library::new(DRIVER) }
        .map_err(|_| RuntimeError::unsupported(NO_DRIVER))?;
    let missing: Vec<&str> = names
        .iter()
        .copied()
        // SAFETY: only the symbol's presence is checked; it is never called through here.
        .filter(|n| unsafe { lib.get::<*const std::ffi::c_void>(n.as_bytes()) }.is_err())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(RuntimeError::unsupported(format!(
            "the CUDA driver {DRIVER} lacks {}: not a CUDA driver, or one older than CUDA 12",
            missing.join(", ")
        )))
    }
}

/// The folders searched for toolkit libraries, in order: `$TEMBLOR_CUDA_LIBS` (a `:`-separated
/// list, for an unusual install), `$LD_LIBRARY_PATH`, the usual toolkit folders, then the
/// `nvidia-*` wheels' folders of the Python environments found (`$VIRTUAL_ENV`, temblor's test
/// venv, the system's and the user's site-packages, PyTorch's own `torch/lib`).
pub(crate) fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for var in ["TEMBLOR_CUDA_LIBS", "LD_LIBRARY_PATH"] {
        if let Some(list) = std::env::var_os(var) {
            dirs.extend(std::env::split_paths(&list));
        }
    }
    if let Some(cuda) = std::env::var_os("CUDA_PATH") {
        dirs.push(Path::new(&cuda).join("lib64"));
    }
    dirs.extend(
        [
            "/usr/local/cuda/lib64",
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib64",
        ]
        .map(PathBuf::from),
    );
    for site in site_packages() {
        dirs.extend(wheel_lib_dirs(&site));
        dirs.push(site.join("torch/lib"));
    }
    dirs.retain(|d| d.is_dir());
    dirs.dedup();
    dirs
}

/// The site-packages folders of the Python environments a GPU machine is likely to have.
fn site_packages() -> Vec<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        roots.push(PathBuf::from(venv).join("lib"));
    }
    if let Some(home) = &home {
        roots.push(home.join(".cache/temblor/venv/lib"));
        roots.push(home.join(".local/lib"));
    }
    roots.extend(["/usr/local/lib", "/usr/lib", "/opt/conda/lib"].map(PathBuf::from));
    let mut sites = Vec::new();
    for root in roots {
        let Ok(entries) = std::fs::read_dir(&root) else {
            continue;
        };
        let mut pythons: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("python3"))
            })
            .collect();
        pythons.sort();
        for python in pythons {
            for site in ["site-packages", "dist-packages"] {
                let dir = python.join(site);
                if dir.is_dir() {
                    sites.push(dir);
                }
            }
        }
    }
    sites
}

/// `site/nvidia/*/lib`, sorted.
fn wheel_lib_dirs(site: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(site.join("nvidia")) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path().join("lib"))
        .filter(|d| d.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// A library found on disk: its path and the major version its file name ends with
/// (`libnvrtc.so.12` is 12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub path: PathBuf,
    pub major: u32,
}

/// Every `lib<stem>.so.<major>` in `dirs`, newest major first, the first folder first among
/// equals.
pub(crate) fn find(stem: &str, dirs: &[PathBuf]) -> Vec<Found> {
    let prefix = format!("lib{stem}.so.");
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut here: Vec<Found> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let major = name.strip_prefix(&prefix)?.parse::<u32>().ok()?;
                Some(Found {
                    path: e.path(),
                    major,
                })
            })
            .collect();
        here.sort_by_key(|f| f.path.clone());
        found.extend(here);
    }
    // Stable: among equal majors the search order stands.
    found.sort_by_key(|f| std::cmp::Reverse(f.major));
    found.dedup_by(|a, b| a.path == b.path);
    found
}

/// The newest `lib<stem>` whose major version is at most `at_most` (the driver's: a library
/// of a newer CUDA than the driver cannot run on it), loaded.
pub(crate) fn load(
    stem: &str,
    at_most: Option<u32>,
) -> Result<(libloading::Library, Found), RuntimeError> {
    let dirs = search_dirs();
    let all = find(stem, &dirs);
    let usable = all.iter().filter(|f| at_most.is_none_or(|m| f.major <= m));
    let mut failures = Vec::new();
    for candidate in usable {
        // SAFETY: a CUDA library's initializers register the library and call nothing of ours.
        match unsafe { libloading::Library::new(&candidate.path) } {
            Ok(lib) => return Ok((lib, candidate.clone())),
            Err(e) => failures.push(format!("{}: {e}", candidate.path.display())),
        }
    }
    let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(RuntimeError::unsupported(format!(
        "no usable lib{stem}.so{} found in {}{}",
        at_most.map_or(String::new(), |m| format!(" of CUDA {m} or older")),
        searched.join(", "),
        if failures.is_empty() {
            String::new()
        } else {
            format!(" (failed to load: {})", failures.join("; "))
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_major_first_and_search_order_among_equals() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for (dir, name) in [
            (&a, "libnvrtc.so.12"),
            (&a, "libnvrtc-builtins.so.12.8"),
            (&b, "libnvrtc.so.13"),
            (&b, "libnvrtc.so.12"),
            (&b, "libnvrtc.so"),
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let dirs = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        let found: Vec<(PathBuf, u32)> = find("nvrtc", &dirs)
            .into_iter()
            .map(|f| (f.path, f.major))
            .collect();
        assert_eq!(
            found,
            vec![
                (b.path().join("libnvrtc.so.13"), 13),
                (a.path().join("libnvrtc.so.12"), 12),
                (b.path().join("libnvrtc.so.12"), 12),
            ]
        );
    }
}
