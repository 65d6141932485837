//! The backend's cuBLAS calls, `cublasSgemmStridedBatched` for f32 operands and
//! `cublasGemmStridedBatchedEx` for f16 `A` and `B` (f32 `C`, f32 arithmetic), as their
//! arguments ([`CublasGemm`], which the driver passes to cuBLAS as they are), the conversion from
//! the lowering's row-major [`GemmCall`] to them ([`column_major`], shared with the driver), and
//! the call itself on the host ([`cublas_gemm_strided_batched`]) with cuBLAS's column-major
//! semantics: so the emulator checks the conversion, which is where a GPU GEMM goes wrong. f16
//! operands are widened to f32 (exactly) and multiplied as f32 ones: the tensor cores' products
//! of halves are exact too, and only the order of their f32 sums may differ.
//!
//! cuBLAS (column-major, element (r, c) of a matrix at `r + c * ld`):
//! `C[i] = alpha * op(A[i]) * op(B[i]) + beta * C[i]` for `i < batchCount`, `X[i]` starting
//! `i * strideX` elements past `X`; `op(A)` is m x k, `op(B)` k x n, `C` m x n. As in BLAS, `C`
//! is not read when beta is 0, nor `A` and `B` when alpha is 0.
//!
//! A row-major matrix read column-major is its transpose, so the row-major
//! `C = op(A) * op(B)` is the column-major `C^T = op(B)^T * op(A)^T`: cuBLAS's `A` is the
//! lowering's `B` and its `B` the lowering's `A`, `m` and `n` swap, and each operand keeps its
//! own transposition flag (a row-major `B` stored as `k x n` reads column-major as the `n x k`
//! `op(B)^T`: no transpose).

use super::super::executor::{DevicePtr, GemmCall};
use super::super::lower::GemmInputs;
use crate::{f16, RuntimeError};
use std::ffi::{c_int, c_longlong};

/// cuBLAS's `cublasOperation_t`, with its values: those a real GEMM takes (for real matrices
/// the conjugate transpose is the transpose).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Operation {
    /// `CUBLAS_OP_N`.
    N = 0,
    /// `CUBLAS_OP_T`.
    T = 1,
}

/// cuBLAS's `cudaDataType_t`, with its values: the types of `A` and `B` here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum DataType {
    /// `CUDA_R_32F`.
    F32 = 0,
    /// `CUDA_R_16F`.
    F16 = 2,
}

impl DataType {
    fn size_bytes(self) -> usize {
        match self {
            DataType::F32 => 4,
            DataType::F16 => 2,
        }
    }
}

/// `cublasComputeType_t`'s `CUBLAS_COMPUTE_32F`: f32 products and sums, whatever `A` and `B`
/// are (tensor cores for f16 ones).
pub(crate) const COMPUTE_32F: i32 = 68;
/// `cublasGemmAlgo_t`'s `CUBLAS_GEMM_DEFAULT`: cuBLAS's heuristic, tensor cores included.
pub(crate) const GEMM_DEFAULT: i32 = -1;

/// The arguments of `cublasSgemmStridedBatched` after the handle, in its order and types
/// (scalars by value here, by host pointer there), and the type of `A` and `B`: with f16 ones
/// the call is `cublasGemmStridedBatchedEx`, these arguments in the same order, each matrix's
/// type after it (`ab_type` for `A` and `B`, `CUDA_R_32F` for `C`), then [`COMPUTE_32F`] and
/// [`GEMM_DEFAULT`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CublasGemm {
    pub ab_type: DataType,
    pub transa: Operation,
    pub transb: Operation,
    pub m: c_int,
    pub n: c_int,
    pub k: c_int,
    pub alpha: f32,
    pub a: DevicePtr,
    pub lda: c_int,
    pub stride_a: c_longlong,
    pub b: DevicePtr,
    pub ldb: c_int,
    pub stride_b: c_longlong,
    pub beta: f32,
    pub c: DevicePtr,
    pub ldc: c_int,
    pub stride_c: c_longlong,
    pub batch_count: c_int,
}

/// The cuBLAS call that computes the row-major `g`; an error when an extent is past cuBLAS's
/// 32-bit `int`s.
pub(crate) fn column_major(g: &GemmCall) -> Result<CublasGemm, RuntimeError> {
    let op = |transposed| match transposed {
        true => Operation::T,
        false => Operation::N,
    };
    Ok(CublasGemm {
        ab_type: match g.inputs {
            GemmInputs::F32 => DataType::F32,
            GemmInputs::F16 => DataType::F16,
        },
        transa: op(g.b_transposed),
        transb: op(g.a_transposed),
        m: int(g.n, "n")?,
        n: int(g.m, "m")?,
        k: int(g.k, "k")?,
        alpha: g.alpha,
        a: g.b,
        lda: int(g.ldb, "ldb")?,
        stride_a: long(g.stride_b, "stride_b")?,
        b: g.a,
        ldb: int(g.lda, "lda")?,
        stride_b: long(g.stride_a, "stride_a")?,
        beta: g.beta,
        c: g.c,
        ldc: int(g.ldc, "ldc")?,
        stride_c: long(g.stride_c, "stride_c")?,
        batch_count: int(g.batch, "batch")?,
    })
}

fn int(value: usize, what: &str) -> Result<c_int, RuntimeError> {
    c_int::try_from(value).map_err(|_| {
        RuntimeError::unsupported(format!(
            "a GEMM's {what} of {value} is past cuBLAS's 32-bit arguments"
        ))
    })
}

fn long(value: usize, what: &str) -> Result<c_longlong, RuntimeError> {
    c_longlong::try_from(value).map_err(|_| {
        RuntimeError::unsupported(format!("a GEMM's {what} of {value} is past 64 bits"))
    })
}

/// One operand as cuBLAS reads it: where `op(X)(r, c)` of batch `i` lies.
#[derive(Clone, Copy, Debug)]
struct Operand {
    at: DevicePtr,
    /// Element steps between rows and columns of `op(X)`.
    row_step: isize,
    col_step: isize,
    stride: isize,
    /// The stored matrix's rows and columns (`ld` apart), before `op`.
    stored: (usize, usize),
    ld: usize,
    element_bytes: usize,
}

impl Operand {
    fn new(
        what: &str,
        (at, element_bytes): (DevicePtr, usize),
        op: Operation,
        (rows, cols): (c_int, c_int),
        ld: c_int,
        stride: c_longlong,
    ) -> Result<Operand, RuntimeError> {
        let transposed = op == Operation::T;
        let stored = match transposed {
            true => (cols, rows),
            false => (rows, cols),
        };
        // cuBLAS's CUBLAS_STATUS_INVALID_VALUE: the leading dimension must hold a column.
        if ld < stored.0.max(1) {
            return Err(RuntimeError::internal(format!(
                "cuBLAS refuses ld{what} = {ld} below the {} rows of {what}",
                stored.0
            )));
        }
        let ld = ld as usize;
        let (row_step, col_step) = match transposed {
            true => (ld as isize, 1),
            false => (1, ld as isize),
        };
        Ok(Operand {
            at,
            row_step,
            col_step,
            stride: stride as isize,
            stored: (stored.0 as usize, stored.1 as usize),
            ld,
            element_bytes,
        })
    }

    /// The elements from `at` that `batch` matrices span; 0 when none is read.
    fn span(&self, batch: usize) -> usize {
        let (rows, cols) = self.stored;
        if batch == 0 || rows == 0 || cols == 0 {
            return 0;
        }
        let last = (batch - 1) * self.stride.unsigned_abs() + (cols - 1) * self.ld + rows - 1;
        last + 1
    }

    /// The bytes from `at` that `batch` matrices span, for bounds checks.
    fn span_bytes(&self, batch: usize) -> usize {
        self.span(batch) * self.element_bytes
    }

    fn matrix(&self, i: usize) -> *mut f32 {
        (self.at as *mut f32).wrapping_offset(i as isize * self.stride)
    }

    /// The f16 elements of `batch` matrices widened to f32, exactly, and this operand reading
    /// them there.
    ///
    /// # Safety
    /// The operand's span must be valid f16s.
    unsafe fn widened(&self, batch: usize) -> (Vec<f32>, Operand) {
        let n = self.span(batch);
        let halves = match n {
            0 => &[][..],
            // SAFETY: the caller vouches for the span's elements, f16s (2-byte aligned).
            _ => unsafe { std::slice::from_raw_parts(self.at as *const f16, n) },
        };
        let wide: Vec<f32> = halves.iter().map(|h| h.to_f32()).collect();
        let operand = Operand {
            at: wide.as_ptr() as DevicePtr,
            element_bytes: 4,
            ..*self
        };
        (wide, operand)
    }
}

/// The memory a call reads and writes: `(address, bytes)` of A, B and C, for the caller to
/// check against its allocations before [`cublas_gemm_strided_batched`].
pub(crate) fn spans(g: &CublasGemm) -> Result<[(DevicePtr, usize); 3], RuntimeError> {
    let [a, b, c] = operands(g)?;
    let batch = g.batch_count as usize;
    let reads = g.alpha != 0.0 && g.k > 0;
    Ok([
        (a.at, if reads { a.span_bytes(batch) } else { 0 }),
        (b.at, if reads { b.span_bytes(batch) } else { 0 }),
        (c.at, c.span_bytes(batch)),
    ])
}

fn operands(g: &CublasGemm) -> Result<[Operand; 3], RuntimeError> {
    if g.m < 0 || g.n < 0 || g.k < 0 || g.batch_count < 0 {
        return Err(RuntimeError::internal(format!(
            "cuBLAS refuses negative extents: m {}, n {}, k {}, batch {}",
            g.m, g.n, g.k, g.batch_count
        )));
    }
    let (n, ab) = (Operation::N, g.ab_type.size_bytes());
    Ok([
        Operand::new("a", (g.a, ab), g.transa, (g.m, g.k), g.lda, g.stride_a)?,
        Operand::new("b", (g.b, ab), g.transb, (g.k, g.n), g.ldb, g.stride_b)?,
        Operand::new("c", (g.c, 4), n, (g.m, g.n), g.ldc, g.stride_c)?,
    ])
}

/// `cublasSgemmStridedBatched`, or `cublasGemmStridedBatchedEx` for f16 `A` and `B`, on the
/// host, with the arguments' checks cuBLAS makes.
///
/// # Safety
/// Every address must be valid for the elements the call reads and writes ([`spans`]), and
/// `C` must not overlap `A` or `B` (cuBLAS's own requirement).
pub(crate) unsafe fn cublas_gemm_strided_batched(g: &CublasGemm) -> Result<(), RuntimeError> {
    let [a, b, c] = operands(g)?;
    let (m, n, k) = (g.m as usize, g.n as usize, g.k as usize);
    if m == 0 || n == 0 {
        return Ok(());
    }
    let reads = match g.alpha != 0.0 && k > 0 {
        true => g.batch_count as usize,
        false => 0,
    };
    // The widened copies live until the products are done.
    let (_wide_a, a, _wide_b, b) = match g.ab_type {
        DataType::F32 => (Vec::new(), a, Vec::new(), b),
        DataType::F16 => {
            // SAFETY: the caller vouches for the spans of A and B, f16s.
            let ((wa, a), (wb, b)) = unsafe { (a.widened(reads), b.widened(reads)) };
            (wa, a, wb, b)
        }
    };
    for i in 0..g.batch_count as usize {
        let out = c.matrix(i);
        if k == 0 || g.alpha == 0.0 {
            // SAFETY: the caller vouches for C's elements; this touches only them.
            unsafe { scale(out, m, n, c.col_step, g.beta) };
            continue;
        }
        // SAFETY: the caller vouches for every element the steps given here reach, and for C
        // not overlapping A or B. gemm's `dst = alpha * dst + beta * lhs * rhs` is cuBLAS's with
        // the scalars' names swapped; dst is not read when cuBLAS's beta is 0.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out,
                c.col_step,
                c.row_step,
                g.beta != 0.0,
                a.matrix(i),
                a.col_step,
                a.row_step,
                b.matrix(i),
                b.col_step,
                b.row_step,
                g.beta,
                g.alpha,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        };
    }
    Ok(())
}

/// `C = beta * C` for an m x n column-major `C`, zeros without reading it when beta is 0.
///
/// # Safety
/// `c` must be valid for the m x n matrix with columns `ld` elements apart.
unsafe fn scale(c: *mut f32, m: usize, n: usize, ld: isize, beta: f32) {
    for col in 0..n {
        // SAFETY: column `col`'s m elements are C's, which the caller vouches for.
        let column = unsafe { std::slice::from_raw_parts_mut(c.offset(col as isize * ld), m) };
        for x in column {
            *x = if beta == 0.0 { 0.0 } else { beta * *x };
        }
    }
}

#[cfg(test)]
mod tests {
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
}
