//! JPEG and PNG decoding with EXIF orientation (`run --image`, `preprocess`, `eval`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_dir, paths) = temblor_fuzz::scratch(&[("photo.img", data)]);
    let _ = temblor_ops_lib::preprocess::load_image(&paths[0]);
});
