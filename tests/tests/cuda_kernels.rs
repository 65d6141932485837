//! The CUDA kernels of ops_lib (`ops_lib/cuda`) and of the runtime (`runtime/cuda`), issue 23,
//! checked on a machine without a GPU:
//! - every kernel source compiles with nvcc for sm_80 (A100) and sm_90 (H100), so a syntax or
//!   type error fails here, not on the first machine with a device;
//! - a host harness (`tests/cuda/*.cu`, built by nvcc as host code) runs the kernels'
//!   `__host__ __device__` arithmetic on the CPU, on inputs written here, against the Rust
//!   kernels on the same inputs: ops_lib's (themselves checked against Paddle's and
//!   onnxruntime's outputs), and the CPU runtime's (through `temblor_runtime::run_op`) for the
//!   ONNX ops ops_lib does not hold (DeformSample, GridSample) and for the runtime's own
//!   kernels, bit for bit (activations and the conv epilogue, broadcast arithmetic, Resize,
//!   pooling, Transpose, Slice, Concat, Softmax, LayerNormalization), one module per family.
//!
//! nvcc comes from PyPI (`nvidia-cuda-nvcc` with the nvvm, crt and runtime wheels it pulls in),
//! installed by scripts/setup-python.sh; the wheel's nvcc.profile finds the wheels' headers, cicc
//! and libraries by itself, and the host compiler is the `g++` on PATH. A missing nvcc fails
//! these tests rather than skipping them: setup installs it.

#[path = "cuda_kernels/data.rs"]
mod data;
#[path = "cuda_kernels/elementwise.rs"]
mod elementwise;
#[path = "cuda_kernels/harness.rs"]
mod harness;
#[path = "cuda_kernels/layouts.rs"]
mod layouts;
#[path = "cuda_kernels/matrix_nms.rs"]
mod matrix_nms;
#[path = "cuda_kernels/movement.rs"]
mod movement;
#[path = "cuda_kernels/nms.rs"]
mod nms;
#[path = "cuda_kernels/normalization.rs"]
mod normalization;
#[path = "cuda_kernels/pool.rs"]
mod pool;
#[path = "cuda_kernels/preprocess.rs"]
mod preprocess;
#[path = "cuda_kernels/proposals.rs"]
mod proposals;
#[path = "cuda_kernels/resize.rs"]
mod resize;
#[path = "cuda_kernels/roi_align.rs"]
mod roi_align;
#[path = "cuda_kernels/sampling.rs"]
mod sampling;
#[path = "cuda_kernels/yolo_box.rs"]
mod yolo_box;

use harness::{cuda_sources, nvcc};
use temblor_tests::{output, root};

/// The names of the `__global__` functions a source defines.
fn kernel_names(source: &str) -> Vec<String> {
    source
        .split("__global__ void ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .map(|name| name.trim().to_string())
        .collect()
}

/// Compiles every `.cu` of `dir` for sm_80 and sm_90 with `flags`, after checking that each of
/// `families` has one, and finds each kernel in the binary under its own (extern "C") name.
fn compile_each(dir: &str, families: &[&str], flags: &[&str]) {
    let sources = cuda_sources(&root().join(dir));
    let names: Vec<_> = sources.iter().filter_map(|p| p.file_stem()).collect();
    for family in families {
        assert!(
            names.iter().any(|n| n == family),
            "{dir}/{family}.cu is missing"
        );
    }
    let out = tempfile::tempdir().unwrap();
    for src in &sources {
        let kernels = kernel_names(&std::fs::read_to_string(src).unwrap());
        assert!(!kernels.is_empty(), "{}: no kernel", src.display());
        for arch in ["sm_80", "sm_90"] {
            let cubin = out.path().join(format!(
                "{}.{arch}.cubin",
                src.file_stem().unwrap().to_string_lossy()
            ));
            let (code, _, err) = output(
                nvcc()
                    .args(flags)
                    .arg(format!("-arch={arch}"))
                    .arg("-cubin")
                    .arg("-o")
                    .arg(&cubin)
                    .arg(src),
            );
            assert_eq!(
                code,
                0,
                "{} does not compile for {arch}:\n{err}",
                src.display()
            );
            let binary = String::from_utf8_lossy(&std::fs::read(&cubin).unwrap()).into_owned();
            for kernel in &kernels {
                assert!(
                    binary.contains(&format!(".text.{kernel}\0")),
                    "{}: {kernel} is missing from the {arch} binary",
                    src.display()
                );
            }
        }
    }
}

#[test]
fn every_ops_lib_kernel_compiles_for_sm_80_and_sm_90() {
    let families = [
        "deform_sample",
        "distribute_fpn",
        "generate_proposals",
        "grid_sample",
        "matrix_nms",
        "nms",
        "preprocess",
        "roi_align",
        "yolo_box",
    ];
    compile_each("ops_lib/cuda", &families, &[]);
}

/// The runtime's kernels with the option their bits rest on (runtime/cuda/math.cuh):
/// `-fmad=false`, which keeps each multiply and add its own rounding, as on the CPU.
#[test]
fn every_runtime_kernel_compiles_for_sm_80_and_sm_90() {
    let families = [
        "activation",
        "binary",
        "conv",
        "convert",
        "layer_norm",
        "movement",
        "pool",
        "reduce",
        "resize",
        "softmax",
    ];
    compile_each("runtime/cuda", &families, &["-fmad=false"]);
}
