// Box geometry shared by the kernels, with the arithmetic of ops_lib/src/detection/boxes.rs
// (Paddle's, in f32 and in Paddle's operation order, so that comparisons against thresholds
// break the same way on the GPU as on the CPU): corners [x1, y1, x2, y2] as given, an inverted
// box has no area, pixel boxes (not normalized) count both end pixels.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none; the headers
// that include this one need it handed to NVRTC by name beside them.
#pragma once

__host__ __device__ inline float paddle_box_area(const float* b, bool normalized) {
    if (b[2] < b[0] || b[3] < b[1]) {
        return 0.0f;
    }
    float w = b[2] - b[0];
    float h = b[3] - b[1];
    return normalized ? w * h : (w + 1.0f) * (h + 1.0f);
}

__host__ __device__ inline float paddle_iou(const float* a, const float* b, bool normalized) {
    if (b[0] > a[2] || b[2] < a[0] || b[1] > a[3] || b[3] < a[1]) {
        return 0.0f;
    }
    float norm = normalized ? 0.0f : 1.0f;
    float inter_w = fminf(a[2], b[2]) - fmaxf(a[0], b[0]) + norm;
    float inter_h = fminf(a[3], b[3]) - fmaxf(a[1], b[1]) + norm;
    float inter = inter_w * inter_h;
    return inter / (paddle_box_area(a, normalized) + paddle_box_area(b, normalized) - inter);
}
