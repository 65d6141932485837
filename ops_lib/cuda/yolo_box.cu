// Kernel of yolo_box.cuh: one thread per position (image, anchor, row, column), grid-stride.
// Extern "C" names, for lookup by name in an NVRTC-compiled module.
#include "yolo_box.cuh"

extern "C" __global__ void ops_lib_yolo_box(const float* x, const int* img_size,
                                            const int* anchor_wh, YoloBoxParams p, float* boxes,
                                            float* scores) {
    long long total = (long long)p.n * p.anchors * p.h * p.w;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        yolo_box_decode(x, img_size, anchor_wh, p, i, boxes, scores);
    }
}
