// Host harness of the ops_lib CUDA kernels (tests/tests/cuda_kernels.rs): runs the
// __host__ __device__ functions of ops_lib/cuda/*.cuh on the CPU, exactly as the kernels call
// them, so their arithmetic is checked against ops_lib's Rust kernels on a machine without a
// GPU. Reads commands from standard input, whitespace-separated, and answers each with one line
// of numbers (floats printed with 9 significant digits, which round-trip an f32):
//
//   preprocess SRC_W SRC_H DST_W DST_H OUT_W OUT_H BGR PAD MEAN*3 STD*3 PIXELS(SRC_W*SRC_H*3)
//     -> the [3, OUT_H, OUT_W] tensor
//   yolo_box N H W ANCHORS CLASSES IOU_AWARE FACTOR CONF DOWNSAMPLE CLIP SCALE_XY
//            ANCHOR_WH(2*ANCHORS) IMG_SIZE(2*N) X(N*C*H*W)
//     -> the boxes [N, ANCHORS*H*W, 4], then the scores [N, ANCHORS*H*W, CLASSES]
//   nms RULE THRESHOLD SCORE_THRESHOLD TOP_K LIMIT M BOXES(M*4) SCORES(M)
//     -> the kept boxes' indices in visiting order (TOP_K and LIMIT: -1 for all)
//   roi_align N C H W OUT_H OUT_W SAMPLING_RATIO SPATIAL_SCALE HALF_PIXEL MAX R
//             X(N*C*H*W) ROIS(R*4) BATCH(R)
//     -> the [R, C, OUT_H, OUT_W] values
//
// The ranking before NMS (score threshold, stable sort by descending score, top-k) is the
// harness's own: on the GPU it is a sort, not one of these kernels.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "nms.cuh"
#include "preprocess.cuh"
#include "roi_align.cuh"
#include "yolo_box.cuh"

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "harness: cannot read %s\n", what);
    std::exit(1);
}

int read_int(const char* what) {
    int v;
    if (std::scanf("%d", &v) != 1) {
        fail(what);
    }
    return v;
}

float read_float(const char* what) {
    float v;
    if (std::scanf("%f", &v) != 1) {
        fail(what);
    }
    return v;
}

std::vector<int> read_ints(long long n, const char* what) {
    std::vector<int> v(n);
    for (int& e : v) {
        e = read_int(what);
    }
    return v;
}

std::vector<float> read_floats(long long n, const char* what) {
    std::vector<float> v(n);
    for (float& e : v) {
        e = read_float(what);
    }
    return v;
}

void print_floats(const std::vector<float>& v) {
    for (size_t i = 0; i < v.size(); ++i) {
        std::printf(i ? " %.9g" : "%.9g", v[i]);
    }
    std::printf("\n");
}

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

void yolo_box() {
    YoloBoxParams p;
    p.n = read_int("n");
    p.h = read_int("h");
    p.w = read_int("w");
    p.anchors = read_int("anchors");
    p.classes = read_int("classes");
    p.iou_aware = read_int("iou_aware");
    p.iou_aware_factor = read_float("iou_aware_factor");
    p.conf_thresh = read_float("conf_thresh");
    p.downsample_ratio = read_int("downsample_ratio");
    p.clip_bbox = read_int("clip_bbox");
    p.scale_x_y = read_float("scale_x_y");
    std::vector<int> anchor_wh = read_ints(2 * p.anchors, "anchor sizes");
    std::vector<int> img_size = read_ints(2 * p.n, "image sizes");
    long long channels = p.anchors * (5 + p.classes + (p.iou_aware ? 1 : 0));
    std::vector<float> x = read_floats(p.n * channels * p.h * p.w, "x");
    long long rows = (long long)p.n * p.anchors * p.h * p.w;
    std::vector<float> boxes(rows * 4), scores(rows * p.classes);
    for (long long i = 0; i < rows; ++i) {
        yolo_box_decode(x.data(), img_size.data(), anchor_wh.data(), p, i, boxes.data(),
                        scores.data());
    }
    boxes.insert(boxes.end(), scores.begin(), scores.end());
    print_floats(boxes);
}

void nms() {
    int rule = read_int("rule");
    float threshold = read_float("threshold");
    float score_threshold = read_float("score threshold");
    int top_k = read_int("top_k");
    int limit = read_int("limit");
    int m = read_int("m");
    std::vector<float> boxes = read_floats(4LL * m, "boxes");
    std::vector<float> scores = read_floats(m, "scores");
    std::vector<int> order;
    for (int i = 0; i < m; ++i) {
        if (scores[i] > score_threshold) {
            order.push_back(i);
        }
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return scores[a] > scores[b]; });
    if (top_k >= 0 && (int)order.size() > top_k) {
        order.resize(top_k);
    }
    int n = (int)order.size();
    int words = nms_words(n);
    std::vector<unsigned long long> mask((size_t)n * words), removed(words, 0);
    for (int row = 0; row < n; ++row) {
        for (int w = 0; w < words; ++w) {
            mask[(size_t)row * words + w] =
                nms_mask_word(boxes.data(), order.data(), n, row, w, rule, threshold);
        }
    }
    std::vector<int> keep(n);
    int kept = nms_reduce(mask.data(), n, limit < 0 ? n : limit, removed.data(), keep.data());
    for (int i = 0; i < kept; ++i) {
        std::printf(i ? " %d" : "%d", order[keep[i]]);
    }
    std::printf("\n");
}

void roi_align() {
    int n = read_int("n");
    RoiAlignParams p;
    p.channels = read_int("channels");
    p.height = read_int("height");
    p.width = read_int("width");
    p.output_height = read_int("output_height");
    p.output_width = read_int("output_width");
    p.sampling_ratio = read_int("sampling_ratio");
    p.spatial_scale = read_float("spatial_scale");
    p.half_pixel = read_int("half_pixel");
    p.max_mode = read_int("max");
    int regions = read_int("regions");
    long long plane = (long long)p.height * p.width;
    std::vector<float> x = read_floats(n * p.channels * plane, "x");
    std::vector<float> rois = read_floats(4LL * regions, "rois");
    std::vector<int> batch = read_ints(regions, "batch");
    std::vector<float> out;
    for (int r = 0; r < regions; ++r) {
        for (int c = 0; c < p.channels; ++c) {
            const float* channel = x.data() + ((long long)batch[r] * p.channels + c) * plane;
            for (int ph = 0; ph < p.output_height; ++ph) {
                for (int pw = 0; pw < p.output_width; ++pw) {
                    out.push_back(roi_align_bin(channel, rois.data() + 4 * r, p, ph, pw));
                }
            }
        }
    }
    print_floats(out);
}

} // namespace

int main() {
    char command[32];
    while (std::scanf("%31s", command) == 1) {
        if (!std::strcmp(command, "preprocess")) {
            preprocess();
        } else if (!std::strcmp(command, "yolo_box")) {
            yolo_box();
        } else if (!std::strcmp(command, "nms")) {
            nms();
        } else if (!std::strcmp(command, "roi_align")) {
            roi_align();
        } else {
            std::fprintf(stderr, "harness: unknown command '%s'\n", command);
            return 1;
        }
    }
    return 0;
}
