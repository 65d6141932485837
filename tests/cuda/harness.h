// The host harness's shared parts: reading a command's numbers from standard input, printing
// its answer line, and the commands themselves, one function each, defined by family in
// detection.cu, nms.cu and sampling.cu (ops_lib's kernels) and elementwise.cu, resampling.cu,
// movement.cu and normalization.cu (the runtime's), and dispatched by name in harness.cu.
#pragma once

#include <vector>

namespace harness {

// Reports input the harness cannot take (naming what it expected) and exits.
[[noreturn]] void fail(const char* what);
int read_int(const char* what);
long long read_long(const char* what);
float read_float(const char* what);
std::vector<int> read_ints(long long n, const char* what);
std::vector<long long> read_longs(long long n, const char* what);
std::vector<float> read_floats(long long n, const char* what);
// The element count of a shape.
long long product(const std::vector<long long>& shape);
// One answer line: floats with 9 significant digits, which round-trip an f32.
void print_floats(const std::vector<float>& v);
void print_ints(const std::vector<int>& v);

void preprocess();
void deform_sample();
void grid_sample();
void yolo_box();
void roi_align();
void distribute_fpn();
void nms();
void matrix_nms();
void generate_proposals();

void activation();
void epilogue();
void binary();
void resize();
void max_pool();
void average_pool();
void global_average_pool();
void transpose();
void slice();
void concat();
void softmax();
void layer_norm();

} // namespace harness
