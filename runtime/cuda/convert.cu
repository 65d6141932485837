// Kernels of convert.cuh: one thread per output element, grid-stride; Gather and Pad in one
// kernel per element size (they move bytes, whatever the dtype). Extern "C" names, for lookup by
// name in an NVRTC-compiled module.
#include "convert.cuh"

extern "C" __global__ void runtime_cast(const void* x, long long n, CastParams p, void* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        rt_store(out, p.to, e, rt_load(x, p.from, e));
    }
}

template <typename T>
__device__ void gather(const T* x, const long long* indices, long long n, const GatherParams& p,
                       T* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        long long at = rt_gather_source(indices, p, e);
        out[e] = at < 0 ? (T)0 : x[at];
    }
}

template <typename T>
__device__ void pad(const T* x, long long n, const PadParams& p, T* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        long long at = rt_pad_source(p, e);
        out[e] = at < 0 ? (T)p.fill : x[at];
    }
}

// Gather: `n` output elements; `indices` int64.
extern "C" __global__ void runtime_gather_1(const unsigned char* x, const long long* indices,
                                            long long n, GatherParams p, unsigned char* out) {
    gather(x, indices, n, p, out);
}

extern "C" __global__ void runtime_gather_2(const unsigned short* x, const long long* indices,
                                            long long n, GatherParams p, unsigned short* out) {
    gather(x, indices, n, p, out);
}

extern "C" __global__ void runtime_gather_4(const unsigned int* x, const long long* indices,
                                            long long n, GatherParams p, unsigned int* out) {
    gather(x, indices, n, p, out);
}

extern "C" __global__ void runtime_gather_8(const unsigned long long* x,
                                            const long long* indices, long long n,
                                            GatherParams p, unsigned long long* out) {
    gather(x, indices, n, p, out);
}

// Pad: `n` output elements.
extern "C" __global__ void runtime_pad_1(const unsigned char* x, long long n, PadParams p,
                                         unsigned char* out) {
    pad(x, n, p, out);
}

extern "C" __global__ void runtime_pad_2(const unsigned short* x, long long n, PadParams p,
                                         unsigned short* out) {
    pad(x, n, p, out);
}

extern "C" __global__ void runtime_pad_4(const unsigned int* x, long long n, PadParams p,
                                         unsigned int* out) {
    pad(x, n, p, out);
}

extern "C" __global__ void runtime_pad_8(const unsigned long long* x, long long n, PadParams p,
                                         unsigned long long* out) {
    pad(x, n, p, out);
}
