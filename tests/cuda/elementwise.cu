// Harness commands of the runtime's elementwise kernels: activation, epilogue and binary
// (formats in harness.cu).
#include "harness.h"

#include "activation.cuh"
#include "binary.cuh"

namespace harness {

namespace {

ActivationParams read_activation() {
    ActivationParams a;
    a.kind = read_int("kind");
    a.alpha = read_float("alpha");
    a.beta = read_float("beta");
    return a;
}

} // namespace

void activation() {
    ActivationParams a = read_activation();
    long long n = read_long("n");
    std::vector<float> x = read_floats(n, "x");
    std::vector<float> out(n);
    for (long long e = 0; e < n; ++e) {
        out[e] = rt_activate(a, x[e]);
    }
    print_floats(out);
}

void epilogue() {
    EpilogueParams p;
    p.act = read_activation();
    p.has_affine = read_int("has_affine");
    p.scale = read_float("scale");
    p.shift = read_float("shift");
    p.channels = read_int("channels");
    p.plane = read_long("plane");
    long long n = read_long("n");
    int has_bias = read_int("has_bias");
    int has_residual = read_int("has_residual");
    std::vector<float> acc = read_floats(n, "acc");
    std::vector<float> bias = read_floats(has_bias ? p.channels : 0, "bias");
    std::vector<float> residual = read_floats(has_residual ? n : 0, "residual");
    std::vector<float> out(n);
    for (long long e = 0; e < n; ++e) {
        out[e] = rt_epilogue_at(acc[e], has_bias ? bias.data() : nullptr,
                                has_residual ? residual.data() : nullptr, p, e);
    }
    print_floats(out);
}

void binary() {
    int op = read_int("op");
    int a_rank = read_int("a_rank");
    std::vector<long long> a_shape = read_longs(a_rank, "a_shape");
    int b_rank = read_int("b_rank");
    std::vector<long long> b_shape = read_longs(b_rank, "b_shape");
    BinaryParams p;
    p.op = op;
    if (!rt_binary_broadcast(a_shape.data(), a_rank, b_shape.data(), b_rank, &p)) {
        fail("broadcastable shapes");
    }
    std::vector<float> a = read_floats(product(a_shape), "a");
    std::vector<float> b = read_floats(product(b_shape), "b");
    long long n = 1;
    for (int k = 0; k < p.rank; ++k) {
        n *= p.extent[k];
    }
    std::vector<float> out(n);
    for (long long e = 0; e < n; ++e) {
        out[e] = rt_binary_at(a.data(), b.data(), p, e);
    }
    print_floats(out);
}

} // namespace harness
