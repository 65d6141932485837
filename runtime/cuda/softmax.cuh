// Softmax on the GPU, one row or column per call, with the arithmetic of
// runtime/src/cpu/softmax.rs: the maximum, each element's `exp(x - max)` with math.cuh's exp
// (written to the output), their sum in f64, and each exp times `(f32)(1 / sum)`.
// - Over the last axis (`row`): the sum in the CPU's 8-lane order. The CPU takes the maximum
//   over eight running maxima; a set's maximum does not depend on the order it is read in (a
//   NaN counts only as the first element either way, and where +0 and -0 tie, `x - max`
//   differs only for x = ±0, whose exp is 1 both ways), so one running maximum gives the same
//   values.
// - Over an inner axis (`stripe`, YOLOv8's box distribution over [N, 16, 4, A] on axis 1): a
//   column `inner` elements apart, its sum one f64 chain in order, as the CPU's stripes run.
//
// LogSoftmax stays on the CPU kernel: it takes a libm `ln` the GPU's does not match to the bit.
// Opset 11's flattening is rows of the flattened extent, launched as such.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

#include "math.cuh"

// Softmax of the `n` values (n >= 1) of `x`, `stride` elements apart, into `y` alike.
__host__ __device__ inline void rt_softmax_exps(const float* x, float* y, long long n,
                                                long long stride) {
    float max = x[0];
    for (long long i = 1; i < n; ++i) {
        max = x[i * stride] > max ? x[i * stride] : max;
    }
    for (long long i = 0; i < n; ++i) {
        y[i * stride] = rt_exp(x[i * stride] - max);
    }
}

__host__ __device__ inline void rt_softmax_scale(float* y, long long n, long long stride,
                                                 double sum) {
    float inv = (float)(1.0 / sum);
    for (long long i = 0; i < n; ++i) {
        y[i * stride] = y[i * stride] * inv;
    }
}

// One contiguous row of `n` values (n >= 1).
__host__ __device__ inline void rt_softmax_row(const float* x, float* y, long long n) {
    rt_softmax_exps(x, y, n, 1);
    rt_softmax_scale(y, n, 1, rt_sum_f64(n, [y](long long i) { return (double)y[i]; }));
}

// One column of `n` values (n >= 1), `inner` elements apart.
__host__ __device__ inline void rt_softmax_column(const float* x, float* y, long long n,
                                                  long long inner) {
    rt_softmax_exps(x, y, n, inner);
    double sum = 0.0;
    for (long long i = 0; i < n; ++i) {
        sum += (double)y[i * inner];
    }
    rt_softmax_scale(y, n, inner, sum);
}
