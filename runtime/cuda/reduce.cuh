// Reductions on the GPU over f32, one output element per call, with the arithmetic of
// runtime/src/cpu/reduce.rs, pool.rs and norm.rs:
// - ReduceSum, ReduceMean, ReduceMax, ReduceMin over any axes: the input's axes as reduce.rs's
//   `merged` leaves them (extent-1 axes dropped, neighbours both kept or both reduced merged),
//   each output's inputs read in memory order. Sums run in f64 from 0: where the last merged
//   axis is reduced, each contiguous row is summed in math.cuh's 8-lane order and added to the
//   running sum (reduce.rs's `sum_row`), otherwise each element is added on its own; the mean
//   divides that sum by the count in f64. Max and Min keep the running extreme unless the next
//   element orders strictly beyond it, NaN ordering above every number (reduce.rs's `order`),
//   so a NaN wins a ReduceMax and loses a ReduceMin.
// - GlobalMaxPool: pool.rs's fold of a plane from -inf by `>`, which skips a NaN.
// - BatchNormalization (inference): norm.rs's per-channel `a = scale / sqrt(var + epsilon)`,
//   `b = bias - mean · a`, then `x · a + b`, each step one f32 rounding.
// ReduceProd, ReduceL1/L2 and the log-sum family stay on the CPU kernel: no real model here
// runs them between its convolutions.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

#include "math.cuh"

enum RtReduceOp {
    RT_REDUCE_SUM = 0,
    RT_REDUCE_MEAN = 1,
    RT_REDUCE_MAX = 2,
    RT_REDUCE_MIN = 3,
};

struct ReduceParams {
    // The merged axes, outermost first, split into the kept ones (the output's, in order) and
    // the reduced ones, with their input strides in elements.
    long long kept[RT_MAX_RANK];
    long long kept_stride[RT_MAX_RANK];
    long long reduced[RT_MAX_RANK];
    long long reduced_stride[RT_MAX_RANK];
    // Elements reduced into each output: the mean's divisor.
    long long count;
    int kept_rank, reduced_rank;
    int op;
    // The last merged axis is reduced: the last reduced axis is a contiguous row.
    int row;
};

// reduce.rs's `order(&e, &a) == Greater`.
__host__ __device__ inline bool rt_reduce_above(float e, float a) {
    return e > a || (e != e && a == a);
}

// The first element of the reduced run of output `o`: its kept axes' offset.
__host__ __device__ inline long long rt_reduce_base(const ReduceParams& p, long long o) {
    long long base = 0;
    for (int i = p.kept_rank - 1; i >= 0; --i) {
        base += o % p.kept[i] * p.kept_stride[i];
        o /= p.kept[i];
    }
    return base;
}

// Output element `o`.
__host__ __device__ inline float rt_reduce_at(const float* x, const ReduceParams& p,
                                              long long o) {
    long long base = rt_reduce_base(p, o);
    int outer = p.row ? p.reduced_rank - 1 : p.reduced_rank;
    long long len = p.row ? p.reduced[outer] : 1;
    long long runs = 1;
    for (int i = 0; i < outer; ++i) {
        runs *= p.reduced[i];
    }
    bool sums = p.op == RT_REDUCE_SUM || p.op == RT_REDUCE_MEAN;
    double sum = 0.0;
    float extreme = rt_from_bits(p.op == RT_REDUCE_MAX ? 0xff800000u : 0x7f800000u);
    for (long long r = 0; r < runs; ++r) {
        long long at = base;
        long long q = r;
        for (int i = outer - 1; i >= 0; --i) {
            at += q % p.reduced[i] * p.reduced_stride[i];
            q /= p.reduced[i];
        }
        const float* v = x + at;
        if (sums) {
            sum = sum + (p.row ? rt_sum_f64(len, [v](long long i) { return (double)v[i]; })
                               : (double)v[0]);
            continue;
        }
        for (long long i = 0; i < len; ++i) {
            bool next = p.op == RT_REDUCE_MAX ? rt_reduce_above(v[i], extreme)
                                              : rt_reduce_above(extreme, v[i]);
            extreme = next ? v[i] : extreme;
        }
    }
    switch (p.op) {
    case RT_REDUCE_SUM:
        return (float)sum;
    case RT_REDUCE_MEAN:
        return (float)(sum / (double)p.count);
    default:
        return extreme;
    }
}

// Plane `plane` of a GlobalMaxPool ([planes, size] in, one value per plane out).
__host__ __device__ inline float rt_global_max_pool_at(const float* x, long long size,
                                                       long long plane) {
    const float* v = x + plane * size;
    float m = rt_from_bits(0xff800000u);
    for (long long i = 0; i < size; ++i) {
        m = v[i] > m ? v[i] : m;
    }
    return m;
}

// Element `e` of a BatchNormalization of [outer, channels, inner]; the four parameters hold one
// value per channel.
__host__ __device__ inline float rt_batch_norm_at(const float* x, const float* scale,
                                                  const float* bias, const float* mean,
                                                  const float* var, float epsilon,
                                                  long long channels, long long inner,
                                                  long long e) {
    long long c = e / inner % channels;
    float a = scale[c] / sqrtf(var[c] + epsilon);
    float b = bias[c] - mean[c] * a;
    return x[e] * a + b;
}
