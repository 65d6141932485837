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
mod tests;
