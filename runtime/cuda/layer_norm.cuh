// LayerNormalization over the last axis on the GPU, one row per call, with the arithmetic of
// runtime/src/cpu/norm.rs (`layer_norm_t`, f32): the mean and the variance (of `x - mean`,
// squared) in f64 in math.cuh's 8-lane order, `inv = 1 / sqrt(var + epsilon)` in f64, then each
// element `(x - (f32)mean) · (f32)inv · scale + bias` in f32, in that order.
//
// Normalizing over more than the last axis is the same row over the flattened trailing axes;
// the launcher passes scale and bias broadcast to the row. The optional mean and inverse
// standard deviation outputs stay on the CPU kernel (issue 23): inference graphs do not read
// them.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

#include "math.cuh"

// The `n` values of `x` normalized into `y`; `scale` and `bias` hold `n` values, `bias` may be
// null.
__host__ __device__ inline void rt_layer_norm_row(const float* x, const float* scale,
                                                  const float* bias, float epsilon, float* y,
                                                  long long n) {
    double count = (double)n;
    double mean = rt_sum_f64(n, [x](long long i) { return (double)x[i]; }) / count;
    auto square = [x, mean](long long i) {
        double d = (double)x[i] - mean;
        return d * d;
    };
    double var = rt_sum_f64(n, square) / count;
    double inv = 1.0 / sqrt(var + (double)epsilon);
    float m = (float)mean;
    float s = (float)inv;
    for (long long i = 0; i < n; ++i) {
        float v = (x[i] - m) * s * scale[i];
        y[i] = bias ? v + bias[i] : v;
    }
}
