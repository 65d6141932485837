//! What the fuzz targets share: the readers take paths (they memory-map weights and look for
//! files beside a model), so each input is written into a fresh temporary directory first, and
//! inputs that hold two files are split at a length prefix.

use std::path::PathBuf;
use tempfile::TempDir;

/// Fuzzed inputs that claim huge sizes must fail on the limits, not exhaust the fuzzer's
/// memory (`-rss_limit_mb=2048`): a value may take 256 MB, a run 1 GB.
pub fn install_limits() {
    temblor_ir::limits::Limits {
        value_bytes: 256 << 20,
        peak_bytes: 1 << 30,
        loop_iterations: 1 << 12,
    }
    .install();
}

/// `files` written into a new temporary directory, each `(name, bytes)`.
pub fn scratch(files: &[(&str, &[u8])]) -> (TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let paths = files
        .iter()
        .map(|(name, bytes)| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("a temporary file");
            path
        })
        .collect();
    (dir, paths)
}

/// `data` split in two at the little-endian u32 length its first four bytes give (clamped).
pub fn split(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<4>() else {
        return (data, &[]);
    };
    let n = (u32::from_le_bytes(*head) as usize).min(rest.len());
    rest.split_at(n)
}

/// `first` and `second` joined as [`split`] takes them apart (for seed corpora).
pub fn join(first: &[u8], second: &[u8]) -> Vec<u8> {
    let mut v = (first.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(first);
    v.extend_from_slice(second);
    v
}
