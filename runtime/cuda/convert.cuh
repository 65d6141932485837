// Cast, Gather and Pad on the GPU, one output element per call, with the semantics of
// runtime/src/cpu/cast.rs, indexing.rs and fill.rs:
// - Cast converts through the widest type of the source's kind (double, long long or unsigned
//   long long) as the CPU's `convert` does, so each conversion rounds once: float to integer
//   truncates toward zero and saturates, NaN giving 0 (Rust's `as`); integer to narrower integer
//   wraps; anything to bool is `x != 0`. The 16-bit floats convert only from and to f32 here:
//   f32 to f16 rounds to nearest even (the F16C conversion the CPU uses), f32 to bf16 is
//   cast.rs's `narrow_bf16`, and widening either is exact (an f16 NaN comes out quiet, as F16C
//   makes it). The CPU narrows wider types to f16 through the `half` crate, whose result
//   depends on the host's instructions, so the launcher keeps those casts on the CPU.
// - Gather along an axis: output element (outer, j, inner) reads input (outer, indices[j],
//   inner), a negative index counting from the end. An index out of range, which the CPU
//   reports as an error, reads nothing and gives zero bytes here: the launcher resolves known
//   indices itself and leaves out-of-range ones to the CPU.
// - Pad: each output index maps, per axis, to an input index or (constant mode) to the fill
//   value, as fill.rs's `source_map`: the input axis keeps `kept` elements from `lo` on
//   (negative pads crop), `before` output elements come first, and reflect, edge and wrap fold
//   an index outside [0, kept) back into it.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

#include "math.cuh"

// The IR's dtypes, in temblor_ir::DType's order.
enum RtDType {
    RT_F32 = 0,
    RT_F16 = 1,
    RT_BF16 = 2,
    RT_F64 = 3,
    RT_I8 = 4,
    RT_U8 = 5,
    RT_I16 = 6,
    RT_U16 = 7,
    RT_I32 = 8,
    RT_U32 = 9,
    RT_I64 = 10,
    RT_U64 = 11,
    RT_BOOL = 12,
};

struct CastParams {
    int from, to;
};

struct GatherParams {
    // The input's extent along the axis, the elements after the axis, and the indices' count.
    long long extent, inner, count;
};

enum RtPadMode {
    RT_PAD_CONSTANT = 0,
    RT_PAD_REFLECT = 1,
    RT_PAD_EDGE = 2,
    RT_PAD_WRAP = 3,
};

struct PadParams {
    int rank, mode;
    long long extent[RT_MAX_RANK];
    long long in_stride[RT_MAX_RANK];
    long long before[RT_MAX_RANK];
    long long lo[RT_MAX_RANK];
    long long kept[RT_MAX_RANK];
    // The constant's bits in the low bytes of the element size.
    unsigned long long fill;
};

// A value in the widest type of its kind, as cast.rs's `convert` carries it.
struct RtWide {
    int kind; // 0 float (in f), 1 signed (in i), 2 unsigned (in u)
    double f;
    long long i;
    unsigned long long u;
};

__host__ __device__ inline float rt_f16_to_f32(unsigned short h) {
    unsigned int sign = (unsigned int)(h & 0x8000u) << 16;
    unsigned int exp = (h >> 10) & 0x1fu;
    unsigned int man = h & 0x3ffu;
    if (exp == 0x1fu) {
        return rt_from_bits(sign | 0x7f800000u | (man << 13) | (man != 0 ? 0x400000u : 0u));
    }
    if (exp == 0) {
        // man · 2^-24, exact in f32.
        return rt_from_bits(sign | rt_bits((float)man * 5.9604645e-8f));
    }
    return rt_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
}

// Round to nearest, ties to even, as F16C's conversion.
__host__ __device__ inline unsigned short rt_f32_to_f16(float f) {
    unsigned int x = rt_bits(f);
    unsigned int sign = (x >> 16) & 0x8000u;
    unsigned int exp = (x >> 23) & 0xffu;
    unsigned int man = x & 0x7fffffu;
    if (exp == 0xffu) {
        return (unsigned short)(sign | 0x7c00u | (man != 0 ? 0x200u | (man >> 13) : 0u));
    }
    int e = (int)exp - 127 + 15;
    if (e >= 0x1f) {
        return (unsigned short)(sign | 0x7c00u);
    }
    if (e < -10) {
        // Below half the smallest subnormal: zero.
        return (unsigned short)sign;
    }
    if (e <= 0) {
        unsigned int m = man | 0x800000u;
        int shift = 14 - e;
        unsigned int half = m >> shift;
        unsigned int rest = m & ((1u << shift) - 1u);
        unsigned int halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (half & 1u))) {
            ++half;
        }
        return (unsigned short)(sign | half);
    }
    unsigned int half = sign | ((unsigned int)e << 10) | (man >> 13);
    unsigned int rest = man & 0x1fffu;
    // A carry out of the significand steps the exponent, up to infinity: still nearest-even.
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) {
        ++half;
    }
    return (unsigned short)half;
}

// cast.rs's `narrow_bf16`.
__host__ __device__ inline unsigned short rt_f32_to_bf16(float f) {
    unsigned int b = rt_bits(f);
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        return (unsigned short)((b >> 16) | 0x40u);
    }
    return (unsigned short)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

// Rust's `f64 as i64`: truncation, saturating, NaN to 0.
__host__ __device__ inline long long rt_f64_to_i64(double d) {
    if (d != d) {
        return 0;
    }
    if (d <= -9223372036854775808.0) {
        return -9223372036854775807LL - 1;
    }
    if (d >= 9223372036854775808.0) {
        return 9223372036854775807LL;
    }
    return (long long)d;
}

// Rust's `f64 as u64`.
__host__ __device__ inline unsigned long long rt_f64_to_u64(double d) {
    if (d != d || d <= 0.0) {
        return 0;
    }
    if (d >= 18446744073709551616.0) {
        return 18446744073709551615ULL;
    }
    return (unsigned long long)d;
}

// Rust's `f64 as T` for a narrower signed T in [lo, hi]: truncating first, then clamping, is
// the same as saturating first.
__host__ __device__ inline long long rt_f64_to_signed(double d, long long lo, long long hi) {
    long long t = rt_f64_to_i64(d);
    return t < lo ? lo : (t > hi ? hi : t);
}

__host__ __device__ inline unsigned long long rt_f64_to_unsigned(double d, unsigned long long hi) {
    unsigned long long t = rt_f64_to_u64(d);
    return t > hi ? hi : t;
}

__host__ __device__ inline RtWide rt_load(const void* x, int dtype, long long e) {
    RtWide w = {0, 0.0, 0, 0};
    switch (dtype) {
    case RT_F32:
        w.f = ((const float*)x)[e];
        break;
    case RT_F16:
        w.f = rt_f16_to_f32(((const unsigned short*)x)[e]);
        break;
    case RT_BF16:
        w.f = rt_from_bits((unsigned int)((const unsigned short*)x)[e] << 16);
        break;
    case RT_F64:
        w.f = ((const double*)x)[e];
        break;
    case RT_I8:
        w.kind = 1;
        w.i = ((const signed char*)x)[e];
        break;
    case RT_I16:
        w.kind = 1;
        w.i = ((const short*)x)[e];
        break;
    case RT_I32:
        w.kind = 1;
        w.i = ((const int*)x)[e];
        break;
    case RT_I64:
        w.kind = 1;
        w.i = ((const long long*)x)[e];
        break;
    case RT_U8:
    case RT_BOOL:
        w.kind = 2;
        w.u = ((const unsigned char*)x)[e];
        break;
    case RT_U16:
        w.kind = 2;
        w.u = ((const unsigned short*)x)[e];
        break;
    case RT_U32:
        w.kind = 2;
        w.u = ((const unsigned int*)x)[e];
        break;
    default:
        w.kind = 2;
        w.u = ((const unsigned long long*)x)[e];
        break;
    }
    return w;
}

// The value as a double (a float's own, an integer's rounded to nearest).
__host__ __device__ inline double rt_wide_f64(const RtWide& w) {
    return w.kind == 0 ? w.f : (w.kind == 1 ? (double)w.i : (double)w.u);
}

// The value as a signed integer of [lo, hi]: a float saturating, an integer wrapping.
__host__ __device__ inline long long rt_wide_signed(const RtWide& w, long long lo, long long hi) {
    return w.kind == 0 ? rt_f64_to_signed(w.f, lo, hi) : (w.kind == 1 ? w.i : (long long)w.u);
}

__host__ __device__ inline unsigned long long rt_wide_unsigned(const RtWide& w,
                                                               unsigned long long hi) {
    return w.kind == 0 ? rt_f64_to_unsigned(w.f, hi)
                       : (w.kind == 1 ? (unsigned long long)w.i : w.u);
}

// Element `e` of `out` (dtype `to`) from `w`. Integers are narrowed by keeping the low bytes:
// two's complement wrapping, as Rust's `as`. f16 and bf16 are stored only from an f32 source,
// which `w.f` holds exactly.
__host__ __device__ inline void rt_store(void* out, int to, long long e, const RtWide& w) {
    switch (to) {
    case RT_F32:
        ((float*)out)[e] = w.kind == 0 ? (float)w.f
                                       : (w.kind == 1 ? (float)w.i : (float)w.u);
        break;
    case RT_F16:
        ((unsigned short*)out)[e] = rt_f32_to_f16((float)w.f);
        break;
    case RT_BF16:
        ((unsigned short*)out)[e] = rt_f32_to_bf16((float)w.f);
        break;
    case RT_F64:
        ((double*)out)[e] = rt_wide_f64(w);
        break;
    case RT_I8:
        ((unsigned char*)out)[e] = (unsigned char)rt_wide_signed(w, -128, 127);
        break;
    case RT_I16:
        ((unsigned short*)out)[e] = (unsigned short)rt_wide_signed(w, -32768, 32767);
        break;
    case RT_I32:
        ((unsigned int*)out)[e] =
            (unsigned int)rt_wide_signed(w, -2147483647LL - 1, 2147483647LL);
        break;
    case RT_I64:
        ((long long*)out)[e] = w.kind == 0 ? rt_f64_to_i64(w.f)
                                           : (w.kind == 1 ? w.i : (long long)w.u);
        break;
    case RT_U8:
        ((unsigned char*)out)[e] = (unsigned char)rt_wide_unsigned(w, 255);
        break;
    case RT_U16:
        ((unsigned short*)out)[e] = (unsigned short)rt_wide_unsigned(w, 65535);
        break;
    case RT_U32:
        ((unsigned int*)out)[e] = (unsigned int)rt_wide_unsigned(w, 4294967295ULL);
        break;
    case RT_U64:
        ((unsigned long long*)out)[e] = rt_wide_unsigned(w, 18446744073709551615ULL);
        break;
    default:
        ((unsigned char*)out)[e] =
            w.kind == 0 ? (w.f != 0.0) : (w.kind == 1 ? (w.i != 0) : (w.u != 0));
        break;
    }
}

// The input element output element `e` of a Gather reads, or -1 when its index is out of range.
__host__ __device__ inline long long rt_gather_source(const long long* indices,
                                                      const GatherParams& p, long long e) {
    long long inner = e % p.inner;
    long long rest = e / p.inner;
    long long j = rest % p.count;
    long long outer = rest / p.count;
    long long i = indices[j];
    i = i < 0 ? i + p.extent : i;
    if (i < 0 || i >= p.extent) {
        return -1;
    }
    return (outer * p.extent + i) * p.inner + inner;
}

// fill.rs's `source_map` for one axis: the input index (from `lo`) output index `o` reads, or
// -1 for the constant.
__host__ __device__ inline long long rt_pad_axis(int mode, long long o, long long before,
                                                 long long kept) {
    long long i = o - before;
    if (i >= 0 && i < kept) {
        return i;
    }
    switch (mode) {
    case RT_PAD_CONSTANT:
        return -1;
    case RT_PAD_EDGE:
        return i < 0 ? 0 : kept - 1;
    case RT_PAD_WRAP:
        return (i % kept + kept) % kept;
    default: {
        if (kept == 1) {
            return 0;
        }
        long long period = 2 * (kept - 1);
        long long j = (i % period + period) % period;
        return j < kept ? j : period - j;
    }
    }
}

// The input element output element `e` of a Pad reads, or -1 for the fill value.
__host__ __device__ inline long long rt_pad_source(const PadParams& p, long long e) {
    long long at = 0;
    for (int k = p.rank - 1; k >= 0; --k) {
        long long o = e % p.extent[k];
        e /= p.extent[k];
        long long j = rt_pad_axis(p.mode, o, p.before[k], p.kept[k]);
        if (j < 0) {
            return -1;
        }
        at += (p.lo[k] + j) * p.in_stride[k];
    }
    return at;
}
