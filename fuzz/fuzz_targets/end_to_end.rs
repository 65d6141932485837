//! An ONNX model imported, shape-inferred, optimized, legalized and run on zeros when every
//! input is small and fully known: the passes and kernels on shapes and attributes no real
//! model has.
#![no_main]

use libfuzzer_sys::fuzz_target;
use temblor_pipeline::{Options, VerifyMode};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor, TensorData};

/// Inputs larger than this are not run: the target is odd shapes, not big ones.
const MAX_INPUT_ELEMENTS: usize = 4096;

fuzz_target!(|data: &[u8]| {
    temblor_fuzz::install_limits();
    let (_dir, paths) = temblor_fuzz::scratch(&[("model.onnx", data)]);
    let options = Options {
        verify: VerifyMode::Off,
        measure: false,
        default_batch: true,
        ..Options::default()
    };
    let Ok(compiled) = temblor_pipeline::compile(&paths[0], &options) else {
        return;
    };
    let g = &compiled.compile;
    let mut inputs = Vec::new();
    for &id in &g.inputs {
        let Some(info) = g.node(id).outputs.first() else {
            return;
        };
        let Some(dims) = info.ty.shape.known() else {
            return;
        };
        let Some(n) = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= MAX_INPUT_ELEMENTS)
        else {
            return;
        };
        let bytes = vec![0u8; n * info.ty.dtype.size_bytes()];
        let Some(data) = TensorData::from_le_bytes(info.ty.dtype, &bytes) else {
            return;
        };
        inputs.push((info.name.clone(), Tensor { shape: dims, data }));
    }
    let options = PrepareOptions {
        threads: 1,
        ..PrepareOptions::default()
    };
    if let Ok(plan) = prepare(g, &Device::Cpu, &options) {
        let _ = plan.run_once(&inputs);
    }
});
