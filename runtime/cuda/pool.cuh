// 2-D pooling on the GPU over NCHW f32, one output element per call, with the arithmetic of
// runtime/src/cpu/pool.rs and pool/geometry.rs:
// - each axis's taps of an output position are a run (first input position, how many fall
//   inside the input, how many inside the padded extent), computed as geometry.rs computes them;
// - MaxPool: the largest tap, -inf for a window wholly in the padding (a NaN tap is skipped, as
//   fmaxf and Rust's f32::max skip it; only a window of NaNs alone may differ);
// - AveragePool: the CPU's separable order: each window column summed down its rows (the first
//   row, then `+` each next), those column sums added to 0 left to right (or, along a width
//   axis the CPU copies rather than pools, the one column sum itself), times `1 / count`,
//   count being the valid taps or with count_include_pad the padded ones (0 for no taps);
// - GlobalAveragePool: the plane's f64 sum (math.cuh's 8-lane order) over its size, in f64.
// Output extents (ceil_mode, auto_pad) are the host's, from the IR's shape rule.
//
// 1-D windows run as 2-D ones of height 1; 3-D windows stay on the CPU kernel: the real models
// here pool in 2-D.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

#include "math.cuh"

struct PoolAxisParams {
    int input, output;
    int kernel, stride, dilation;
    int pad_begin, pad_end;
};

struct PoolParams {
    // Input [planes, h.input, w.input], output [planes, h.output, w.output].
    PoolAxisParams h, w;
    int count_include_pad;
};

// The taps of one output position along one axis: input positions `first + i * dilation` for
// `i < valid`, and `padded` taps inside the explicitly padded extent.
struct PoolRun {
    int first, valid, padded;
};

// geometry.rs's `taps_below`: the taps of a window starting at `start` below `bound`.
__host__ __device__ inline int rt_pool_taps_below(long long start, long long bound,
                                                  const PoolAxisParams& a) {
    long long span = bound - start;
    if (span <= 0) {
        return 0;
    }
    long long taps = (span + a.dilation - 1) / a.dilation;
    return taps < a.kernel ? (int)taps : a.kernel;
}

__host__ __device__ inline PoolRun rt_pool_run(int o, const PoolAxisParams& a) {
    long long start = (long long)o * a.stride - a.pad_begin;
    int lo = rt_pool_taps_below(start, 0, a);
    int hi = rt_pool_taps_below(start, a.input, a);
    hi = hi > lo ? hi : lo;
    long long first = start + (long long)lo * a.dilation;
    PoolRun r;
    r.first = first > 0 ? (int)first : 0;
    r.valid = hi - lo;
    r.padded = rt_pool_taps_below(start, (long long)a.input + a.pad_end, a);
    return r;
}

// Element `e` of the max-pooled [planes, h.output, w.output] output.
__host__ __device__ inline float rt_max_pool_at(const float* x, const PoolParams& p, long long e) {
    int ow = (int)(e % p.w.output);
    int oh = (int)(e / p.w.output % p.h.output);
    const float* plane = x + e / ((long long)p.w.output * p.h.output) * p.h.input * p.w.input;
    PoolRun rh = rt_pool_run(oh, p.h);
    PoolRun rw = rt_pool_run(ow, p.w);
    float acc = rt_from_bits(0xff800000u);
    for (int i = 0; i < rh.valid; ++i) {
        const float* row = plane + (long long)(rh.first + i * p.h.dilation) * p.w.input;
        for (int j = 0; j < rw.valid; ++j) {
            acc = fmaxf(acc, row[rw.first + j * p.w.dilation]);
        }
    }
    return acc;
}

// Element `e` of the average-pooled [planes, h.output, w.output] output.
__host__ __device__ inline float rt_average_pool_at(const float* x, const PoolParams& p,
                                                    long long e) {
    int ow = (int)(e % p.w.output);
    int oh = (int)(e / p.w.output % p.h.output);
    const float* plane = x + e / ((long long)p.w.output * p.h.output) * p.h.input * p.w.input;
    PoolRun rh = rt_pool_run(oh, p.h);
    PoolRun rw = rt_pool_run(ow, p.w);
    // geometry.rs's Axis::is_identity: a unit window at stride 1 over every position.
    bool copied =
        p.w.kernel == 1 && p.w.stride == 1 && p.w.pad_begin == 0 && p.w.output == p.w.input;
    float acc = 0.0f;
    for (int j = 0; j < rw.valid; ++j) {
        const float* column = plane + rw.first + j * p.w.dilation;
        float sum = 0.0f;
        for (int i = 0; i < rh.valid; ++i) {
            float v = column[(long long)(rh.first + i * p.h.dilation) * p.w.input];
            sum = i == 0 ? v : sum + v;
        }
        acc = copied ? sum : acc + sum;
    }
    int count = p.count_include_pad ? rh.padded * rw.padded : rh.valid * rw.valid;
    float scale = count == 0 ? 0.0f : 1.0f / (float)count;
    return acc * scale;
}

// Plane `plane` of a GlobalAveragePool ([planes, size] in, one value per plane out).
__host__ __device__ inline float rt_global_average_pool_at(const float* x, long long size,
                                                           long long plane) {
    const float* v = x + plane * size;
    double sum = rt_sum_f64(size, [v](long long i) { return (double)v[i]; });
    return (float)(sum / (double)size);
}
