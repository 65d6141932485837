// Transpose, Slice and Concat on the GPU: element moves of any dtype (the kernels come in 1-, 2-,
// 4- and 8-byte elements), as index math, one output element per call, with the semantics of
// runtime/src/cpu/shape_ops.rs and indexing.rs:
// - Transpose and Slice are strided reads: output element e, row-major over `extent`, reads
//   input element `offset + sum(index[k] * stride[k])`. Transpose strides are the input's
//   strides permuted; Slice's are the input's times each step (negative steps walk backwards),
//   with ONNX's clamping of out-of-range bounds as the CPU's `slice_bounds` does it;
// - Concat copies each input into its place along the axis: input element e of a part `chunk`
//   elements long per outer index lands at `e / chunk * row + offset + e % chunk`, `row` being
//   the output's per outer index and `offset` the parts before it. One launch per input.
// Up to RT_MAX_RANK axes; Split is Slices along one axis.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

#include "math.cuh"

struct StridedParams {
    int rank;
    // Where the compiler would pad before the 8-byte fields, named so that the host's mirror
    // (runtime/src/cuda/lower/movement.rs) has no padding of its own.
    int reserved;
    long long extent[RT_MAX_RANK];
    long long stride[RT_MAX_RANK];
    long long offset;
};

struct ConcatParams {
    long long chunk, row, offset;
};

// The row-major strides of `shape`.
__host__ __device__ inline void rt_strides(const long long* shape, int rank, long long* strides) {
    long long s = 1;
    for (int k = rank - 1; k >= 0; --k) {
        strides[k] = s;
        s *= shape[k];
    }
}

// Transpose of `shape` by `perm` (output axis k is input axis perm[k]); false past
// RT_MAX_RANK axes.
__host__ __device__ inline bool rt_transpose_params(const long long* shape, const int* perm,
                                                    int rank, StridedParams* p) {
    if (rank > RT_MAX_RANK) {
        return false;
    }
    long long strides[RT_MAX_RANK];
    rt_strides(shape, rank, strides);
    p->rank = rank;
    p->offset = 0;
    for (int k = 0; k < rank; ++k) {
        p->extent[k] = shape[perm[k]];
        p->stride[k] = strides[perm[k]];
    }
    return true;
}

// indexing.rs's `slice_bounds`: the first index `start:end:step` selects on an axis of extent
// `n`, and (in *len) how many it selects.
__host__ __device__ inline long long rt_slice_bounds(long long n, long long start, long long end,
                                                     long long step, long long* len) {
    *len = 0;
    if (n == 0) {
        return 0;
    }
    long long s = start < 0 ? start + n : start;
    long long t = end < 0 ? end + n : end;
    long long first;
    long long span;
    if (step > 0) {
        first = s < 0 ? 0 : (s > n ? n : s);
        span = (t < 0 ? 0 : (t > n ? n : t)) - first;
    } else {
        first = s < 0 ? 0 : (s > n - 1 ? n - 1 : s);
        span = first - (t < -1 ? -1 : (t > n - 1 ? n - 1 : t));
    }
    long long magnitude = step < 0 ? -step : step;
    *len = span > 0 ? (span - 1) / magnitude + 1 : 0;
    return first;
}

// Slice of `shape` with `starts`, `ends` and `steps` (nonzero) given for every axis; false past
// RT_MAX_RANK axes.
__host__ __device__ inline bool rt_slice_params(const long long* shape, int rank,
                                                const long long* starts, const long long* ends,
                                                const long long* steps, StridedParams* p) {
    if (rank > RT_MAX_RANK) {
        return false;
    }
    long long strides[RT_MAX_RANK];
    rt_strides(shape, rank, strides);
    p->rank = rank;
    p->offset = 0;
    for (int k = 0; k < rank; ++k) {
        long long len;
        long long first = rt_slice_bounds(shape[k], starts[k], ends[k], steps[k], &len);
        p->extent[k] = len;
        // With one element or none the stride is never taken, and a huge step must not
        // overflow it.
        p->stride[k] = len > 1 ? steps[k] * strides[k] : 0;
        p->offset += first * strides[k];
    }
    return true;
}

// The input element that output element `e` reads.
__host__ __device__ inline long long rt_strided_source(const StridedParams& p, long long e) {
    long long at = p.offset;
    for (int k = p.rank - 1; k >= 0; --k) {
        at += e % p.extent[k] * p.stride[k];
        e /= p.extent[k];
    }
    return at;
}

// The output element that element `e` of a Concat input lands on.
__host__ __device__ inline long long rt_concat_destination(const ConcatParams& p, long long e) {
    return e / p.chunk * p.row + p.offset + e % p.chunk;
}
