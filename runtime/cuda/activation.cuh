// The activations on the GPU, standalone and in a convolution's fused epilogue, one element per
// call, with the arithmetic of runtime/src/cpu/epilogue.rs and activation.rs (f32):
//   Relu        x < 0 ? 0 : x                      LeakyRelu   x < 0 ? alpha·x : x
//   Sigmoid     1 / (1 + exp(-x))                  SiLU        x · sigmoid(x)
//   HardSwish   x · clamp01(x · (1/6) + 0.5)       HardSigmoid clamp01(alpha·x + beta)
//   Gelu        0.5 · x · (1 + erf(x · 1/√2))      Tanh        tanh(x)
//   GeluTanh    0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))
//   Clip        min(max(x, min), max), f32's lowest / largest finite value meaning no bound
//   Mish        x · tanh(softplus(x)), softplus as below
// with math.cuh's exp, erf and tanh (1/√2 and √(2/π) as math.rs's f32s), NaN passing through
// each as it does on the CPU. The epilogue is `affine(act(acc + bias[channel] + residual))`, the
// sums in that order (those of the unfused Add nodes), and the affine `y · scale + shift` only
// with an activation, as the CPU's `finish` applies it.
//
// The other float functions of one tensor, `rt_unary` (Neg, Abs, Sqrt, Reciprocal, Floor, Ceil,
// Round, Sign, Erf), are each one IEEE operation or an exact one, or math.cuh's erf: the CPU's
// bits again (Round is rintf, ties to even as Rust's `round_ties_even`).
//
// Unlike everything else here, Exp, Log, Sin, Cos, Softplus and Mish are not the CPU's bits on a
// GPU. The CPU computes them with libm (Rust's f32 `exp`, `ln`, `sin`, `cos`, `ln_1p`), and here
// they are CUDA's expf, logf, sinf, cosf and log1pf, within 1 or 2 ulp of the correctly rounded
// result but not libm's choice of it: a GPU's values differ from the CPU's by a few ulp, well
// within the backend's 1e-4 relative L2 check. The host emulator compiles these sources against
// the host's libm, so its values are the CPU's bits. Softplus is the CPU's
// `max(x, 0) + log1p(exp(-|x|))` (activation.rs and epilogue.rs; no threshold), and Mish its
// `x · tanh(softplus(x))` with math.cuh's tanh, so only the exp and log1p inside differ.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

#include "math.cuh"

enum RtActivation {
    RT_IDENTITY = 0,
    RT_RELU = 1,
    RT_LEAKY_RELU = 2,
    RT_SIGMOID = 3,
    RT_SILU = 4,
    RT_HARD_SWISH = 5,
    RT_HARD_SIGMOID = 6,
    RT_GELU = 7,
    RT_TANH = 8,
    RT_CLIP = 9,
    RT_GELU_TANH = 10,
    RT_MISH = 11,
};

struct ActivationParams {
    int kind;
    // LeakyRelu: alpha. HardSigmoid: alpha, beta. Clip: min, max (the IR's f32::MIN and
    // f32::MAX for an absent bound).
    float alpha, beta;
};

struct EpilogueParams {
    ActivationParams act;
    int has_affine;
    float scale, shift;
    // The output [N, channels, plane]: element e is in channel e / plane % channels.
    int channels;
    // Where the compiler would pad: named, so that the Rust mirror's every byte is a field.
    int pad;
    long long plane;
};

// Clamps to [0, 1], NaN passing through.
__host__ __device__ inline float rt_clamp01(float x) { return rt_clamp(x, 0.0f, 1.0f); }

__host__ __device__ inline float rt_sigmoid(float x) { return 1.0f / (1.0f + rt_exp(-x)); }

// ln(1 + e^x) as `max(x, 0) + ln(1 + e^-|x|)`, which neither overflows nor loses small values;
// CUDA's expf and log1pf on a GPU, libm's in the emulator (see the header).
__host__ __device__ inline float rt_softplus(float x) {
    float positive = x > 0.0f ? x : 0.0f;
    return positive + log1pf(expf(-fabsf(x)));
}

__host__ __device__ inline float rt_activate(const ActivationParams& a, float x) {
    const float lowest = -3.40282347e+38f;
    const float largest = 3.40282347e+38f;
    switch (a.kind) {
    case RT_RELU:
        return x < 0.0f ? 0.0f : x;
    case RT_LEAKY_RELU:
        return x < 0.0f ? a.alpha * x : x;
    case RT_SIGMOID:
        return rt_sigmoid(x);
    case RT_SILU:
        return x * rt_sigmoid(x);
    case RT_HARD_SWISH:
        return x * rt_clamp01(x * (1.0f / 6.0f) + 0.5f);
    case RT_HARD_SIGMOID:
        return rt_clamp01(a.alpha * x + a.beta);
    case RT_GELU:
        return 0.5f * x * (1.0f + rt_erf(x * 0.70710677f));
    case RT_TANH:
        return rt_tanh(x);
    case RT_GELU_TANH: {
        // std's FRAC_2_SQRT_PI * FRAC_1_SQRT_2, rounded to f32 as the CPU's constant is.
        const float sqrt_2_over_pi = 1.1283792f * 0.70710677f;
        return 0.5f * x * (1.0f + rt_tanh(sqrt_2_over_pi * (x + 0.044715f * x * x * x)));
    }
    case RT_MISH:
        return x * rt_tanh(rt_softplus(x));
    case RT_CLIP:
        x = a.alpha != lowest && x < a.alpha ? a.alpha : x;
        return a.beta != largest && x > a.beta ? a.beta : x;
    default:
        return x;
    }
}

// Element `e` of a convolution's output, from its accumulated value `acc`; `bias` [channels]
// and `residual` (laid out like the output) may be null.
__host__ __device__ inline float rt_epilogue_at(float acc, const float* bias, const float* residual,
                                                const EpilogueParams& p, long long e) {
    float x = acc;
    if (bias) {
        x = x + bias[e / p.plane % p.channels];
    }
    if (residual) {
        x = x + residual[e];
    }
    if (p.act.kind == RT_IDENTITY) {
        return x;
    }
    float y = rt_activate(p.act, x);
    return p.has_affine ? y * p.scale + p.shift : y;
}

enum RtUnaryOp {
    RT_UNARY_NEG = 0,
    RT_UNARY_ABS = 1,
    RT_UNARY_SQRT = 2,
    RT_UNARY_RECIPROCAL = 3,
    RT_UNARY_FLOOR = 4,
    RT_UNARY_CEIL = 5,
    RT_UNARY_ROUND = 6,
    RT_UNARY_SIGN = 7,
    RT_UNARY_ERF = 8,
    RT_UNARY_EXP = 9,
    RT_UNARY_LOG = 10,
    RT_UNARY_SIN = 11,
    RT_UNARY_COS = 12,
    RT_UNARY_SOFTPLUS = 13,
};

__host__ __device__ inline float rt_unary(int op, float x) {
    switch (op) {
    case RT_UNARY_NEG:
        return -x;
    case RT_UNARY_ABS:
        return fabsf(x);
    case RT_UNARY_SQRT:
        return sqrtf(x);
    case RT_UNARY_RECIPROCAL:
        return 1.0f / x;
    case RT_UNARY_FLOOR:
        return floorf(x);
    case RT_UNARY_CEIL:
        return ceilf(x);
    case RT_UNARY_ROUND:
        return rintf(x);
    case RT_UNARY_SIGN:
        // Zeros keep their sign and NaN passes, as the CPU's `sign`.
        return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x);
    case RT_UNARY_EXP:
        return expf(x);
    case RT_UNARY_LOG:
        return logf(x);
    case RT_UNARY_SIN:
        return sinf(x);
    case RT_UNARY_COS:
        return cosf(x);
    case RT_UNARY_SOFTPLUS:
        return rt_softplus(x);
    default:
        return rt_erf(x);
    }
}
