//! cuBLAS's semantics as emulated, and the driver's conversion to them, against naive row-major
//! GEMMs on random cases.

use super::*;

/// A small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn value(&mut self) -> f32 {
        (self.below(2001) as f32 - 1000.0) / 500.0
    }
}

/// The lowering's row-major GEMM by its definition, element by element, in f64.
fn naive(g: &GemmCall, a: &[f32], b: &[f32], c: &[f32]) -> Vec<f32> {
    let mut out = c.to_vec();
    for i in 0..g.batch {
        for r in 0..g.m {
            for col in 0..g.n {
                let mut sum = 0.0f64;
                for l in 0..g.k {
                    let x = match g.a_transposed {
                        true => a[i * g.stride_a + l * g.lda + r],
                        false => a[i * g.stride_a + r * g.lda + l],
                    };
                    let y = match g.b_transposed {
                        true => b[i * g.stride_b + col * g.ldb + l],
                        false => b[i * g.stride_b + l * g.ldb + col],
                    };
                    sum += x as f64 * y as f64;
                }
                let at = i * g.stride_c + r * g.ldc + col;
                let old = if g.beta == 0.0 { 0.0 } else { g.beta * c[at] };
                out[at] = (g.alpha as f64 * sum + old as f64) as f32;
            }
        }
    }
    out
}

/// A random row-major case: transposes, leading dimensions past the extents, and each of A
/// and B broadcast (stride 0) now and then.
fn case(rng: &mut Rng) -> GemmCall {
    let (m, n, k, batch) = (
        1 + rng.below(7),
        1 + rng.below(7),
        1 + rng.below(7),
        1 + rng.below(3),
    );
    let a_transposed = rng.below(2) == 1;
    let b_transposed = rng.below(2) == 1;
    let (a_rows, a_cols) = if a_transposed { (k, m) } else { (m, k) };
    let (b_rows, b_cols) = if b_transposed { (n, k) } else { (k, n) };
    let lda = a_cols + rng.below(3);
    let ldb = b_cols + rng.below(3);
    let ldc = n + rng.below(3);
    let stride = |rng: &mut Rng, rows: usize, ld: usize| match rng.below(4) {
        0 => 0,
        _ => rows * ld + rng.below(4),
    };
    GemmCall {
        m,
        n,
        k,
        batch,
        a: 0,
        a_transposed,
        lda,
        stride_a: stride(rng, a_rows, lda),
        b: 0,
        b_transposed,
        ldb,
        stride_b: stride(rng, b_rows, ldb),
        c: 0,
        ldc,
        stride_c: m * ldc + rng.below(3),
        alpha: [1.0, 0.5, -2.0][rng.below(3)],
        beta: [0.0, 1.0, 0.25][rng.below(3)],
        inputs: GemmInputs::F32,
    }
}

fn elements(rows: usize, ld: usize, stride: usize, batch: usize) -> usize {
    (batch - 1) * stride + rows * ld
}

#[test]
fn column_major_cublas_computes_the_row_major_gemm() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..300 {
        let mut g = case(&mut rng);
        let a_rows = if g.a_transposed { g.k } else { g.m };
        let b_rows = if g.b_transposed { g.n } else { g.k };
        let a: Vec<f32> = (0..elements(a_rows, g.lda, g.stride_a, g.batch))
            .map(|_| rng.value())
            .collect();
        let b: Vec<f32> = (0..elements(b_rows, g.ldb, g.stride_b, g.batch))
            .map(|_| rng.value())
            .collect();
        // NaN where beta is 0: cuBLAS must not read C then.
        let mut c: Vec<f32> = (0..elements(g.m, g.ldc, g.stride_c, g.batch))
            .map(|_| if g.beta == 0.0 { f32::NAN } else { rng.value() })
            .collect();
        let expected = naive(&g, &a, &b, &c);
        g.a = a.as_ptr() as DevicePtr;
        g.b = b.as_ptr() as DevicePtr;
        g.c = c.as_mut_ptr() as DevicePtr;
        let call = column_major(&g).unwrap();
        let [sa, sb, sc] = spans(&call).unwrap();
        // cuBLAS's A is the row-major B, and its B the row-major A.
        assert!(sa.1 <= b.len() * 4 && sb.1 <= a.len() * 4 && sc.1 <= c.len() * 4);
        // SAFETY: the spans the call touches were checked against the vectors just above.
        unsafe { cublas_gemm_strided_batched(&call).unwrap() };
        for (at, (x, y)) in c.iter().zip(&expected).enumerate() {
            let close = (x - y).abs() <= 1e-4 * (1.0 + y.abs());
            let untouched_padding = x.is_nan() && y.is_nan();
            assert!(
                close || untouched_padding,
                "{g:?}: element {at} is {x}, not {y}"
            );
        }
    }
}

/// f16 A and B, C f32: the naive loop over the widened halves, whose products are exact in
/// f64 as in f32, so the sums differ from it by f32 rounding only.
#[test]
fn an_f16_gemm_is_the_naive_product_of_the_widened_halves() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..200 {
        let mut g = GemmCall {
            inputs: GemmInputs::F16,
            ..case(&mut rng)
        };
        let a_rows = if g.a_transposed { g.k } else { g.m };
        let b_rows = if g.b_transposed { g.n } else { g.k };
        let mut halves =
            |n: usize| -> Vec<f16> { (0..n).map(|_| f16::from_f32(rng.value())).collect() };
        let a = halves(elements(a_rows, g.lda, g.stride_a, g.batch));
        let b = halves(elements(b_rows, g.ldb, g.stride_b, g.batch));
        let mut c: Vec<f32> = (0..elements(g.m, g.ldc, g.stride_c, g.batch))
            .map(|_| if g.beta == 0.0 { f32::NAN } else { rng.value() })
            .collect();
        let wide = |v: &[f16]| -> Vec<f32> { v.iter().map(|h| h.to_f32()).collect() };
        let expected = naive(&g, &wide(&a), &wide(&b), &c);
        g.a = a.as_ptr() as DevicePtr;
        g.b = b.as_ptr() as DevicePtr;
        g.c = c.as_mut_ptr() as DevicePtr;
        let call = column_major(&g).unwrap();
        assert_eq!(call.ab_type, DataType::F16);
        let [sa, sb, sc] = spans(&call).unwrap();
        // Two bytes an element of A and B, four of C.
        assert!(sa.1 <= b.len() * 2 && sb.1 <= a.len() * 2 && sc.1 <= c.len() * 4);
        assert_eq!(sa.1 % 2, 0);
        // SAFETY: the spans the call touches were checked against the vectors just above.
        unsafe { cublas_gemm_strided_batched(&call).unwrap() };
        for (at, (x, y)) in c.iter().zip(&expected).enumerate() {
            let close = (x - y).abs() <= 1e-5 * (1.0 + y.abs());
            let untouched_padding = x.is_nan() && y.is_nan();
            assert!(
                close || untouched_padding,
                "{g:?}: element {at} is {x}, not {y}"
            );
        }
    }
}

/// An f16 GEMM becomes the Ex call with the same arguments as the f32 one, f16 A and B
/// (CUDA_R_16F = 2); its spans of A and B are half the f32 ones.
#[test]
fn an_f16_gemm_becomes_the_ex_call_on_halves() {
    let g = GemmCall {
        m: 2,
        n: 3,
        k: 4,
        batch: 2,
        a: 0xa00,
        a_transposed: false,
        lda: 4,
        stride_a: 8,
        b: 0xb00,
        b_transposed: true,
        ldb: 4,
        stride_b: 12,
        c: 0xc00,
        ldc: 3,
        stride_c: 6,
        alpha: 1.0,
        beta: 0.0,
        inputs: GemmInputs::F16,
    };
    let call = column_major(&g).unwrap();
    let f32_call = column_major(&GemmCall {
        inputs: GemmInputs::F32,
        ..g.clone()
    })
    .unwrap();
    assert_eq!((call.ab_type, call.ab_type as i32), (DataType::F16, 2));
    assert_eq!(
        call,
        CublasGemm {
            ab_type: DataType::F16,
            ..f32_call
        }
    );
    assert_eq!((call.transa, call.transb), (Operation::T, Operation::N));
    assert_eq!((call.m, call.n, call.a, call.b), (3, 2, 0xb00, 0xa00));
    // cuBLAS's A (the row-major B): 2 batches 12 apart of 3 columns of 4, ld 4: 24
    // elements; its B: 16; C f32 whatever A and B are: 12.
    let [sa, sb, sc] = spans(&call).unwrap();
    assert_eq!(
        [sa, sb, sc],
        [(0xb00, 24 * 2), (0xa00, 16 * 2), (0xc00, 12 * 4)]
    );
    assert_eq!((COMPUTE_32F, GEMM_DEFAULT), (68, -1));
}

#[test]
fn row_major_operands_swap_into_cublas() {
    let g = GemmCall {
        m: 2,
        n: 3,
        k: 4,
        batch: 5,
        a: 0xa00,
        a_transposed: true,
        lda: 6,
        stride_a: 0,
        b: 0xb00,
        b_transposed: false,
        ldb: 7,
        stride_b: 28,
        c: 0xc00,
        ldc: 3,
        stride_c: 6,
        alpha: 1.5,
        beta: 0.0,
        inputs: GemmInputs::F32,
    };
    let call = column_major(&g).unwrap();
    assert_eq!(
        call,
        CublasGemm {
            ab_type: DataType::F32,
            transa: Operation::N,
            transb: Operation::T,
            m: 3,
            n: 2,
            k: 4,
            alpha: 1.5,
            a: 0xb00,
            lda: 7,
            stride_a: 28,
            b: 0xa00,
            ldb: 6,
            stride_b: 0,
            beta: 0.0,
            c: 0xc00,
            ldc: 3,
            stride_c: 6,
            batch_count: 5,
        }
    );
}

#[test]
fn a_leading_dimension_shorter_than_a_row_is_refused() {
    let g = GemmCall {
        m: 2,
        n: 3,
        k: 4,
        batch: 1,
        a: 0,
        a_transposed: false,
        lda: 3,
        stride_a: 0,
        b: 0,
        b_transposed: false,
        ldb: 3,
        stride_b: 0,
        c: 0,
        ldc: 3,
        stride_c: 0,
        alpha: 1.0,
        beta: 0.0,
        inputs: GemmInputs::F32,
    };
    let err = spans(&column_major(&g).unwrap()).unwrap_err();
    assert!(err.message.contains("ldb = 3 below the 4 rows"), "{err}");
}
