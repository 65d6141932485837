// Matrix NMS (SOLOv2) on the GPU: the decay of one class's candidates, with the arithmetic of
// ops_lib/src/detection/matrix_nms.rs (Paddle 2.6's kernel). Candidates come ranked (score
// above score_threshold, descending, ties in index order, cut to nms_top_k) as `order`, their
// box indices. Candidate i's decayed score is its score times the smallest decay over the
// better candidates j < i:
//   gaussian: exp((max_iou[j]^2 - iou(i, j)^2) * sigma)   (f32)
//   linear:   (1 - iou(i, j)) / (1 - max_iou[j])           (double, as Paddle computes it)
// where max_iou[j] is candidate j's largest IoU with a candidate better than itself. Two
// passes, each one thread per candidate: the largest IoUs, then the decayed scores. The IoUs
// are recomputed in the second pass rather than stored: k^2/2 floats of memory traffic would
// cost more than the few flops of boxes.cuh's IoU.
//
// The ranking before, and after it the post_threshold cut, the merge of the classes and the
// keep_top_k sort, stay on the host as sorts and compactions (issue 23). The CPU kernel's early
// skip of candidates below the keep_top_k-th best decayed score is exact, so scoring every
// candidate here selects the same detections.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

#include "boxes.cuh"

struct MatrixNmsParams {
    int normalized;
    int use_gaussian;
    float gaussian_sigma;
};

// The largest IoU of candidate i with a better one (0 for the best): `boxes` holds 4 floats
// per box, `order` the candidates' box indices in ranked order.
__host__ __device__ inline float matrix_nms_max_iou(const float* boxes, const int* order, int i,
                                                    bool normalized) {
    const float* b = boxes + 4 * (long long)order[i];
    float max = 0.0f;
    for (int j = 0; j < i; ++j) {
        max = fmaxf(max, paddle_iou(b, boxes + 4 * (long long)order[j], normalized));
    }
    return max;
}

__host__ __device__ inline float matrix_nms_decay(const MatrixNmsParams& p, float iou,
                                                  float max_iou) {
    if (p.use_gaussian) {
        return expf((max_iou * max_iou - iou * iou) * p.gaussian_sigma);
    }
    return (float)((1.0 - (double)iou) / (1.0 - (double)max_iou));
}

// Candidate i's decayed score; `score` is its score, `max_iou` holds every candidate's
// matrix_nms_max_iou.
__host__ __device__ inline float matrix_nms_decayed(const float* boxes, const int* order,
                                                    const float* max_iou, float score, int i,
                                                    const MatrixNmsParams& p) {
    const float* b = boxes + 4 * (long long)order[i];
    float min_decay = 1.0f;
    for (int j = 0; j < i; ++j) {
        float iou = paddle_iou(b, boxes + 4 * (long long)order[j], p.normalized);
        min_decay = fminf(min_decay, matrix_nms_decay(p, iou, max_iou[j]));
    }
    return min_decay * score;
}
