// RoIAlign on the GPU (Mask R-CNN): one output bin (region, channel, row, column) per call,
// with the arithmetic of ops_lib/src/detection/roi_align.rs (onnxruntime's, in f32): the same
// sampling grid, the same bilinear weights and neighbours, the samples summed in the same order,
// and max mode's quirk of taking the largest weighted corner of each sample.
//
// Each call recomputes its region's geometry (a few multiplies) rather than reading a
// precomputed grid: the CPU kernel shares one grid over all channels, which on the GPU would
// cost a pass and a buffer for less work than one sample's memory reads. The host refuses a
// sampling grid too large for memory before launching, as the CPU kernel does.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

struct RoiAlignParams {
    int channels, height, width;
    int output_height, output_width;
    // Samples per bin side; 0 means ceil(bin size).
    int sampling_ratio;
    float spatial_scale;
    // ONNX 16's half_pixel (Paddle's aligned): shift the region by half a pixel.
    int half_pixel;
    int max_mode;
};

// One bilinear sample: its four neighbours' flat positions in a channel plane and their
// weights, all zero for a sample outside the map.
struct RoiSample {
    int pos[4];
    float w[4];
};

__host__ __device__ inline RoiSample roi_sample_at(float y, float x, int height, int width) {
    RoiSample s = {{0, 0, 0, 0}, {0.0f, 0.0f, 0.0f, 0.0f}};
    if (y < -1.0f || y > (float)height || x < -1.0f || x > (float)width) {
        return s;
    }
    y = fmaxf(y, 0.0f);
    x = fmaxf(x, 0.0f);
    int y_low = (int)y;
    int y_high = y_low + 1;
    // Past the last cell both neighbours are the last one and the coordinate snaps to it.
    if (y_low + 1 >= height) {
        y_low = y_high = height - 1;
        y = (float)(height - 1);
    }
    int x_low = (int)x;
    int x_high = x_low + 1;
    if (x_low + 1 >= width) {
        x_low = x_high = width - 1;
        x = (float)(width - 1);
    }
    float ly = y - (float)y_low;
    float lx = x - (float)x_low;
    float hy = 1.0f - ly;
    float hx = 1.0f - lx;
    s.pos[0] = y_low * width + x_low;
    s.pos[1] = y_low * width + x_high;
    s.pos[2] = y_high * width + x_low;
    s.pos[3] = y_high * width + x_high;
    s.w[0] = hy * hx;
    s.w[1] = hy * lx;
    s.w[2] = ly * hx;
    s.w[3] = ly * lx;
    return s;
}

// Samples per bin side for a bin of `size` pixels.
__host__ __device__ inline int roi_grid(float size, int sampling_ratio) {
    // A negative adaptive size (a flipped region) samples nothing.
    return sampling_ratio == 0 ? (int)fmaxf(ceilf(size), 0.0f) : sampling_ratio;
}

// Bin (ph, pw) of one region `roi` ([x1, y1, x2, y2] before spatial_scale) over one channel
// `plane` of height x width values.
__host__ __device__ inline float roi_align_bin(const float* plane, const float* roi,
                                               const RoiAlignParams& p, int ph, int pw) {
    float offset = p.half_pixel ? 0.5f : 0.0f;
    float start_w = roi[0] * p.spatial_scale - offset;
    float start_h = roi[1] * p.spatial_scale - offset;
    float roi_w = roi[2] * p.spatial_scale - offset - start_w;
    float roi_h = roi[3] * p.spatial_scale - offset - start_h;
    if (!p.half_pixel) {
        // Malformed regions count as 1x1, as they did before half_pixel existed.
        roi_w = fmaxf(roi_w, 1.0f);
        roi_h = fmaxf(roi_h, 1.0f);
    }
    float bin_h = roi_h / (float)p.output_height;
    float bin_w = roi_w / (float)p.output_width;
    int grid_h = roi_grid(bin_h, p.sampling_ratio);
    int grid_w = roi_grid(bin_w, p.sampling_ratio);
    if (grid_h * grid_w == 0) {
        return 0.0f;
    }
    float acc = 0.0f;
    for (int iy = 0; iy < grid_h; ++iy) {
        float y = start_h + (float)ph * bin_h + ((float)iy + 0.5f) * bin_h / (float)grid_h;
        for (int ix = 0; ix < grid_w; ++ix) {
            float x = start_w + (float)pw * bin_w + ((float)ix + 0.5f) * bin_w / (float)grid_w;
            RoiSample s = roi_sample_at(y, x, p.height, p.width);
            if (p.max_mode) {
                float v = fmaxf(fmaxf(fmaxf(s.w[0] * plane[s.pos[0]], s.w[1] * plane[s.pos[1]]),
                                      s.w[2] * plane[s.pos[2]]),
                                s.w[3] * plane[s.pos[3]]);
                acc = iy == 0 && ix == 0 ? v : fmaxf(acc, v);
            } else {
                acc += s.w[0] * plane[s.pos[0]] + s.w[1] * plane[s.pos[1]] +
                       s.w[2] * plane[s.pos[2]] + s.w[3] * plane[s.pos[3]];
            }
        }
    }
    return p.max_mode ? acc : acc / (float)(grid_h * grid_w);
}
