// The convolution kernels' arithmetic (runtime/src/cpu/conv.rs, depthwise.rs and
// conv_transpose.rs compute the same sums on the CPU), one output element per call:
//   im2col     cols[b][c·kh·kw + i·kw + j][y·ow + x] =
//                  input[b][c][y·sh + i·dh - pt][x·sw + j·dw - pl]
//              (0 outside the input), the right-hand side of a convolution's GEMM per group,
//              of f32s or of f16s (moved as their bits)
//   depthwise  out[b][oc][y][x] = epilogue(Σ_{i,j} w[oc][0][i][j] · input[b][oc / m][..]), taps
//              in row-major order from 0, for a convolution with one input channel per group
//              (`m` output channels per group): no GEMM has anything to reuse there
//   col2im     out[b][oc][oy][ox] = act(bias[oc] + Σ_{i,j} cols[b·g + oc / og][(oc % og)·kh·kw +
//              i·kw + j][y·w + x]) over the taps whose input position y = (oy + pt - i·dh) / sh,
//              x = (ox + pl - j·dw) / sw divides exactly and is inside the input: a transposed
//              convolution's GEMM contributions gathered in (i, j) order
//   gemm C     out[r][c] = beta · C[r·rs + c·cs]: Gemm's C broadcast (stride 0 on a broadcast
//              axis) and scaled as the CPU scales it, before the product accumulates into it
// The GEMMs themselves are cuBLAS calls of the lowering (runtime/src/cuda/lower/conv.rs).
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

#include "activation.cuh"

// One spatial axis: the input's extent, the output's, and the window along it.
struct ConvAxisParams {
    int input, output;
    int kernel, stride, dilation, pad;
};

struct ConvParams {
    // Input [N, channels, h.input, w.input], output [N, out_channels, h.output, w.output].
    // im2col's channels are the whole input's (every group's rows, in channel order). Output
    // position `o` of a convolution reads input `o·stride + tap·dilation - pad`; input position
    // `y` of a transposed one writes output `y·stride + tap·dilation - pad`.
    ConvAxisParams h, w;
    int channels, out_channels;
    // The output channels per group: depthwise reads input channel `oc / group_out`, col2im
    // takes group `oc / group_out`'s rows.
    int group_out;
    // col2im: the groups, so that image `b` of group `gi` is GEMM entry `b·groups + gi`.
    int groups;
};

// Input position `o·stride + tap·dilation - pad` along `a`, or -1 outside the input.
__host__ __device__ inline long long rt_conv_source(long long o, int tap, const ConvAxisParams& a) {
    long long at = o * a.stride + (long long)tap * a.dilation - a.pad;
    return at >= 0 && at < a.input ? at : -1;
}

// im2col moves elements whatever their type (a float, or an f16's bits): zero is all zero bits.
template <typename T>
__host__ __device__ inline T rt_im2col_at(const T* x, const ConvParams& p, long long e) {
    long long plane = (long long)p.h.output * p.w.output;
    long long taps = (long long)p.h.kernel * p.w.kernel;
    long long ox = e % p.w.output;
    long long oy = e / p.w.output % p.h.output;
    long long row = e / plane;
    long long tap = row % taps;
    long long channel = row / taps;
    long long y = rt_conv_source(oy, (int)(tap / p.w.kernel), p.h);
    long long xx = rt_conv_source(ox, (int)(tap % p.w.kernel), p.w);
    if (y < 0 || xx < 0) {
        return T(0);
    }
    return x[(channel * p.h.input + y) * p.w.input + xx];
}

// Output element `e` of a convolution with one input channel per group, finished by the fused
// epilogue (`bias` and `residual` may be null).
__host__ __device__ inline float rt_depthwise_at(const float* x, const float* w, const float* bias,
                                                 const float* residual, const ConvParams& p,
                                                 const EpilogueParams& ep, long long e) {
    long long ox = e % p.w.output;
    long long oy = e / p.w.output % p.h.output;
    long long oc = e / ((long long)p.h.output * p.w.output) % p.out_channels;
    long long image = e / ((long long)p.h.output * p.w.output * p.out_channels);
    long long ic = oc / p.group_out;
    const float* in = x + (image * p.channels + ic) * p.h.input * p.w.input;
    const float* taps = w + oc * p.h.kernel * p.w.kernel;
    float acc = 0.0f;
    for (int i = 0; i < p.h.kernel; ++i) {
        long long y = rt_conv_source(oy, i, p.h);
        for (int j = 0; j < p.w.kernel; ++j) {
            long long xx = rt_conv_source(ox, j, p.w);
            if (y >= 0 && xx >= 0) {
                acc = acc + taps[i * p.w.kernel + j] * in[y * p.w.input + xx];
            }
        }
    }
    return rt_epilogue_at(acc, bias, residual, ep, e);
}

// The input position whose tap `tap` lands on output position `o` along `a`, or -1.
__host__ __device__ inline long long rt_transposed_source(long long o, int tap,
                                                          const ConvAxisParams& a) {
    long long shifted = o + a.pad - (long long)tap * a.dilation;
    if (shifted < 0 || shifted % a.stride != 0) {
        return -1;
    }
    long long at = shifted / a.stride;
    return at < a.input ? at : -1;
}

// Output element `e` of a transposed convolution from its GEMM's contributions `cols`
// ([N·groups][group_out·kh·kw][h.input·w.input]); `ep` applies the activation only.
__host__ __device__ inline float rt_col2im_at(const float* cols, const float* bias,
                                              const ConvParams& p, const EpilogueParams& ep,
                                              long long e) {
    long long ox = e % p.w.output;
    long long oy = e / p.w.output % p.h.output;
    long long oc = e / ((long long)p.h.output * p.w.output) % p.out_channels;
    long long image = e / ((long long)p.h.output * p.w.output * p.out_channels);
    long long in_plane = (long long)p.h.input * p.w.input;
    long long rows = (long long)p.group_out * p.h.kernel * p.w.kernel;
    long long entry = image * p.groups + oc / p.group_out;
    long long first_row = entry * rows + oc % p.group_out * p.h.kernel * p.w.kernel;
    const float* part = cols + first_row * in_plane;
    float acc = bias ? bias[oc] : 0.0f;
    for (int i = 0; i < p.h.kernel; ++i) {
        long long y = rt_transposed_source(oy, i, p.h);
        for (int j = 0; j < p.w.kernel; ++j) {
            long long xx = rt_transposed_source(ox, j, p.w);
            if (y >= 0 && xx >= 0) {
                acc = acc + part[(i * p.w.kernel + j) * in_plane + y * p.w.input + xx];
            }
        }
    }
    return rt_epilogue_at(acc, nullptr, nullptr, ep, e);
}

__host__ __device__ inline float rt_gemm_c_at(const float* c, long long columns,
                                              long long row_stride, long long column_stride,
                                              float beta, long long e) {
    return beta * c[e / columns * row_stride + e % columns * column_stride];
}
