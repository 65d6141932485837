// Kernels of matrix_nms.cuh for one class's n ranked candidates, one thread per candidate,
// grid-stride: the largest IoUs first, then (after that launch completes) the decayed scores.
// `scores` holds the class's scores by box index. Extern "C" names, for lookup by name in an
// NVRTC-compiled module.
#include "matrix_nms.cuh"

extern "C" __global__ void ops_lib_matrix_nms_max_iou(const float* boxes, const int* order, int n,
                                                      int normalized, float* max_iou) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        max_iou[i] = matrix_nms_max_iou(boxes, order, i, normalized);
    }
}

extern "C" __global__ void ops_lib_matrix_nms_decay(const float* boxes, const int* order,
                                                    const float* scores, const float* max_iou,
                                                    int n, MatrixNmsParams p, float* decayed) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        decayed[i] = matrix_nms_decayed(boxes, order, max_iou, scores[order[i]], i, p);
    }
}
