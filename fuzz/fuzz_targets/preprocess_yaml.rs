//! The preprocessing YAML reader (`--preprocess`, a package's `preprocess.yml`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_dir, paths) = temblor_fuzz::scratch(&[("pre.yml", data)]);
    let _ = temblor_tools::preprocess_config::PreprocessConfig::load(&paths[0]);
});
