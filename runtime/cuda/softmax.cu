// Kernels of softmax.cuh: one thread per row (or column), grid-stride. A thread per row keeps
// the CPU's summation order, which a block-wide tree would change; the softmax axes of the real
// models are short (a detector's classes or 16 distribution bins, a ViT's 197 to 257 tokens).
// Extern "C" names, for lookup by name in an NVRTC-compiled module.
#include "softmax.cuh"

// Over the last axis: `rows` rows of `n`.
extern "C" __global__ void runtime_softmax(const float* x, long long rows, long long n,
                                           float* out) {
    for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < rows;
         r += (long long)gridDim.x * blockDim.x) {
        rt_softmax_row(x + r * n, out + r * n, n);
    }
}

// Over an inner axis: [outer, n, inner], one thread per (outer, inner) column.
extern "C" __global__ void runtime_softmax_inner(const float* x, long long outer, long long n,
                                                 long long inner, float* out) {
    for (long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x; c < outer * inner;
         c += (long long)gridDim.x * blockDim.x) {
        long long at = c / inner * n * inner + c % inner;
        rt_softmax_column(x + at, out + at, n, inner);
    }
}
