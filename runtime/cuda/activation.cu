// Kernels of activation.cuh: one thread per element, grid-stride, so any launch size covers any
// tensor. Extern "C" names, for lookup by name in an NVRTC-compiled module.
#include "activation.cuh"

extern "C" __global__ void runtime_activation(const float* x, long long n, ActivationParams a,
                                              float* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_activate(a, x[e]);
    }
}

// In place over a convolution's accumulated output; `bias` and `residual` may be null.
extern "C" __global__ void runtime_conv_epilogue(float* out, const float* bias,
                                                 const float* residual, long long n,
                                                 EpilogueParams p) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_epilogue_at(out[e], bias, residual, p, e);
    }
}

// rt_unary's `op` over `n` elements.
extern "C" __global__ void runtime_unary(const float* x, long long n, int op, float* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_unary(op, x[e]);
    }
}
