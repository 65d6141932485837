// Harness commands of the runtime's resampling kernels: resize, max_pool, average_pool and
// global_average_pool (formats in harness.cu).
#include "harness.h"

#include "pool.cuh"
#include "resize.cuh"

namespace harness {

namespace {

ResizeAxisParams read_resize_axis() {
    ResizeAxisParams a;
    a.input = read_int("input");
    a.output = read_int("output");
    a.scale = read_float("scale");
    a.roi_start = read_float("roi_start");
    a.roi_end = read_float("roi_end");
    return a;
}

PoolParams read_pool() {
    PoolParams p;
    for (PoolAxisParams* a : {&p.h, &p.w}) {
        a->input = read_int("input");
        a->output = read_int("output");
        a->kernel = read_int("kernel");
        a->stride = read_int("stride");
        a->dilation = read_int("dilation");
        a->pad_begin = read_int("pad_begin");
        a->pad_end = read_int("pad_end");
    }
    p.count_include_pad = read_int("count_include_pad");
    return p;
}

} // namespace

void resize() {
    int linear = read_int("linear");
    ResizeParams p;
    p.coordinate = read_int("coordinate");
    p.nearest = read_int("nearest");
    p.extrapolation = read_float("extrapolation");
    long long planes = read_long("planes");
    p.h = read_resize_axis();
    p.w = read_resize_axis();
    // As the launcher sets them, once per Resize.
    p.h.identity = rt_resize_axis_is_identity(p.coordinate, p.h);
    p.w.identity = rt_resize_axis_is_identity(p.coordinate, p.w);
    std::vector<float> x = read_floats(planes * p.h.input * p.w.input, "x");
    std::vector<float> out(planes * p.h.output * p.w.output);
    for (long long e = 0; e < (long long)out.size(); ++e) {
        out[e] =
            linear ? rt_resize_linear_at(x.data(), p, e) : rt_resize_nearest_at(x.data(), p, e);
    }
    print_floats(out);
}

void max_pool() {
    long long planes = read_long("planes");
    PoolParams p = read_pool();
    std::vector<float> x = read_floats(planes * p.h.input * p.w.input, "x");
    std::vector<float> out(planes * p.h.output * p.w.output);
    for (long long e = 0; e < (long long)out.size(); ++e) {
        out[e] = rt_max_pool_at(x.data(), p, e);
    }
    print_floats(out);
}

void average_pool() {
    long long planes = read_long("planes");
    PoolParams p = read_pool();
    std::vector<float> x = read_floats(planes * p.h.input * p.w.input, "x");
    std::vector<float> out(planes * p.h.output * p.w.output);
    for (long long e = 0; e < (long long)out.size(); ++e) {
        out[e] = rt_average_pool_at(x.data(), p, e);
    }
    print_floats(out);
}

void global_average_pool() {
    long long planes = read_long("planes");
    long long size = read_long("size");
    std::vector<float> x = read_floats(planes * size, "x");
    std::vector<float> out(planes);
    for (long long e = 0; e < planes; ++e) {
        out[e] = rt_global_average_pool_at(x.data(), size, e);
    }
    print_floats(out);
}

} // namespace harness
