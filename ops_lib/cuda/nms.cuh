// Greedy NMS on the GPU as a suppression bitmask plus a walk over it (torchvision's scheme):
// bit t of word w in row i says that candidate i, if kept, suppresses candidate 64*w + t.
// Candidates come in visiting order (best first, already ranked and cut to top-k), and only
// later candidates get bits, so the walk keeps a candidate exactly when no kept earlier one
// suppresses it: the selection of the greedy loops in ops_lib/src/detection.
//
// Two overlap rules, each with the arithmetic of its CPU kernel, because they keep different
// boxes:
// - Paddle (boxes.rs `iou`, multiclass_nms3, generate_proposals_v2): boxes.cuh's IoU; kept while
//   IoU <= threshold.
// - ONNX (nms.rs `iou_exceeds`, NonMaxSuppression): corners sorted (or from a centre and
//   size), touching and degenerate boxes never overlap.
// Paddle's adaptive NMS (nms_eta < 1) lowers the threshold as boxes are kept, so its overlaps
// cannot be one precomputed mask; it stays on the CPU kernel (issue 23).
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

#include "boxes.cuh"

enum NmsRule {
    NMS_PADDLE_PIXEL = 0,
    NMS_PADDLE_NORMALIZED = 1,
    NMS_ONNX_CORNERS = 2,
    NMS_ONNX_CENTER = 3,
};

__host__ __device__ inline int nms_words(int n) { return (n + 63) / 64; }

struct NmsCorners {
    float x_min, y_min, x_max, y_max;
};

// ONNX box data: [y1, x1, y2, x2] (any diagonal pair), or [x_center, y_center, w, h].
__host__ __device__ inline NmsCorners onnx_corners(const float* b, bool center_point) {
    NmsCorners c;
    if (center_point) {
        float half_w = b[2] / 2.0f;
        float half_h = b[3] / 2.0f;
        c.x_min = b[0] - half_w;
        c.x_max = b[0] + half_w;
        c.y_min = b[1] - half_h;
        c.y_max = b[1] + half_h;
    } else {
        c.x_min = b[1] >= b[3] ? b[3] : b[1];
        c.x_max = b[1] >= b[3] ? b[1] : b[3];
        c.y_min = b[0] >= b[2] ? b[2] : b[0];
        c.y_max = b[0] >= b[2] ? b[0] : b[2];
    }
    return c;
}

__host__ __device__ inline bool onnx_iou_exceeds(NmsCorners a, NmsCorners b, float threshold) {
    float ix_min = fmaxf(a.x_min, b.x_min);
    float ix_max = fminf(a.x_max, b.x_max);
    if (ix_max <= ix_min) {
        return false;
    }
    float iy_min = fmaxf(a.y_min, b.y_min);
    float iy_max = fminf(a.y_max, b.y_max);
    if (iy_max <= iy_min) {
        return false;
    }
    float inter = (ix_max - ix_min) * (iy_max - iy_min);
    if (inter <= 0.0f) {
        return false;
    }
    float area_a = (a.x_max - a.x_min) * (a.y_max - a.y_min);
    float area_b = (b.x_max - b.x_min) * (b.y_max - b.y_min);
    float uni = area_a + area_b - inter;
    if (area_a <= 0.0f || area_b <= 0.0f || uni <= 0.0f) {
        return false;
    }
    return inter / uni > threshold;
}

// Whether the kept box `kept` suppresses the later candidate `later` (4 floats each).
__host__ __device__ inline bool nms_suppresses(const float* kept, const float* later, int rule,
                                               float threshold) {
    switch (rule) {
    // Paddle keeps a candidate while IoU <= threshold, so a NaN IoU (two empty boxes)
    // suppresses.
    case NMS_PADDLE_PIXEL:
        return !(paddle_iou(later, kept, false) <= threshold);
    case NMS_PADDLE_NORMALIZED:
        return !(paddle_iou(later, kept, true) <= threshold);
    default: {
        bool center = rule == NMS_ONNX_CENTER;
        return onnx_iou_exceeds(onnx_corners(kept, center), onnx_corners(later, center),
                                threshold);
    }
    }
}

// Word `word` of mask row `row`: `boxes` holds 4 floats per box, `order` the n candidates'
// box indices in visiting order.
__host__ __device__ inline unsigned long long nms_mask_word(const float* boxes, const int* order,
                                                            int n, int row, int word, int rule,
                                                            float threshold) {
    unsigned long long bits = 0;
    const float* kept = boxes + 4 * (long long)order[row];
    for (int t = 0; t < 64; ++t) {
        int col = word * 64 + t;
        if (col > row && col < n &&
            nms_suppresses(kept, boxes + 4 * (long long)order[col], rule, threshold)) {
            bits |= 1ull << t;
        }
    }
    return bits;
}

__host__ __device__ inline bool nms_is_removed(const unsigned long long* removed, int i) {
    return (removed[i / 64] >> (i % 64)) & 1ull;
}

// ORs mask row `row` into `removed`, words first_word, first_word + step, ...: one thread does
// all of them on the host, the threads of a block share them on the GPU. Words before the
// row's own hold no bits (only later candidates do), so they are skipped.
__host__ __device__ inline void nms_absorb_row(unsigned long long* removed,
                                               const unsigned long long* mask, int n, int row,
                                               int first_word, int step) {
    int words = nms_words(n);
    const unsigned long long* bits = mask + (long long)row * words;
    for (int w = row / 64 + first_word; w < words; w += step) {
        removed[w] |= bits[w];
    }
}

// The walk on one thread: keeps at most `limit` candidates, writing their positions in
// visiting order to `keep`; `removed` (nms_words(n) words) must start zeroed.
__host__ __device__ inline int nms_reduce(const unsigned long long* mask, int n, int limit,
                                          unsigned long long* removed, int* keep) {
    int kept = 0;
    for (int i = 0; i < n && kept < limit; ++i) {
        if (!nms_is_removed(removed, i)) {
            keep[kept++] = i;
            nms_absorb_row(removed, mask, n, i, 0, 1);
        }
    }
    return kept;
}
