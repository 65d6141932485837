// Harness commands of the selection kernels: nms, matrix_nms and generate_proposals (formats in
// harness.cu), with the sorts the GPU path runs around them.
#include <algorithm>

#include "harness.h"

#include "generate_proposals.cuh"
#include "matrix_nms.cuh"
#include "nms.cuh"

namespace harness {

namespace {

// The candidates scoring above `threshold`, by descending score, ties in index order, cut to
// `top_k` (-1 for all): the ranking of multiclass_nms3 and matrix_nms.
std::vector<int> rank(const std::vector<float>& scores, float threshold, int top_k) {
    std::vector<int> order;
    for (int i = 0; i < (int)scores.size(); ++i) {
        if (scores[i] > threshold) {
            order.push_back(i);
        }
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return scores[a] > scores[b]; });
    if (top_k >= 0 && (int)order.size() > top_k) {
        order.resize(top_k);
    }
    return order;
}

// nms.cuh's mask and walk over the candidates `order` (box indices in visiting order); returns
// the kept positions in `order`, at most `limit` (-1 for all).
std::vector<int> nms_keep(const std::vector<float>& boxes, const std::vector<int>& order, int rule,
                          float threshold, int limit) {
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
    keep.resize(nms_reduce(mask.data(), n, limit < 0 ? n : limit, removed.data(), keep.data()));
    return keep;
}

// The proposals generate_proposals keeps of the boxes that passed the size test (in ranked
// order): all of them when nms_thresh <= 0, else nms.cuh's Paddle rule visiting them by
// descending score, among equal scores the later box first, cut to post_nms_top_n.
std::vector<int> proposals_kept(const std::vector<float>& boxes, const std::vector<float>& scores,
                                float nms_thresh, int post_nms_top_n, int pixel_offset) {
    std::vector<int> order(scores.size());
    for (int i = 0; i < (int)order.size(); ++i) {
        order[i] = i;
    }
    if (nms_thresh <= 0.0f) {
        return order;
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return scores[a] < scores[b]; });
    std::reverse(order.begin(), order.end());
    int rule = pixel_offset ? NMS_PADDLE_PIXEL : NMS_PADDLE_NORMALIZED;
    std::vector<int> kept;
    for (int k :
         nms_keep(boxes, order, rule, nms_thresh, post_nms_top_n > 0 ? post_nms_top_n : -1)) {
        kept.push_back(order[k]);
    }
    return kept;
}

} // namespace

void nms() {
    int rule = read_int("rule");
    float threshold = read_float("threshold");
    float score_threshold = read_float("score threshold");
    int top_k = read_int("top_k");
    int limit = read_int("limit");
    int m = read_int("m");
    std::vector<float> boxes = read_floats(4LL * m, "boxes");
    std::vector<float> scores = read_floats(m, "scores");
    std::vector<int> order = rank(scores, score_threshold, top_k);
    std::vector<int> kept;
    for (int k : nms_keep(boxes, order, rule, threshold, limit)) {
        kept.push_back(order[k]);
    }
    print_ints(kept);
}

void matrix_nms() {
    MatrixNmsParams p;
    p.normalized = read_int("normalized");
    p.use_gaussian = read_int("use_gaussian");
    p.gaussian_sigma = read_float("gaussian_sigma");
    float score_threshold = read_float("score threshold");
    float post_threshold = read_float("post threshold");
    int top_k = read_int("top_k");
    int m = read_int("m");
    std::vector<float> boxes = read_floats(4LL * m, "boxes");
    std::vector<float> scores = read_floats(m, "scores");
    std::vector<int> order = rank(scores, score_threshold, top_k);
    int n = (int)order.size();
    std::vector<float> max_iou(n);
    for (int i = 0; i < n; ++i) {
        max_iou[i] = matrix_nms_max_iou(boxes.data(), order.data(), i, p.normalized);
    }
    std::vector<float> out;
    for (int i = 0; i < n; ++i) {
        float decayed =
            matrix_nms_decayed(boxes.data(), order.data(), max_iou.data(), scores[order[i]], i, p);
        if (decayed > post_threshold) {
            out.push_back((float)order[i]);
            out.push_back(decayed);
        }
    }
    print_floats(out);
}

void generate_proposals() {
    int n = read_int("n");
    ProposalParams p;
    p.anchors = read_int("anchors");
    p.h = read_int("h");
    p.w = read_int("w");
    int pre_nms_top_n = read_int("pre_nms_top_n");
    int post_nms_top_n = read_int("post_nms_top_n");
    float nms_thresh = read_float("nms_thresh");
    p.min_size = read_float("min_size");
    p.pixel_offset = read_int("pixel_offset");
    int count = p.anchors * p.h * p.w;
    std::vector<float> scores = read_floats((long long)n * count, "scores");
    std::vector<float> deltas = read_floats(4LL * n * count, "deltas");
    std::vector<float> im_shape = read_floats(2LL * n, "im_shape");
    std::vector<float> anchors = read_floats(4LL * count, "anchors");
    std::vector<float> variances = read_floats(4LL * count, "variances");
    for (int image = 0; image < n; ++image) {
        // Scores [A, H, W] as candidates (position, anchor), ranked by descending score, ties
        // in candidate order.
        auto score_of = [&](int k) {
            return scores[((long long)image * p.anchors + k % p.anchors) * p.h * p.w +
                          k / p.anchors];
        };
        std::vector<int> ranked(count);
        for (int k = 0; k < count; ++k) {
            ranked[k] = k;
        }
        std::stable_sort(ranked.begin(), ranked.end(),
                         [&](int a, int b) { return score_of(a) > score_of(b); });
        if (pre_nms_top_n > 0 && pre_nms_top_n < count) {
            ranked.resize(pre_nms_top_n);
        }
        std::vector<float> boxes;
        std::vector<float> box_scores;
        for (int k : ranked) {
            float box[4];
            if (proposal_decode(deltas.data(), anchors.data(), variances.data(), p, image, k,
                                im_shape[2 * image], im_shape[2 * image + 1], box)) {
                boxes.insert(boxes.end(), box, box + 4);
                box_scores.push_back(score_of(k));
            }
        }
        std::vector<float> out;
        for (int i :
             proposals_kept(boxes, box_scores, nms_thresh, post_nms_top_n, p.pixel_offset)) {
            out.insert(out.end(), boxes.begin() + 4 * i, boxes.begin() + 4 * i + 4);
            out.push_back(box_scores[i]);
        }
        if (box_scores.empty()) {
            out.assign(5, 0.0f);
        }
        print_floats(out);
    }
}

} // namespace harness
