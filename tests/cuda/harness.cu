// Host harness of the CUDA kernels (tests/tests/cuda_kernels.rs): runs the __host__ __device__
// functions of ops_lib/cuda/*.cuh and runtime/cuda/*.cuh on the CPU, exactly as the kernels call
// them, so their arithmetic is checked against ops_lib's and the CPU runtime's Rust kernels on a
// machine without a GPU. Reads commands from standard input, whitespace-separated, and answers
// each with one line of numbers (floats printed with 9 significant digits, which round-trip an
// f32), except generate_proposals, which answers one line per image:
//
//   preprocess SRC_W SRC_H DST_W DST_H OUT_W OUT_H BGR PAD MEAN*3 STD*3 PIXELS(SRC_W*SRC_H*3)
//     -> the [3, OUT_H, OUT_W] tensor
//   deform_sample N C H W KH KW STRIDE_H STRIDE_W PAD_TOP PAD_LEFT DILATION_H DILATION_W
//                 OFFSET_GROUPS OUT_H OUT_W HAS_MASK X(N*C*H*W)
//                 OFFSET(N*OFFSET_GROUPS*KH*KW*2*OUT_H*OUT_W)
//                 [MASK(N*OFFSET_GROUPS*KH*KW*OUT_H*OUT_W)]
//     -> the [N, C*KH*KW, OUT_H, OUT_W] deformable im2col
//   grid_sample N C H W OUT_H OUT_W ALIGN_CORNERS X(N*C*H*W) GRID(N*OUT_H*OUT_W*2)
//     -> the [N, C, OUT_H, OUT_W] values
//   yolo_box N H W ANCHORS CLASSES IOU_AWARE FACTOR CONF DOWNSAMPLE CLIP SCALE_XY
//            ANCHOR_WH(2*ANCHORS) IMG_SIZE(2*N) X(N*C*H*W)
//     -> the boxes [N, ANCHORS*H*W, 4], then the scores [N, ANCHORS*H*W, CLASSES]
//   roi_align N C H W OUT_H OUT_W SAMPLING_RATIO SPATIAL_SCALE HALF_PIXEL MAX R
//             X(N*C*H*W) ROIS(R*4) BATCH(R)
//     -> the [R, C, OUT_H, OUT_W] values
//   distribute_fpn MIN_LEVEL MAX_LEVEL REFER_LEVEL REFER_SCALE PIXEL_OFFSET R ROIS(R*4)
//     -> each RoI's level, as an offset from MIN_LEVEL
//   nms RULE THRESHOLD SCORE_THRESHOLD TOP_K LIMIT M BOXES(M*4) SCORES(M)
//     -> the kept boxes' indices in visiting order (TOP_K and LIMIT: -1 for all)
//   matrix_nms NORMALIZED USE_GAUSSIAN SIGMA SCORE_THRESHOLD POST_THRESHOLD TOP_K M
//              BOXES(M*4) SCORES(M)
//     -> (box index, decayed score) of each candidate above POST_THRESHOLD, in ranked order
//   generate_proposals N A H W PRE_NMS_TOP_N POST_NMS_TOP_N NMS_THRESH MIN_SIZE PIXEL_OFFSET
//                      SCORES(N*A*H*W) DELTAS(N*4A*H*W) IM_SHAPE(2*N) ANCHORS(H*W*A*4)
//                      VARIANCES(H*W*A*4)
//     -> per image, a line of (x1, y1, x2, y2, score) per proposal
//
// The runtime's kernels (activation.cuh's codes, RtBinaryOp, RtResizeCoordinate, ...; shapes
// and lists as 64-bit integers):
//   activation KIND ALPHA BETA N X(N)
//     -> the N activated values
//   epilogue KIND ALPHA BETA HAS_AFFINE SCALE SHIFT CHANNELS PLANE N HAS_BIAS HAS_RESIDUAL
//            ACC(N) [BIAS(CHANNELS)] [RESIDUAL(N)]
//     -> the N finished values of an [N / (CHANNELS*PLANE), CHANNELS, PLANE] output
//   binary OP A_RANK A_SHAPE(A_RANK) B_RANK B_SHAPE(B_RANK) A B
//     -> the broadcast result
//   resize LINEAR COORDINATE NEAREST EXTRAPOLATION PLANES
//          H_INPUT H_OUTPUT H_SCALE H_ROI_START H_ROI_END (the same for W) X(PLANES*H*W)
//     -> the [PLANES, H_OUTPUT, W_OUTPUT] values
//   max_pool | average_pool PLANES
//          H_INPUT H_OUTPUT H_KERNEL H_STRIDE H_DILATION H_PAD_BEGIN H_PAD_END (the same for W)
//          COUNT_INCLUDE_PAD X(PLANES*H*W)
//     -> the [PLANES, H_OUTPUT, W_OUTPUT] values
//   global_average_pool PLANES SIZE X(PLANES*SIZE)
//     -> one value per plane
//   transpose RANK SHAPE(RANK) PERM(RANK) X
//   slice RANK SHAPE(RANK) STARTS(RANK) ENDS(RANK) STEPS(RANK) X
//     -> the moved values
//   concat AXIS RANK PARTS SHAPES(PARTS*RANK) X(each part in turn)
//     -> the concatenation
//   softmax OUTER N INNER X(OUTER*N*INNER)
//     -> the softmax along the middle axis
//   layer_norm ROWS N HAS_BIAS EPSILON X(ROWS*N) SCALE(N) [BIAS(N)]
//     -> the rows normalized
//
// The sorts and compactions around the kernels (ranking candidates before NMS, keeping the
// boxes a size test passed) are the harness's own: on the GPU they are sorts and scans, not
// these kernels.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "harness.h"

namespace harness {

void fail(const char* what) {
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

long long read_long(const char* what) {
    long long v;
    if (std::scanf("%lld", &v) != 1) {
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

std::vector<long long> read_longs(long long n, const char* what) {
    std::vector<long long> v(n);
    for (long long& e : v) {
        e = read_long(what);
    }
    return v;
}

long long product(const std::vector<long long>& shape) {
    long long n = 1;
    for (long long d : shape) {
        n *= d;
    }
    return n;
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

void print_ints(const std::vector<int>& v) {
    for (size_t i = 0; i < v.size(); ++i) {
        std::printf(i ? " %d" : "%d", v[i]);
    }
    std::printf("\n");
}

} // namespace harness

int main() {
    struct Command {
        const char* name;
        void (*run)();
    };
    const Command commands[] = {
        {"preprocess", harness::preprocess},
        {"deform_sample", harness::deform_sample},
        {"grid_sample", harness::grid_sample},
        {"yolo_box", harness::yolo_box},
        {"roi_align", harness::roi_align},
        {"distribute_fpn", harness::distribute_fpn},
        {"nms", harness::nms},
        {"matrix_nms", harness::matrix_nms},
        {"generate_proposals", harness::generate_proposals},
        {"activation", harness::activation},
        {"epilogue", harness::epilogue},
        {"binary", harness::binary},
        {"resize", harness::resize},
        {"max_pool", harness::max_pool},
        {"average_pool", harness::average_pool},
        {"global_average_pool", harness::global_average_pool},
        {"transpose", harness::transpose},
        {"slice", harness::slice},
        {"concat", harness::concat},
        {"softmax", harness::softmax},
        {"layer_norm", harness::layer_norm},
    };
    char name[32];
    while (std::scanf("%31s", name) == 1) {
        const Command* found = nullptr;
        for (const Command& c : commands) {
            if (!std::strcmp(name, c.name)) {
                found = &c;
            }
        }
        if (!found) {
            std::fprintf(stderr, "harness: unknown command '%s'\n", name);
            return 1;
        }
        found->run();
    }
    return 0;
}
