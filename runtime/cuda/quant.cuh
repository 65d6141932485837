// QuantizeLinear and DequantizeLinear on the GPU, one element per call, with the arithmetic of
// runtime/src/cpu/quant.rs (per tensor, or per axis: element `e` takes entry
// `(e / inner) % channels` of the scale and zero point):
// - quantization is `saturate(rint(x / scale) + zero_point)` in f32: a true division (the CPU
//   multiplies by the reciprocal only where that gives the same bytes), rounding ties to even,
//   the sum clamped to the quantized type's range, NaN giving 0 (Rust's `as`);
// - dequantization is `(float)(q - zero_point) * scale`, the difference exact in 64 bits and
//   rounded once to f32.
// The zero point is read in its own dtype (it may be computed in the run); none means 0.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

#include "convert.cuh"

struct QuantParams {
    // The elements after the quantization axis, and the scale's entries (1 per tensor).
    long long inner, channels;
    // The quantized tensor's `RtDType`: QuantizeLinear's output, DequantizeLinear's input.
    int dtype;
    // The zero point's `RtDType`, or -1 without one.
    int zero_type;
};

__host__ __device__ inline long long rt_quant_channel(const QuantParams& p, long long e) {
    return (e / p.inner) % p.channels;
}

__host__ __device__ inline long long rt_zero_point(const void* zero, const QuantParams& p,
                                                   long long c) {
    if (zero == 0 || p.zero_type < 0) {
        return 0;
    }
    RtWide w = rt_load(zero, p.zero_type, c);
    return w.kind == 1 ? w.i : (long long)w.u;
}

// quant.rs's `Quantized::saturate` of `rint(v / scale) + zero`, as an integer of `[lo, hi]`.
__host__ __device__ inline long long rt_quantize(float v, float scale, long long zero, float lo,
                                                 float hi) {
    float r = rintf(v / scale) + (float)zero;
    if (r != r) {
        return 0;
    }
    r = r < lo ? lo : (r > hi ? hi : r);
    return (long long)r;
}

// Element `e` of `x` (f32) quantized into `out`, whose dtype is `p.dtype`.
__host__ __device__ inline void rt_quantize_at(const float* x, const float* scale,
                                               const void* zero, const QuantParams& p,
                                               long long e, void* out) {
    long long c = rt_quant_channel(p, e);
    long long z = rt_zero_point(zero, p, c);
    switch (p.dtype) {
    case RT_I8:
        ((signed char*)out)[e] = (signed char)rt_quantize(x[e], scale[c], z, -128.0f, 127.0f);
        break;
    case RT_I16:
        ((short*)out)[e] = (short)rt_quantize(x[e], scale[c], z, -32768.0f, 32767.0f);
        break;
    case RT_U16:
        ((unsigned short*)out)[e] =
            (unsigned short)rt_quantize(x[e], scale[c], z, 0.0f, 65535.0f);
        break;
    default:
        ((unsigned char*)out)[e] = (unsigned char)rt_quantize(x[e], scale[c], z, 0.0f, 255.0f);
        break;
    }
}

// Element `e` of `x` (dtype `p.dtype`) dequantized.
__host__ __device__ inline float rt_dequantize_at(const void* x, const float* scale,
                                                  const void* zero, const QuantParams& p,
                                                  long long e) {
    long long c = rt_quant_channel(p, e);
    RtWide q = rt_load(x, p.dtype, e);
    long long v = q.kind == 1 ? q.i : (long long)q.u;
    return (float)(v - rt_zero_point(zero, p, c)) * scale[c];
}
