// Kernels of conv.cuh: one thread per output element, grid-stride, so any launch size covers any
// tensor. Extern "C" names, for lookup by name in an NVRTC-compiled module.
#include "conv.cuh"

// `n` is the elements of `cols`: images · channels · kh · kw · output plane.
template <typename T>
__device__ void im2col(const T* x, long long n, const ConvParams& p, T* cols) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        cols[e] = rt_im2col_at(x, p, e);
    }
}

extern "C" __global__ void runtime_im2col(const float* x, long long n, ConvParams p, float* cols) {
    im2col(x, n, p, cols);
}

// f16 columns for the tensor cores' GEMM: the elements' bits moved as they are.
extern "C" __global__ void runtime_im2col_2(const unsigned short* x, long long n, ConvParams p,
                                            unsigned short* cols) {
    im2col(x, n, p, cols);
}

// `bias` and `residual` may be null.
extern "C" __global__ void runtime_depthwise_conv(const float* x, const float* w, const float* bias,
                                                  const float* residual, long long n, ConvParams p,
                                                  EpilogueParams ep, float* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_depthwise_at(x, w, bias, residual, p, ep, e);
    }
}

// `bias` may be null.
extern "C" __global__ void runtime_col2im(const float* cols, const float* bias, long long n,
                                          ConvParams p, EpilogueParams ep, float* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_col2im_at(cols, bias, p, ep, e);
    }
}

extern "C" __global__ void runtime_gemm_c(const float* c, long long n, long long columns,
                                          long long row_stride, long long column_stride,
                                          float beta, float* out) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        out[e] = rt_gemm_c_at(c, columns, row_stride, column_stride, beta, e);
    }
}
