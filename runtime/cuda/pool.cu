// Kernels of pool.cuh: one thread per output element, grid-stride (a GlobalAveragePool thread
// sums a whole plane, in the CPU's order). Extern "C" names, for lookup by name in an
// NVRTC-compiled module.
#include "pool.cuh"

extern "C" __global__ void runtime_max_pool(const float* x, long long n, PoolParams p, float* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_max_pool_at(x, p, e);
    }
}

extern "C" __global__ void runtime_average_pool(const float* x, long long n, PoolParams p,
                                                float* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_average_pool_at(x, p, e);
    }
}

extern "C" __global__ void runtime_global_average_pool(const float* x, long long planes,
                                                       long long size, float* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < planes;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_global_average_pool_at(x, size, e);
    }
}
