// Kernel of generate_proposals.cuh: one thread per ranked candidate (image, rank), grid-stride.
// `order` [N, top] holds each image's ranked candidates, `im_shape` [N, 2] (height, width);
// writes `boxes` [N, top, 4] and `keep` [N, top] (1 where the box passes the size test).
// Extern "C" names, for lookup by name in an NVRTC-compiled module.
#include "generate_proposals.cuh"

extern "C" __global__ void ops_lib_proposal_decode(const float* deltas, const float* anchors,
                                                   const float* variances, const float* im_shape,
                                                   const int* order, int images, int top,
                                                   ProposalParams p, float* boxes, int* keep) {
    long long total = (long long)images * top;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int image = (int)(e / top);
        keep[e] = proposal_decode(deltas, anchors, variances, p, image, order[e],
                                  im_shape[2 * image], im_shape[2 * image + 1], boxes + 4 * e);
    }
}
