// Kernel of grid_sample.cuh: one thread per output element [N, C, OH, OW], grid-stride.
// Extern "C" names, for lookup by name in an NVRTC-compiled module.
#include "grid_sample.cuh"

extern "C" __global__ void ops_lib_grid_sample(const float* x, const float* grid, int n,
                                               GridSampleParams p, float* out) {
    long long total = (long long)n * p.channels * p.out_h * p.out_w;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = grid_sample_at(x, grid, p, e);
    }
}
