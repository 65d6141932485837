// Kernel of preprocess.cuh: one thread per output element, grid-stride, so any launch size
// covers any canvas. Extern "C" names, for lookup by name in an NVRTC-compiled module.
#include "preprocess.cuh"

extern "C" __global__ void ops_lib_preprocess(const unsigned char* rgb, PreprocessParams p,
                                              float* out) {
    long long plane = (long long)p.out_h * p.out_w;
    long long total = 3 * plane;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int c = (int)(e / plane);
        int y = (int)(e % plane / p.out_w);
        int x = (int)(e % p.out_w);
        out[e] = preprocess_at(rgb, p, c, y, x);
    }
}
