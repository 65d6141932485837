// The scalar math of the runtime's GPU kernels: exp, erf and tanh in f32 with the polynomials of
// runtime/src/cpu/math.rs (the CPU's activations, softmax and fused epilogues), and the
// f64 sum of runtime/src/cpu/real.rs (softmax, layer norm, global average pooling), so that each
// kernel computes the CPU's bits: every step is the same f32 or f64 operation in the same order,
// and math.rs's `mul_add`s are fmaf (one rounding on both sides). Constants are written as the
// shortest decimals of math.rs's f32s (1.442695f is log2(e), 1.1283792f is 2/√π).
//
// That holds only if the compiler keeps each multiply and add as written: compile with
// `--fmad=false` (NVRTC and nvcc alike; the default contracts `a * b + c` into one FMA) and
// without `--use_fast_math` (the defaults keep IEEE division, square root and denormals).
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

#define RT_MAX_RANK 6

__host__ __device__ inline unsigned int rt_bits(float x) {
    union {
        float f;
        unsigned int u;
    } v;
    v.f = x;
    return v.u;
}

__host__ __device__ inline float rt_from_bits(unsigned int u) {
    union {
        float f;
        unsigned int u;
    } v;
    v.u = u;
    return v.f;
}

// Rust's `f32::clamp`: NaN passes through.
__host__ __device__ inline float rt_clamp(float x, float lo, float hi) {
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

// `c[0]·x^(n-1) + ... + c[n-1]`, highest power first, each step one fused multiply-add.
__host__ __device__ inline float rt_horner(const float* c, int n, float x) {
    float acc = 0.0f;
    for (int i = 0; i < n; ++i) {
        acc = fmaf(acc, x, c[i]);
    }
    return acc;
}

// e^x as math.rs's `exp_f32`: x = n·ln2 + r, e^r by the Cephes polynomial, 2^n built in the
// exponent bits; the input clamped so that it saturates near 1e-38 and 2e38.
__host__ __device__ inline float rt_exp(float x) {
    const float ln2_hi = 0.6933594f;
    const float ln2_lo = -2.1219444e-4f;
    const float round = 12582912.0f;
    const float p[6] = {1.9875691e-4f, 1.3981999e-3f, 8.333452e-3f,
                        4.1665796e-2f, 1.6666665e-1f, 0.5f};
    x = rt_clamp(x, -87.3f, 88.3f);
    float shifted = fmaf(x, 1.442695f, round);
    float n = shifted - round;
    float r = fmaf(-n, ln2_lo, fmaf(-n, ln2_hi, x));
    float poly = rt_horner(p, 6, r);
    unsigned int biased = rt_bits(shifted) - rt_bits(round) + 127u;
    float scale = rt_from_bits(biased << 23);
    return fmaf(poly * r, r, r + 1.0f) * scale;
}

// erf as math.rs's `erf_f32`: below 1, `x·P(x²)`; from 1 to 4, `1 - e^(R(x) - x²)` with R a
// polynomial in x mapped to [-1, 1] and `R(x) - x²` one fused multiply-add.
__host__ __device__ inline float rt_erf(float x) {
    const float small_c[7] = {7.847259e-5f,  -8.00819e-4f,   5.188099e-3f, -2.6853692e-2f,
                              1.1283582e-1f, -3.7612626e-1f, 1.1283792f};
    const float log_erfc_c[7] = {2.1138215e-3f,  -1.1845403e-3f, 1.2442652e-2f, -3.6172394e-2f,
                                 1.2625793e-1f, -5.2904093e-1f, -1.5568178f};
    float a = fabsf(x);
    float small = a * rt_horner(small_c, 7, a * a);
    float b = rt_clamp(a, 1.0f, 4.0f);
    float t = (b - 2.5f) * (1.0f / 1.5f);
    float large = 1.0f - rt_exp(fmaf(-b, b, rt_horner(log_erfc_c, 7, t)));
    return copysignf(a < 1.0f ? small : large, x);
}

// tanh as math.rs's `tanh_f32`: below 0.625, `x + x³·P(x²)`; above, `1 - 2/(e^(2x) + 1)`.
__host__ __device__ inline float rt_tanh(float x) {
    const float small_c[6] = {2.2897369e-3f,  -8.340986e-3f, 2.1767898e-2f,
                              -5.3959116e-2f, 1.3333303e-1f, -3.3333334e-1f};
    float a = fabsf(x);
    float square = a * a;
    float small = a + a * square * rt_horner(small_c, 6, square);
    float large = 1.0f - 2.0f / (rt_exp(2.0f * a) + 1.0f);
    return copysignf(a < 0.625f ? small : large, x);
}

// real.rs's `sum_f64` of `value(0) .. value(n - 1)`: 32 partial sums over the whole groups of
// 32, eight over the whole groups of eight after them, then the rest; each of the eight takes
// `(w[l] + w[l + 8]) + (w[l + 16] + w[l + 24])` of the 32, and they are added in lane order.
template <typename Value> __host__ __device__ inline double rt_sum_f64(long long n, Value value) {
    double wide[32];
    for (int l = 0; l < 32; ++l) {
        wide[l] = 0.0;
    }
    long long whole = n / 32 * 32;
    for (long long i = 0; i < whole; i += 32) {
        for (int l = 0; l < 32; ++l) {
            wide[l] += value(i + l);
        }
    }
    double lanes[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    long long eights = whole + (n - whole) / 8 * 8;
    for (long long i = whole; i < eights; i += 8) {
        for (int l = 0; l < 8; ++l) {
            lanes[l] += value(i + l);
        }
    }
    double rest = 0.0;
    for (long long i = eights; i < n; ++i) {
        rest += value(i);
    }
    double sum = 0.0;
    for (int l = 0; l < 8; ++l) {
        lanes[l] += (wide[l] + wide[l + 8]) + (wide[l + 16] + wide[l + 24]);
        sum += lanes[l];
    }
    return sum + rest;
}
