// GridSample on the GPU (the mask paste of instance segmentation heads, spatial transformers):
// one output element per call, bilinear with zeros padding, 2-D, with the arithmetic of
// runtime/src/cpu/grid_sample.rs: grid (x, y) in [-1, 1] maps to input pixels by
//   align_corners: (v + 1) / 2 * (size - 1)      otherwise: ((v + 1) * size - 1) / 2
// and the four corners around it, a corner outside the map reading zero, are summed in the CPU
// kernel's order (row above before row below, left before right) with weight
// (row weight) * (column weight).
//
// Nearest and cubic modes, border and reflection padding, and 3-D grids stay on the CPU kernel
// (issue 23): bilinear with zeros is PyTorch's default and what mmdetection's mask paste uses.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

struct GridSampleParams {
    // Input [N, C, H, W], grid [N, OH, OW, 2] holding (x, y), output [N, C, OH, OW].
    int channels, height, width;
    int out_h, out_w;
    int align_corners;
};

// From [-1, 1] to input coordinates along an axis of `size` cells.
__host__ __device__ inline float grid_denormalize(float v, int size, bool align_corners) {
    float n = (float)size;
    return align_corners ? (v + 1.0f) / 2.0f * (n - 1.0f) : ((v + 1.0f) * n - 1.0f) / 2.0f;
}

// Whether cell `i` (a whole number) lies inside an axis of `size` cells.
__host__ __device__ inline bool grid_inside(float i, int size) {
    return i >= 0.0f && i <= (float)size - 1.0f;
}

// The bilinear read of one channel `plane` (height x width) at grid point (gx, gy).
__host__ __device__ inline float grid_sample_bilinear(const float* plane, int height, int width,
                                                      float gx, float gy, bool align_corners) {
    float y = grid_denormalize(gy, height, align_corners);
    float x = grid_denormalize(gx, width, align_corners);
    float y0 = floorf(y);
    float x0 = floorf(x);
    float ty = y - y0;
    float tx = x - x0;
    float rows[2] = {y0, y0 + 1.0f};
    float row_w[2] = {1.0f - ty, ty};
    float cols[2] = {x0, x0 + 1.0f};
    float col_w[2] = {1.0f - tx, tx};
    float acc = 0.0f;
    for (int r = 0; r < 2; ++r) {
        if (!grid_inside(rows[r], height)) {
            continue;
        }
        for (int c = 0; c < 2; ++c) {
            if (grid_inside(cols[c], width)) {
                acc += row_w[r] * col_w[c] * plane[(int)rows[r] * width + (int)cols[c]];
            }
        }
    }
    return acc;
}

// Element `index` of the [N, C, OH, OW] output.
__host__ __device__ inline float grid_sample_at(const float* x, const float* grid,
                                                const GridSampleParams& p, long long index) {
    long long out_plane = (long long)p.out_h * p.out_w;
    long long at = index % out_plane;
    long long b = index / (out_plane * p.channels);
    long long plane = (long long)p.height * p.width;
    const float* g = grid + 2 * (b * out_plane + at);
    return grid_sample_bilinear(x + index / out_plane * plane, p.height, p.width, g[0], g[1],
                                p.align_corners);
}
