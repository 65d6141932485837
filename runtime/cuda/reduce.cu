// Kernels of reduce.cuh: one thread per output element, grid-stride; a thread folds all of its
// output's inputs itself, in the CPU's order, which a block-wide tree would change. Extern "C"
// names, for lookup by name in an NVRTC-compiled module.
#include "reduce.cuh"

extern "C" __global__ void runtime_reduce(const float* x, long long n, ReduceParams p,
                                          float* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_reduce_at(x, p, e);
    }
}

extern "C" __global__ void runtime_global_max_pool(const float* x, long long planes,
                                                   long long size, float* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < planes;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_global_max_pool_at(x, size, e);
    }
}

// [outer, channels, inner] of `n` elements.
extern "C" __global__ void runtime_batch_norm(const float* x, const float* scale,
                                              const float* bias, const float* mean,
                                              const float* var, float epsilon, long long channels,
                                              long long inner, long long n, float* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_batch_norm_at(x, scale, bias, mean, var, epsilon, channels, inner, e);
    }
}
