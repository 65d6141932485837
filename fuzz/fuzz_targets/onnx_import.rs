//! The ONNX reader and importer, then shape inference.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    temblor_fuzz::install_limits();
    let (_dir, paths) = temblor_fuzz::scratch(&[("model.onnx", data)]);
    if let Ok(mut g) = temblor_frontend::load(&paths[0], &[]) {
        let _ = temblor_infer::infer(&mut g);
    }
});
