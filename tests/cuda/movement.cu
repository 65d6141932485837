// Harness commands of the runtime's element moves: transpose, slice and concat (formats in
// harness.cu).
#include "harness.h"

#include "movement.cuh"

namespace harness {

namespace {

void strided_copy(const StridedParams& p, const std::vector<float>& x) {
    long long n = 1;
    for (int k = 0; k < p.rank; ++k) {
        n *= p.extent[k];
    }
    std::vector<float> out(n);
    for (long long e = 0; e < n; ++e) {
        out[e] = x[rt_strided_source(p, e)];
    }
    print_floats(out);
}

} // namespace

void transpose() {
    int rank = read_int("rank");
    std::vector<long long> shape = read_longs(rank, "shape");
    std::vector<int> perm = read_ints(rank, "perm");
    StridedParams p;
    if (!rt_transpose_params(shape.data(), perm.data(), rank, &p)) {
        fail("a rank within RT_MAX_RANK");
    }
    strided_copy(p, read_floats(product(shape), "x"));
}

void slice() {
    int rank = read_int("rank");
    std::vector<long long> shape = read_longs(rank, "shape");
    std::vector<long long> starts = read_longs(rank, "starts");
    std::vector<long long> ends = read_longs(rank, "ends");
    std::vector<long long> steps = read_longs(rank, "steps");
    StridedParams p;
    if (!rt_slice_params(shape.data(), rank, starts.data(), ends.data(), steps.data(), &p)) {
        fail("a rank within RT_MAX_RANK");
    }
    strided_copy(p, read_floats(product(shape), "x"));
}

void concat() {
    int axis = read_int("axis");
    int rank = read_int("rank");
    int parts = read_int("parts");
    std::vector<std::vector<long long>> shapes;
    for (int i = 0; i < parts; ++i) {
        shapes.push_back(read_longs(rank, "shape"));
    }
    // Per outer index, each part's `chunk` and the output's `row`, as the launcher makes them.
    long long row = 0;
    std::vector<long long> chunks;
    for (const std::vector<long long>& s : shapes) {
        std::vector<long long> tail(s.begin() + axis, s.end());
        chunks.push_back(product(tail));
        row += chunks.back();
    }
    std::vector<long long> outer_axes(shapes[0].begin(), shapes[0].begin() + axis);
    std::vector<float> out(product(outer_axes) * row);
    ConcatParams p;
    p.row = row;
    p.offset = 0;
    for (int i = 0; i < parts; ++i) {
        p.chunk = chunks[i];
        std::vector<float> x = read_floats(product(shapes[i]), "x");
        for (long long e = 0; e < (long long)x.size(); ++e) {
            out[rt_concat_destination(p, e)] = x[e];
        }
        p.offset += chunks[i];
    }
    print_floats(out);
}

} // namespace harness
