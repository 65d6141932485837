// Binary elementwise ops on the GPU (Add, Sub, Mul, Div, Min, Max, PRelu, Pow and the comparisons
// on f32) with numpy broadcasting, as
// runtime/src/cpu/elementwise.rs and elementwise_binary.rs define it: the shapes aligned from the
// right, a size-1 axis stretched. Each output element reads each operand at its own offset,
// `sum(index[k] * stride[k])` with stride 0 along a stretched axis; the arithmetic is one f32
// operation, the CPU's, so the bits are its. Min and Max return the first operand when it is NaN
// (numpy's `minimum`/`maximum`, as elementwise_binary.rs); PRelu is `x < 0 ? x·y : x`. A
// comparison gives bool, one byte 0 or 1.
//
// Pow is the exception to the CPU's bits. The CPU raises an f32 base to an f32 exponent in f64,
// `(x as f64).powf(y as f64) as f32` (libm's pow, no branch for integer exponents on float
// bases), and so does this, with CUDA's double pow on a GPU: within 2 ulp of f64, which the
// rounding to f32 nearly always hides, though not always, so a GPU may differ from the CPU by
// an ulp of f32 (within the backend's 1e-4 relative L2 check). The host emulator compiles this
// against the host's libm, so its values are the CPU's bits.
//
// Up to RT_MAX_RANK axes. The CPU merges adjacent axes that broadcast alike before its loops;
// here that is only speed, not values, and is left to the launcher (issue 23).
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

#include "math.cuh"

enum RtBinaryOp {
    RT_ADD = 0,
    RT_SUB = 1,
    RT_MUL = 2,
    RT_DIV = 3,
    RT_MIN = 4,
    RT_MAX = 5,
    RT_PRELU = 6,
    RT_POW = 7,
};

enum RtCompareOp {
    RT_EQUAL = 0,
    RT_GREATER = 1,
    RT_GREATER_OR_EQUAL = 2,
    RT_LESS = 3,
    RT_LESS_OR_EQUAL = 4,
};

struct BinaryParams {
    int op;
    int rank;
    long long extent[RT_MAX_RANK];
    long long a_stride[RT_MAX_RANK];
    long long b_stride[RT_MAX_RANK];
};

// The broadcast of shapes `a` (rank `a_rank`) and `b` into `p` (its op left as it is); false
// when they do not broadcast or the result has more than RT_MAX_RANK axes.
__host__ __device__ inline bool rt_binary_broadcast(const long long* a, int a_rank,
                                                    const long long* b, int b_rank,
                                                    BinaryParams* p) {
    int rank = a_rank > b_rank ? a_rank : b_rank;
    if (rank > RT_MAX_RANK) {
        return false;
    }
    p->rank = rank;
    long long a_step = 1;
    long long b_step = 1;
    for (int k = rank - 1; k >= 0; --k) {
        int i = k - (rank - a_rank);
        int j = k - (rank - b_rank);
        long long da = i >= 0 ? a[i] : 1;
        long long db = j >= 0 ? b[j] : 1;
        if (da != db && da != 1 && db != 1) {
            return false;
        }
        p->extent[k] = da == 1 ? db : da;
        p->a_stride[k] = da == 1 ? 0 : a_step;
        p->b_stride[k] = db == 1 ? 0 : b_step;
        a_step *= da;
        b_step *= db;
    }
    return true;
}

__host__ __device__ inline float rt_binary(int op, float x, float y) {
    switch (op) {
    case RT_ADD:
        return x + y;
    case RT_SUB:
        return x - y;
    case RT_MUL:
        return x * y;
    case RT_MIN:
        return x < y || x != x ? x : y;
    case RT_MAX:
        return x > y || x != x ? x : y;
    case RT_PRELU:
        return x < 0.0f ? x * y : x;
    case RT_POW:
        return (float)pow((double)x, (double)y);
    default:
        return x / y;
    }
}

// Output element `e` (row-major over p.extent).
__host__ __device__ inline float rt_binary_at(const float* a, const float* b, const BinaryParams& p,
                                              long long e) {
    long long at_a = 0;
    long long at_b = 0;
    for (int k = p.rank - 1; k >= 0; --k) {
        long long i = e % p.extent[k];
        e /= p.extent[k];
        at_a += i * p.a_stride[k];
        at_b += i * p.b_stride[k];
    }
    return rt_binary(p.op, a[at_a], b[at_b]);
}

__host__ __device__ inline bool rt_compare(int op, float x, float y) {
    switch (op) {
    case RT_EQUAL:
        return x == y;
    case RT_GREATER:
        return x > y;
    case RT_GREATER_OR_EQUAL:
        return x >= y;
    case RT_LESS:
        return x < y;
    default:
        return x <= y;
    }
}

// Output element `e` of a comparison (p.op an RtCompareOp).
__host__ __device__ inline bool rt_compare_at(const float* a, const float* b, const BinaryParams& p,
                                              long long e) {
    long long at_a = 0;
    long long at_b = 0;
    for (int k = p.rank - 1; k >= 0; --k) {
        long long i = e % p.extent[k];
        e /= p.extent[k];
        at_a += i * p.a_stride[k];
        at_b += i * p.b_stride[k];
    }
    return rt_compare(p.op, a[at_a], b[at_b]);
}
