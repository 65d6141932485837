// Kernel of distribute_fpn.cuh: one thread per RoI of `rois` [R, 4], grid-stride, writing its
// level (an offset from min_level) to `level` [R]. Extern "C" names, for lookup by name in an
// NVRTC-compiled module.
#include "distribute_fpn.cuh"

extern "C" __global__ void ops_lib_fpn_level(const float* rois, int regions, FpnParams p,
                                             int* level) {
    for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < regions; r += gridDim.x * blockDim.x) {
        level[r] = fpn_level_of(rois + 4 * (long long)r, p);
    }
}
