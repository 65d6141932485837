// DeformSample on the GPU: the sampling of a deformable convolution (ONNX DeformConv 19,
// deformable conv v2), its deformable im2col, one element [image, channel * kH * kW + tap, row,
// column] per call, with the arithmetic of runtime/src/cpu/deform_conv.rs: kernel tap (ki, kj)
// of output position (i, j) reads the input at
//   (i * stride + ki * dilation - pad + dy, j * stride + kj * dilation - pad + dx)
// bilinearly, corners outside the map reading zero, a sample at or past a whole pixel outside
// reading nothing, each weight scaled by the optional mask. The four corners are summed in the
// CPU kernel's order, an outside corner as a zero weight on the plane's first value.
//
// A DeformConv is this matrix times the weight, a grouped GEMM that belongs to cuBLASLt beside
// the runtime's other layers, not to ops_lib.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

struct DeformParams {
    // Input [N, C, H, W]; offset [N, offset_groups * kH * kW * 2, OH, OW] (dy then dx per
    // tap); mask [N, offset_groups * kH * kW, OH, OW].
    int channels, height, width;
    int kernel_h, kernel_w;
    int stride_h, stride_w;
    int pad_top, pad_left;
    int dilation_h, dilation_w;
    int offset_groups;
    int out_h, out_w;
};

// One bilinear read of a plane: four flat positions and their weights, the mask folded in.
struct DeformTap {
    int pos[4];
    float w[4];
};

__host__ __device__ inline DeformTap deform_tap_at(float y, float x, int height, int width,
                                                   float scale) {
    DeformTap t = {{0, 0, 0, 0}, {0.0f, 0.0f, 0.0f, 0.0f}};
    float h = (float)height;
    float w = (float)width;
    if (!(y > -1.0f && y < h && x > -1.0f && x < w)) {
        return t;
    }
    float y0 = floorf(y);
    float x0 = floorf(x);
    float ly = y - y0;
    float lx = x - x0;
    float hy = 1.0f - ly;
    float hx = 1.0f - lx;
    float cy[4] = {y0, y0, y0 + 1.0f, y0 + 1.0f};
    float cx[4] = {x0, x0 + 1.0f, x0, x0 + 1.0f};
    float cw[4] = {hy * hx, hy * lx, ly * hx, ly * lx};
    for (int i = 0; i < 4; ++i) {
        if (cy[i] >= 0.0f && cy[i] < h && cx[i] >= 0.0f && cx[i] < w) {
            t.pos[i] = (int)cy[i] * width + (int)cx[i];
            t.w[i] = cw[i] * scale;
        }
    }
    return t;
}

// Element `index` of the [N, C * kH * kW, OH, OW] output; `mask` may be null.
__host__ __device__ inline float deform_sample_at(const float* x, const float* offset,
                                                  const float* mask, const DeformParams& p,
                                                  long long index) {
    long long plane = (long long)p.out_h * p.out_w;
    int taps = p.kernel_h * p.kernel_w;
    int j = (int)(index % p.out_w);
    int i = (int)(index / p.out_w % p.out_h);
    int row = (int)(index / plane % ((long long)p.channels * taps));
    long long b = index / (plane * p.channels * taps);
    int c = row / taps;
    int k = row % taps;
    int ki = k / p.kernel_w;
    int kj = k % p.kernel_w;
    int og = c / (p.channels / p.offset_groups);
    long long at = (long long)i * p.out_w + j;
    long long tap = (b * p.offset_groups + og) * taps + k;
    float dy = offset[tap * 2 * plane + at];
    float dx = offset[(tap * 2 + 1) * plane + at];
    float scale = mask ? mask[tap * plane + at] : 1.0f;
    float base_y = (float)(i * p.stride_h + ki * p.dilation_h) - (float)p.pad_top;
    float base_x = (float)(j * p.stride_w + kj * p.dilation_w) - (float)p.pad_left;
    DeformTap t = deform_tap_at(base_y + dy, base_x + dx, p.height, p.width, scale);
    const float* src = x + (b * p.channels + c) * p.height * p.width;
    return t.w[0] * src[t.pos[0]] + t.w[1] * src[t.pos[1]] + t.w[2] * src[t.pos[2]] +
           t.w[3] * src[t.pos[3]];
}
