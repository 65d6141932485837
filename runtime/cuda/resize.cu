// Kernels of resize.cuh: one thread per output element [planes, out_h, out_w], grid-stride.
// Extern "C" names, for lookup by name in an NVRTC-compiled module.
#include "resize.cuh"

extern "C" __global__ void runtime_resize_nearest(const float* x, long long n, ResizeParams p,
                                                  float* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_resize_nearest_at(x, p, e);
    }
}

extern "C" __global__ void runtime_resize_linear(const float* x, long long n, ResizeParams p,
                                                 float* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_resize_linear_at(x, p, e);
    }
}
