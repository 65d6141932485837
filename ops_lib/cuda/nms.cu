// Kernels of nms.cuh for one class's candidates: the mask (one thread per 64-bit word, so a
// row of n candidates takes nms_words(n) threads), then the walk in a single block. The walk
// is sequential in the candidates, since each decision depends on the ones before; the block's
// threads share the ORing of each kept row, which is the walk's work. Extern "C" names, for
// lookup by name in an NVRTC-compiled module.
#include "nms.cuh"

extern "C" __global__ void ops_lib_nms_mask(const float* boxes, const int* order, int n, int rule,
                                            float threshold, unsigned long long* mask) {
    int words = nms_words(n);
    long long total = (long long)n * words;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int row = (int)(e / words);
        int word = (int)(e % words);
        mask[e] = nms_mask_word(boxes, order, n, row, word, rule, threshold);
    }
}

// Launch as one block. `removed` holds nms_words(n) zeroed words; `kept_count` receives the
// number of positions written to `keep`.
extern "C" __global__ void ops_lib_nms_reduce(const unsigned long long* mask, int n, int limit,
                                              unsigned long long* removed, int* keep,
                                              int* kept_count) {
    __shared__ int keep_row;
    int kept = 0;
    for (int i = 0; i < n && kept < limit; ++i) {
        if (threadIdx.x == 0) {
            keep_row = !nms_is_removed(removed, i);
            if (keep_row) {
                keep[kept] = i;
            }
        }
        __syncthreads();
        if (keep_row) {
            ++kept;
            nms_absorb_row(removed, mask, n, i, threadIdx.x, blockDim.x);
        }
        // The next decision reads `removed`, which every thread may have written.
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        *kept_count = kept;
    }
}
