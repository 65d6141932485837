// Resize on the GPU over the two spatial axes of NCHW f32, one output element per call, with the
// arithmetic of runtime/src/cpu/resize.rs (ONNX Resize 11 to 19 as the spec's reference computes
// it), coordinates in f32:
// - nearest: every coordinate transform, the four rounding modes, tf_crop_and_resize's
//   extrapolation;
// - linear: bilinear, separable as on the CPU: the row pass first (each needed input row
//   interpolated along W), then the column pass over those rows, each a sum `0 + w0·v0 + w1·v1`
//   in tap order with the taps clamped to the edges; an axis the CPU leaves untouched (its taps
//   are the identity) is read directly here too, so even -0 and infinities keep the CPU's bits.
// The extents, scales and roi of each axis are ResizeAttrs::plan's (the IR crate), made on the
// host from the Resize's operands, as the CPU kernel makes them.
//
// Cubic, antialias and exclude_outside stay on the CPU kernel (issue 23): no real model here
// runs them between its convolutions.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

enum RtResizeCoordinate {
    RT_HALF_PIXEL = 0,
    RT_HALF_PIXEL_SYMMETRIC = 1,
    RT_PYTORCH_HALF_PIXEL = 2,
    RT_ALIGN_CORNERS = 3,
    RT_ASYMMETRIC = 4,
    RT_TF_CROP_AND_RESIZE = 5,
};

enum RtResizeNearest {
    RT_ROUND_PREFER_FLOOR = 0,
    RT_ROUND_PREFER_CEIL = 1,
    RT_FLOOR = 2,
    RT_CEIL = 3,
};

// One axis of ResizeAttrs::plan.
struct ResizeAxisParams {
    int input, output;
    float scale;
    float roi_start, roi_end;
    // Linear only: every output position reads its own input position alone (set on the host
    // with rt_resize_axis_is_identity), so the CPU skips the axis's pass.
    int identity;
};

struct ResizeParams {
    int coordinate;
    int nearest;
    float extrapolation;
    // Input [planes, h.input, w.input], output [planes, h.output, w.output].
    ResizeAxisParams h, w;
};

// The input coordinate that output position `o` maps to, before rounding or clamping.
__host__ __device__ inline float rt_resize_source(int coordinate, int o,
                                                  const ResizeAxisParams& a) {
    float x = (float)o;
    float input = (float)a.input;
    float output = (float)a.output;
    float scaled = a.scale * input;
    if (fabsf(scaled - output) <= 1e-3f) {
        scaled = output;
    }
    switch (coordinate) {
    case RT_HALF_PIXEL_SYMMETRIC: {
        float adjustment = output / (a.scale * input);
        float offset = input / 2.0f * (1.0f - adjustment);
        return offset + (x + 0.5f) / a.scale - 0.5f;
    }
    case RT_PYTORCH_HALF_PIXEL:
        return a.output > 1 ? (x + 0.5f) / a.scale - 0.5f : 0.0f;
    case RT_ALIGN_CORNERS:
        return scaled == 1.0f ? 0.0f : x * (input - 1.0f) / (scaled - 1.0f);
    case RT_ASYMMETRIC:
        return x / a.scale;
    case RT_TF_CROP_AND_RESIZE:
        if (scaled != 1.0f) {
            return a.roi_start * (input - 1.0f) +
                   x * (a.roi_end - a.roi_start) * (input - 1.0f) / (scaled - 1.0f);
        }
        return 0.5f * (a.roi_start + a.roi_end) * (input - 1.0f);
    default:
        return (x + 0.5f) / a.scale - 0.5f;
    }
}

// Whether coordinate `c` lies outside the input, where tf_crop_and_resize extrapolates.
__host__ __device__ inline bool rt_resize_outside(int coordinate, float c, int input) {
    return coordinate == RT_TF_CROP_AND_RESIZE && (c < 0.0f || c > (float)(input - 1));
}

__host__ __device__ inline int rt_resize_nearest_index(int mode, float c, int input) {
    bool half = c - truncf(c) == 0.5f;
    float r;
    switch (mode) {
    case RT_ROUND_PREFER_FLOOR:
        r = half ? floorf(c) : roundf(c);
        break;
    case RT_ROUND_PREFER_CEIL:
        r = half ? ceilf(c) : roundf(c);
        break;
    case RT_FLOOR:
        r = floorf(c);
        break;
    default:
        r = ceilf(c);
    }
    // `(r.max(0.0) as usize).min(input - 1)`: NaN and negatives to 0, the cast saturating.
    r = r > 0.0f ? r : 0.0f;
    return r >= (float)(input - 1) ? input - 1 : (int)r;
}

// The two taps of output position `o` along an axis (`first` and `first + 1` clamped into the
// input) and their weights `max(1 - |i - ratio|, 0)`; false where the position extrapolates.
__host__ __device__ inline bool
rt_resize_linear_taps(int coordinate, int o, const ResizeAxisParams& a, int* index, float* weight) {
    float c = rt_resize_source(coordinate, o, a);
    if (rt_resize_outside(coordinate, c, a.input)) {
        return false;
    }
    float base = floorf(c);
    float ratio = c - base;
    for (int i = 0; i < 2; ++i) {
        long long p = (long long)base + i;
        index[i] = p < 0 ? 0 : (p > a.input - 1 ? a.input - 1 : (int)p);
        weight[i] = fmaxf(1.0f - fabsf((float)i - ratio), 0.0f);
    }
    return true;
}

// Whether the linear taps of axis `a` are the identity (each output reads its own input
// position with weight 1, the other tap with weight 0), for ResizeAxisParams::identity.
__host__ __device__ inline bool rt_resize_axis_is_identity(int coordinate,
                                                           const ResizeAxisParams& a) {
    if (a.input != a.output) {
        return false;
    }
    for (int o = 0; o < a.output; ++o) {
        int index[2];
        float weight[2];
        if (!rt_resize_linear_taps(coordinate, o, a, index, weight)) {
            return false;
        }
        for (int i = 0; i < 2; ++i) {
            if (weight[i] != 0.0f && (index[i] != o || weight[i] != 1.0f)) {
                return false;
            }
        }
    }
    return true;
}

// Element `e` of the nearest-resized [planes, h.output, w.output] output.
__host__ __device__ inline float rt_resize_nearest_at(const float* x, const ResizeParams& p,
                                                      long long e) {
    int ow = (int)(e % p.w.output);
    int oh = (int)(e / p.w.output % p.h.output);
    long long plane = e / ((long long)p.w.output * p.h.output);
    float cy = rt_resize_source(p.coordinate, oh, p.h);
    float cx = rt_resize_source(p.coordinate, ow, p.w);
    if (rt_resize_outside(p.coordinate, cy, p.h.input) ||
        rt_resize_outside(p.coordinate, cx, p.w.input)) {
        return p.extrapolation;
    }
    int iy = rt_resize_nearest_index(p.nearest, cy, p.h.input);
    int ix = rt_resize_nearest_index(p.nearest, cx, p.w.input);
    return x[(plane * p.h.input + iy) * p.w.input + ix];
}

// Input row `row` (of `plane`, [h.input, w.input]) after the CPU's row pass, at column `ow`.
__host__ __device__ inline float rt_resize_row_pass(const float* plane, int row, int ow,
                                                    const ResizeParams& p) {
    const float* src = plane + (long long)row * p.w.input;
    if (p.w.identity) {
        return src[ow];
    }
    int index[2];
    float weight[2];
    if (!rt_resize_linear_taps(p.coordinate, ow, p.w, index, weight)) {
        return p.extrapolation;
    }
    float acc = 0.0f;
    for (int i = 0; i < 2; ++i) {
        acc = acc + weight[i] * src[index[i]];
    }
    return acc;
}

// Element `e` of the bilinearly resized [planes, h.output, w.output] output.
__host__ __device__ inline float rt_resize_linear_at(const float* x, const ResizeParams& p,
                                                     long long e) {
    int ow = (int)(e % p.w.output);
    int oh = (int)(e / p.w.output % p.h.output);
    const float* plane = x + e / ((long long)p.w.output * p.h.output) * p.h.input * p.w.input;
    if (p.h.identity) {
        return rt_resize_row_pass(plane, oh, ow, p);
    }
    int index[2];
    float weight[2];
    if (!rt_resize_linear_taps(p.coordinate, oh, p.h, index, weight)) {
        return p.extrapolation;
    }
    float acc = 0.0f;
    for (int i = 0; i < 2; ++i) {
        acc = acc + weight[i] * rt_resize_row_pass(plane, index[i], ow, p);
    }
    return acc;
}
