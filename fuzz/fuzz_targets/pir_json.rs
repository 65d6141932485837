//! The Paddle 3 PIR JSON reader and its parameters: `inference.json` and
//! `inference.pdiparams` (see `temblor_fuzz::split`), imported and shape-inferred.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    temblor_fuzz::install_limits();
    let (program, params) = temblor_fuzz::split(data);
    let (_dir, paths) =
        temblor_fuzz::scratch(&[("inference.json", program), ("inference.pdiparams", params)]);
    if let Ok(mut g) = temblor_frontend::load(&paths[0], &[]) {
        let _ = temblor_infer::infer(&mut g);
    }
});
