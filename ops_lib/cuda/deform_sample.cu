// Kernel of deform_sample.cuh: one thread per output element [N, C * kH * kW, OH, OW],
// grid-stride; `mask` may be null. Extern "C" names, for lookup by name in an NVRTC-compiled
// module.
#include "deform_sample.cuh"

extern "C" __global__ void ops_lib_deform_sample(const float* x, const float* offset,
                                                 const float* mask, int n, DeformParams p,
                                                 float* out) {
    long long total = (long long)n * p.channels * p.kernel_h * p.kernel_w * p.out_h * p.out_w;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = deform_sample_at(x, offset, mask, p, e);
    }
}
