// Kernels of quant.cuh: one thread per element, grid-stride. Extern "C" names, for lookup by name
// in an NVRTC-compiled module.
#include "quant.cuh"

// QuantizeLinear of `n` f32 elements; `zero` may be null.
extern "C" __global__ void runtime_quantize(const float* x, const float* scale, const void* zero,
                                            long long n, QuantParams p, void* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        rt_quantize_at(x, scale, zero, p, e, out);
    }
}

// DequantizeLinear of `n` elements into f32; `zero` may be null.
extern "C" __global__ void runtime_dequantize(const void* x, const float* scale,
                                              const void* zero, long long n, QuantParams p,
                                              float* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_dequantize_at(x, scale, zero, p, e);
    }
}
