//! The package loader: `package.json` and `weights.bin` (see `temblor_fuzz::split`). Hashes are
//! not checked, or nearly every input would stop there; the loader's own checks are the target.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    temblor_fuzz::install_limits();
    temblor_ir::package::set_verify_hashes(false);
    let (manifest, weights) = temblor_fuzz::split(data);
    let (dir, _) = temblor_fuzz::scratch(&[("package.json", manifest), ("weights.bin", weights)]);
    let _ = temblor_ir::package::load(dir.path());
});
