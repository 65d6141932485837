// The host harness's shared parts: reading a command's numbers from standard input, printing
// its answer line, and the commands themselves, one function each, defined by family in
// detection.cu, nms.cu and sampling.cu and dispatched by name in harness.cu.
#pragma once

#include <vector>

namespace harness {

int read_int(const char* what);
float read_float(const char* what);
std::vector<int> read_ints(long long n, const char* what);
std::vector<float> read_floats(long long n, const char* what);
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

} // namespace harness
