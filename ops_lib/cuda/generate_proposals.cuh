// generate_proposals_v2 on the GPU: the decode of each ranked anchor by its deltas (Paddle's box
// coder), the clip to the image and the min_size test, one candidate per call, with the
// arithmetic of ops_lib/src/detection/generate_proposals.rs.
//
// The rest of the operator stays on the host (issue 23): ranking the anchors by score (top
// pre_nms_topN, descending, ties in anchor order) before, and after, the compaction of the kept
// boxes and the NMS. Its NMS is nms.cuh's with the Paddle rule (pixel boxes when pixel_offset),
// in the CPU kernel's visiting order (descending score, among equal scores the later box first),
// cut to post_nms_topN; adaptive NMS (eta < 1) stays on the CPU kernel as for multiclass_nms3.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

struct ProposalParams {
    // Scores [N, A, H, W], deltas [N, 4A, H, W]; anchors and variances [H, W, A, 4].
    int anchors, h, w;
    float min_size;
    // Pixel boxes whose width counts both end pixels (x2 - x1 + 1).
    int pixel_offset;
};

// log(1000 / 16), the clamp of the log-size deltas (Paddle's kBBoxClipDefault), as the CPU
// kernel rounds it to f32.
constexpr float PROPOSAL_CLIP_LOG = 4.135166556742356f;

// max(min(v, hi), 0) with std::min and std::max's choice between equal values.
__host__ __device__ inline float proposal_clip(float v, float hi) {
    float m = hi < v ? hi : v;
    return m < 0.0f ? 0.0f : m;
}

// Decodes candidate k (position (k / A) of the H x W map, anchor k % A) of image `image`, of
// height im_h and width im_w, into `box`, clipped to the image; returns whether it passes the
// min_size test (and with pixel_offset, whether its centre lies in the image).
__host__ __device__ inline bool proposal_decode(const float* deltas, const float* anchors,
                                                const float* variances, const ProposalParams& p,
                                                int image, int k, float im_h, float im_w,
                                                float* box) {
    long long plane = (long long)p.h * p.w;
    int hw = k / p.anchors;
    int an = k % p.anchors;
    const float* d = deltas + ((long long)image * p.anchors + an) * 4 * plane + hw;
    const float* a = anchors + 4 * (long long)k;
    const float* var = variances + 4 * (long long)k;
    float offset = p.pixel_offset ? 1.0f : 0.0f;
    float aw = a[2] - a[0] + offset;
    float ah = a[3] - a[1] + offset;
    float acx = a[0] + 0.5f * aw;
    float acy = a[1] + 0.5f * ah;
    float cx = var[0] * d[0] * aw + acx;
    float cy = var[1] * d[plane] * ah + acy;
    float bw = expf(fminf(var[2] * d[2 * plane], PROPOSAL_CLIP_LOG)) * aw;
    float bh = expf(fminf(var[3] * d[3 * plane], PROPOSAL_CLIP_LOG)) * ah;
    box[0] = proposal_clip(cx - bw / 2.0f, im_w - offset);
    box[1] = proposal_clip(cy - bh / 2.0f, im_h - offset);
    box[2] = proposal_clip(cx + bw / 2.0f - offset, im_w - offset);
    box[3] = proposal_clip(cy + bh / 2.0f - offset, im_h - offset);
    float ws = box[2] - box[0] + offset;
    float hs = box[3] - box[1] + offset;
    float min_size = fmaxf(p.min_size, 1.0f);
    bool keep = ws >= min_size && hs >= min_size;
    if (p.pixel_offset) {
        keep = keep && box[0] + ws / 2.0f <= im_w && box[1] + hs / 2.0f <= im_h;
    }
    return keep;
}
