// Kernel of binary.cuh: one thread per output element, grid-stride. Extern "C" names, for lookup
// by name in an NVRTC-compiled module.
#include "binary.cuh"

extern "C" __global__ void runtime_binary(const float* a, const float* b, long long n,
                                          BinaryParams p, float* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_binary_at(a, b, p, e);
    }
}

// A comparison: bool out, one byte per element.
extern "C" __global__ void runtime_compare(const float* a, const float* b, long long n,
                                           BinaryParams p, unsigned char* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_compare_at(a, b, p, e) ? 1 : 0;
    }
}
