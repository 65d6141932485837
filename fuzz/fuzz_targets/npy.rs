//! The .npy reader (`--input NAME=FILE.npy`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_dir, paths) = temblor_fuzz::scratch(&[("x.npy", data)]);
    let _ = temblor_tools::npy::read(&paths[0]);
});
