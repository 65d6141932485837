// Kernel of layer_norm.cuh: one thread per row of `n`, grid-stride over the rows, keeping the
// CPU's summation order (a ViT's rows are 192 to 768 wide). `bias` may be null. Extern "C"
// names, for lookup by name in an NVRTC-compiled module.
#include "layer_norm.cuh"

extern "C" __global__ void runtime_layer_norm(const float* x, const float* scale, const float* bias,
                                              float epsilon, long long rows, long long n,
                                              float* out) {
    for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < rows;
         r += (long long)gridDim.x * blockDim.x) {
        rt_layer_norm_row(x + r * n, scale, bias, epsilon, out + r * n, n);
    }
}
