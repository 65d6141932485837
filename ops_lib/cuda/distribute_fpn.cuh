// distribute_fpn_proposals on the GPU: the FPN level of one RoI, with the arithmetic of
// ops_lib/src/detection/distribute_fpn.rs (Paddle's, in f32):
//   floor(log2(sqrt(area) / refer_scale + 1e-6) + refer_level), clamped to [min_level,
//   max_level]
// with boxes.cuh's area (pixel boxes when pixel_offset). The split of the RoIs per level,
// keeping their order, and the restore index are a stable partition by level and stay on the
// host (issue 23).
//
// log2f differs between CUDA's and glibc's libm by up to an ulp or two, which moves a RoI to
// the other level only when its scale lies within that of a level boundary; the 1e-6 Paddle
// adds keeps exact powers of two of refer_scale clear of it.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

#include "boxes.cuh"

struct FpnParams {
    int min_level, max_level;
    int refer_level, refer_scale;
    int pixel_offset;
};

// The level of RoI `roi` ([x1, y1, x2, y2]) as an offset from min_level.
__host__ __device__ inline int fpn_level_of(const float* roi, const FpnParams& p) {
    float scale = sqrtf(paddle_box_area(roi, !p.pixel_offset));
    float lvl = floorf(log2f(scale / (float)p.refer_scale + 1e-6f) + (float)p.refer_level);
    // The CPU kernel casts to i32 first, which saturates and maps NaN to 0: clamping in float
    // first gives the same level without C's undefined out-of-range cast.
    lvl = lvl != lvl ? 0.0f : lvl;
    lvl = fminf(fmaxf(lvl, (float)p.min_level), (float)p.max_level);
    return (int)lvl - p.min_level;
}
