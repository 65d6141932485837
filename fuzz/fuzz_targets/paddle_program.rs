//! The legacy Paddle ProgramDesc reader and the parameter reader: the input is a program and a
//! parameter file (see `temblor_fuzz::split`), imported and shape-inferred.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    temblor_fuzz::install_limits();
    let (program, params) = temblor_fuzz::split(data);
    let (_dir, paths) =
        temblor_fuzz::scratch(&[("model.pdmodel", program), ("model.pdiparams", params)]);
    if let Ok(mut g) = temblor_frontend::load(&paths[0], &[]) {
        let _ = temblor_infer::infer(&mut g);
    }
});
