use super::*;

fn emulator() -> Emulator {
    Emulator::new().unwrap_or_else(|e| panic!("{e}"))
}

fn upload_f32(e: &Emulator, values: &[f32]) -> DevicePtr {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
    let at = e.alloc(bytes.len()).unwrap();
    e.upload(at, &bytes).unwrap();
    at
}

fn download_f32(e: &Emulator, from: DevicePtr, n: usize) -> Vec<f32> {
    let mut bytes = vec![0u8; n * 4];
    e.download(from, &mut bytes).unwrap();
    bytes
        .chunks(4)
        .map(|c| f32::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

fn launch(function: &'static str, grid: u32, block: u32, params: Vec<Vec<u8>>) -> Call {
    Call::Kernel(KernelCall {
        function,
        grid: [grid, 1, 1],
        block: [block, 1, 1],
        shared_bytes: 0,
        params,
    })
}

fn ptr(at: DevicePtr) -> Vec<u8> {
    at.to_ne_bytes().to_vec()
}

/// activation.cuh's `ActivationParams { int kind; float alpha, beta; }`.
#[repr(C)]
struct ActivationParams {
    kind: i32,
    alpha: f32,
    beta: f32,
}

impl ActivationParams {
    fn bytes(&self) -> Vec<u8> {
        [
            self.kind.to_ne_bytes(),
            self.alpha.to_ne_bytes(),
            self.beta.to_ne_bytes(),
        ]
        .concat()
    }
}

/// movement.cuh's `StridedParams { int rank; long long extent[6], stride[6], offset; }`, with
/// the C layout's padding after `rank` spelled out.
#[repr(C)]
struct StridedParams {
    rank: i32,
    padding: i32,
    extent: [i64; 6],
    stride: [i64; 6],
    offset: i64,
}

impl StridedParams {
    fn bytes(&self) -> Vec<u8> {
        let mut out = [self.rank.to_ne_bytes(), self.padding.to_ne_bytes()].concat();
        for x in self.extent.iter().chain(&self.stride).chain([&self.offset]) {
            out.extend(x.to_ne_bytes());
        }
        assert_eq!(out.len(), std::mem::size_of::<StridedParams>());
        out
    }
}

#[test]
fn leaky_relu_runs_over_a_grid_smaller_than_the_tensor() {
    let e = emulator();
    let x: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 0.75).collect();
    let input = upload_f32(&e, &x);
    let out = e.alloc(x.len() * 4).unwrap();
    let params = ActivationParams {
        kind: 2,
        alpha: 0.1,
        beta: 0.0,
    };
    let args = vec![
        ptr(input),
        (x.len() as i64).to_ne_bytes().to_vec(),
        params.bytes(),
        ptr(out),
    ];
    // Two blocks of four threads: each thread takes every eighth element.
    e.run(0, &[launch("runtime_activation", 2, 4, args)])
        .unwrap();
    let expected: Vec<f32> = x
        .iter()
        .map(|&v| if v < 0.0 { 0.1 * v } else { v })
        .collect();
    assert_eq!(download_f32(&e, out, x.len()), expected);
}

#[test]
fn strided_copy_transposes_a_matrix() {
    let e = emulator();
    // [2, 3] -> [3, 2]: output (i, j) reads input (j, i), at j * 3 + i.
    let x: Vec<u32> = vec![10, 11, 12, 20, 21, 22];
    let input = e.alloc(24).unwrap();
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_ne_bytes()).collect();
    e.upload(input, &bytes).unwrap();
    let out = e.alloc(24).unwrap();
    let params = StridedParams {
        rank: 2,
        padding: 0,
        extent: [3, 2, 0, 0, 0, 0],
        stride: [1, 3, 0, 0, 0, 0],
        offset: 0,
    };
    let args = vec![
        ptr(input),
        6i64.to_ne_bytes().to_vec(),
        params.bytes(),
        ptr(out),
    ];
    e.run(0, &[launch("runtime_strided_copy_4", 1, 256, args)])
        .unwrap();
    let mut got = vec![0u8; 24];
    e.download(out, &mut got).unwrap();
    let got: Vec<u32> = got
        .chunks(4)
        .map(|c| u32::from_ne_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got, [10, 20, 11, 21, 12, 22]);
}

#[test]
fn a_kernel_that_synchronizes_is_refused() {
    let e = emulator();
    let mask = e.alloc(8).unwrap();
    let removed = e.alloc(8).unwrap();
    let keep = e.alloc(4).unwrap();
    let count = e.alloc(4).unwrap();
    let one = 1i32.to_ne_bytes().to_vec();
    let args = vec![
        ptr(mask),
        one.clone(),
        one,
        ptr(removed),
        ptr(keep),
        ptr(count),
    ];
    let err = e
        .run(0, &[launch("ops_lib_nms_reduce", 1, 32, args)])
        .unwrap_err();
    assert!(
        err.message.contains("ops_lib_nms_reduce needs block-wide"),
        "{err}"
    );
}

#[test]
fn launches_that_do_not_fit_the_signature_are_refused() {
    let e = emulator();
    let x = e.alloc(16).unwrap();
    let n = 4i64.to_ne_bytes().to_vec();
    let params = ActivationParams {
        kind: 1,
        alpha: 0.0,
        beta: 0.0,
    };
    let short = vec![ptr(x), n.clone(), params.bytes()[..8].to_vec(), ptr(x)];
    let err = e
        .run(0, &[launch("runtime_activation", 1, 32, short)])
        .unwrap_err();
    assert!(
        err.message
            .contains("parameter 2 has 12 bytes, the launch gives 8"),
        "{err}"
    );
    let stray = vec![ptr(x + 4096), n.clone(), params.bytes(), ptr(x)];
    let err = e
        .run(0, &[launch("runtime_activation", 1, 32, stray)])
        .unwrap_err();
    assert!(err.message.contains("parameter 0"), "{err}");
    let huge_block = vec![ptr(x), n, params.bytes(), ptr(x)];
    let err = e
        .run(0, &[launch("runtime_activation", 1, 2048, huge_block)])
        .unwrap_err();
    assert!(err.message.contains("launch limits"), "{err}");
}

#[test]
fn a_gemm_copies_and_zeroing_run_in_order() {
    let e = emulator();
    // Row-major [2, 3] x [3, 2], B given transposed ([2, 3]); then C copied and a row zeroed.
    let a = upload_f32(&e, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = upload_f32(&e, &[1.0, 0.0, -1.0, 2.0, 1.0, 0.5]);
    let c = upload_f32(&e, &[f32::NAN; 4]);
    let copy = e.alloc(16).unwrap();
    let gemm = GemmCall {
        m: 2,
        n: 2,
        k: 3,
        batch: 1,
        a,
        a_transposed: false,
        lda: 3,
        stride_a: 6,
        b,
        b_transposed: true,
        ldb: 3,
        stride_b: 6,
        c,
        ldc: 2,
        stride_c: 4,
        alpha: 2.0,
        beta: 0.0,
        inputs: crate::cuda::lower::GemmInputs::F32,
    };
    let calls = [
        Call::Gemm(gemm),
        Call::Copy {
            from: c,
            to: copy,
            bytes: 16,
        },
        Call::Zero { to: c, bytes: 8 },
    ];
    e.run(0, &calls).unwrap();
    // Row 0: (1 - 3, 2 + 2 + 1.5) = (-2, 5.5); row 1: (4 - 6, 8 + 5 + 3) = (-2, 16); times 2.
    assert_eq!(download_f32(&e, copy, 4), [-4.0, 11.0, -4.0, 32.0]);
    assert_eq!(download_f32(&e, c, 4), [0.0, 0.0, -4.0, 32.0]);
}

#[test]
fn memory_outside_the_allocations_is_refused() {
    let e = emulator();
    let at = e.alloc(10).unwrap();
    assert_eq!(at % ALIGN as u64, 0);
    let err = e.upload(at + 4, &[0u8; 8]).unwrap_err();
    assert!(err.message.contains("upload: 8 bytes"), "{err}");
    let zero = Call::Zero { to: at, bytes: 10 };
    e.run(0, std::slice::from_ref(&zero)).unwrap();
    e.free(at);
    assert!(e.run(0, &[zero]).is_err());
}
