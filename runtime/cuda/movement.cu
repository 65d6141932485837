// Kernels of movement.cuh: one thread per element moved, grid-stride, one kernel per element
// size (a move copies bytes, whatever the dtype). Extern "C" names, for lookup by name in an
// NVRTC-compiled module.
#include "movement.cuh"

template <typename T>
__device__ void strided_copy(const T* x, long long n, const StridedParams& p, T* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = x[rt_strided_source(p, e)];
    }
}

template <typename T>
__device__ void concat_part(const T* x, long long n, const ConcatParams& p, T* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[rt_concat_destination(p, e)] = x[e];
    }
}

// Transpose and Slice: `n` output elements.
extern "C" __global__ void runtime_strided_copy_1(const unsigned char* x, long long n,
                                                  StridedParams p, unsigned char* out) {
    strided_copy(x, n, p, out);
}

extern "C" __global__ void runtime_strided_copy_2(const unsigned short* x, long long n,
                                                  StridedParams p, unsigned short* out) {
    strided_copy(x, n, p, out);
}

extern "C" __global__ void runtime_strided_copy_4(const unsigned int* x, long long n,
                                                  StridedParams p, unsigned int* out) {
    strided_copy(x, n, p, out);
}

extern "C" __global__ void runtime_strided_copy_8(const unsigned long long* x, long long n,
                                                  StridedParams p, unsigned long long* out) {
    strided_copy(x, n, p, out);
}

// One Concat input of `n` elements.
extern "C" __global__ void runtime_concat_part_1(const unsigned char* x, long long n,
                                                 ConcatParams p, unsigned char* out) {
    concat_part(x, n, p, out);
}

extern "C" __global__ void runtime_concat_part_2(const unsigned short* x, long long n,
                                                 ConcatParams p, unsigned short* out) {
    concat_part(x, n, p, out);
}

extern "C" __global__ void runtime_concat_part_4(const unsigned int* x, long long n, ConcatParams p,
                                                 unsigned int* out) {
    concat_part(x, n, p, out);
}

extern "C" __global__ void runtime_concat_part_8(const unsigned long long* x, long long n,
                                                 ConcatParams p, unsigned long long* out) {
    concat_part(x, n, p, out);
}
