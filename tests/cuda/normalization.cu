// Harness commands of the runtime's normalizing kernels: softmax and layer_norm (formats in
// harness.cu).
#include "harness.h"

#include "layer_norm.cuh"
#include "softmax.cuh"

namespace harness {

void softmax() {
    long long outer = read_long("outer");
    long long n = read_long("n");
    long long inner = read_long("inner");
    std::vector<float> x = read_floats(outer * n * inner, "x");
    std::vector<float> out(x.size());
    for (long long o = 0; o < outer; ++o) {
        for (long long i = 0; i < inner; ++i) {
            long long at = o * n * inner + i;
            if (inner == 1) {
                rt_softmax_row(x.data() + at, out.data() + at, n);
            } else {
                rt_softmax_column(x.data() + at, out.data() + at, n, inner);
            }
        }
    }
    print_floats(out);
}

void layer_norm() {
    long long rows = read_long("rows");
    long long n = read_long("n");
    int has_bias = read_int("has_bias");
    float epsilon = read_float("epsilon");
    std::vector<float> x = read_floats(rows * n, "x");
    std::vector<float> scale = read_floats(n, "scale");
    std::vector<float> bias = read_floats(has_bias ? n : 0, "bias");
    std::vector<float> out(x.size());
    for (long long r = 0; r < rows; ++r) {
        rt_layer_norm_row(x.data() + r * n, scale.data(), has_bias ? bias.data() : nullptr, epsilon,
                          out.data() + r * n, n);
    }
    print_floats(out);
}

} // namespace harness
