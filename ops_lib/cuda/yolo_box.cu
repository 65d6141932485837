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

// The same with int64 image sizes (ONNX exports write ImgSize as int64): each position is
// decoded as position `index % per_image` of a one-image batch whose sizes are narrowed here.
extern "C" __global__ void ops_lib_yolo_box_i64(const float* x, const long long* img_size,
                                                const int* anchor_wh, YoloBoxParams p,
                                                float* boxes, float* scores) {
    long long per_image = (long long)p.anchors * p.h * p.w;
    long long total = p.n * per_image;
    long long image_stride = (long long)p.anchors * (5 + p.classes + (p.iou_aware ? 1 : 0)) *
                             p.h * p.w;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        long long image = i / per_image;
        int size[2] = {(int)img_size[2 * image], (int)img_size[2 * image + 1]};
        yolo_box_decode(x + image * image_stride, size, anchor_wh, p, i % per_image,
                        boxes + image * per_image * 4, scores + image * per_image * p.classes);
    }
}
