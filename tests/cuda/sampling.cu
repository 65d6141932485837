// Harness commands of the kernels that resample images: preprocess, deform_sample and
// grid_sample (formats in harness.cu).
#include "harness.h"

#include "deform_sample.cuh"
#include "grid_sample.cuh"
#include "preprocess.cuh"

namespace harness {

void preprocess() {
    PreprocessParams p;
    p.src_w = read_int("src_w");
    p.src_h = read_int("src_h");
    p.dst_w = read_int("dst_w");
    p.dst_h = read_int("dst_h");
    p.out_w = read_int("out_w");
    p.out_h = read_int("out_h");
    p.bgr = read_int("bgr");
    p.pad_value = read_float("pad");
    for (float& m : p.mean) {
        m = read_float("mean");
    }
    for (float& s : p.std) {
        s = read_float("std");
    }
    std::vector<int> pixels = read_ints((long long)p.src_w * p.src_h * 3, "pixels");
    std::vector<unsigned char> rgb(pixels.begin(), pixels.end());
    std::vector<float> out;
    for (int c = 0; c < 3; ++c) {
        for (int y = 0; y < p.out_h; ++y) {
            for (int x = 0; x < p.out_w; ++x) {
                out.push_back(preprocess_at(rgb.data(), p, c, y, x));
            }
        }
    }
    print_floats(out);
}

void deform_sample() {
    int n = read_int("n");
    DeformParams p;
    p.channels = read_int("channels");
    p.height = read_int("height");
    p.width = read_int("width");
    p.kernel_h = read_int("kernel_h");
    p.kernel_w = read_int("kernel_w");
    p.stride_h = read_int("stride_h");
    p.stride_w = read_int("stride_w");
    p.pad_top = read_int("pad_top");
    p.pad_left = read_int("pad_left");
    p.dilation_h = read_int("dilation_h");
    p.dilation_w = read_int("dilation_w");
    p.offset_groups = read_int("offset_groups");
    p.out_h = read_int("out_h");
    p.out_w = read_int("out_w");
    int has_mask = read_int("has_mask");
    long long taps = (long long)n * p.offset_groups * p.kernel_h * p.kernel_w * p.out_h * p.out_w;
    std::vector<float> x = read_floats((long long)n * p.channels * p.height * p.width, "x");
    std::vector<float> offset = read_floats(2 * taps, "offset");
    std::vector<float> mask = read_floats(has_mask ? taps : 0, "mask");
    long long total = (long long)n * p.channels * p.kernel_h * p.kernel_w * p.out_h * p.out_w;
    std::vector<float> out(total);
    for (long long e = 0; e < total; ++e) {
        out[e] = deform_sample_at(x.data(), offset.data(), has_mask ? mask.data() : nullptr, p, e);
    }
    print_floats(out);
}

void grid_sample() {
    int n = read_int("n");
    GridSampleParams p;
    p.channels = read_int("channels");
    p.height = read_int("height");
    p.width = read_int("width");
    p.out_h = read_int("out_h");
    p.out_w = read_int("out_w");
    p.align_corners = read_int("align_corners");
    std::vector<float> x = read_floats((long long)n * p.channels * p.height * p.width, "x");
    std::vector<float> grid = read_floats(2LL * n * p.out_h * p.out_w, "grid");
    long long total = (long long)n * p.channels * p.out_h * p.out_w;
    std::vector<float> out(total);
    for (long long e = 0; e < total; ++e) {
        out[e] = grid_sample_at(x.data(), grid.data(), p, e);
    }
    print_floats(out);
}

} // namespace harness
