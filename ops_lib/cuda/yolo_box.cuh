// yolo_box on the GPU: decodes a YOLOv3 head [N, A*(5+C), H, W] into image-space boxes
// [N, A*H*W, 4] and per-class scores [N, A*H*W, C], one position (image, anchor, row, column)
// per call, with the arithmetic of ops_lib/src/detection/yolo_box.rs (Paddle 2.6's kernel):
// the same operation order, and the sigmoid's division in double as Paddle rounds it.
//
// Positions below `conf_thresh` write zero boxes and scores: the CPU kernel's output starts
// zeroed, device memory does not.
//
// No standard headers: NVRTC, which compiles these sources at run time, has none.
#pragma once

struct YoloBoxParams {
    int n, h, w;
    int anchors;
    int classes;
    // IoU-aware heads put A IoU channels ahead of the anchor blocks.
    int iou_aware;
    float iou_aware_factor;
    float conf_thresh;
    int downsample_ratio;
    int clip_bbox;
    float scale_x_y;
};

__host__ __device__ inline float yolo_sigmoid(float x) {
    return (float)(1.0 / (1.0 + (double)expf(-x)));
}

// Decodes position `index` of [n, anchors, h, w] (the output row): `x` is the head,
// `img_size` [n, 2] holds (height, width) per image, `anchor_wh` [anchors, 2] (width, height)
// in input pixels.
__host__ __device__ inline void yolo_box_decode(const float* x, const int* img_size,
                                                const int* anchor_wh, const YoloBoxParams& p,
                                                long long index, float* boxes, float* scores) {
    long long stride = (long long)p.h * p.w;
    int l = (int)(index % p.w);
    int k = (int)(index / p.w % p.h);
    int j = (int)(index / stride % p.anchors);
    long long i = index / (stride * p.anchors);
    long long hw = (long long)k * p.w + l;
    long long per_anchor = 5 + p.classes + (p.iou_aware ? 1 : 0);
    long long image_stride = p.anchors * per_anchor * stride;
    long long iou_channels = p.iou_aware ? p.anchors * stride : 0;
    long long block = i * image_stride + iou_channels + j * (5 + p.classes) * stride;
    const float* entry = x + block + hw;
    float* box = boxes + index * 4;
    float* score = scores + index * p.classes;

    float conf = yolo_sigmoid(entry[4 * stride]);
    if (p.iou_aware) {
        float iou = yolo_sigmoid(x[i * image_stride + j * stride + hw]);
        float f = p.iou_aware_factor;
        conf = powf(conf, (float)(1.0 - (double)f)) * powf(iou, f);
    }
    if (conf < p.conf_thresh) {
        for (int e = 0; e < 4; ++e) {
            box[e] = 0.0f;
        }
        for (int c = 0; c < p.classes; ++c) {
            score[c] = 0.0f;
        }
        return;
    }
    int img_h = img_size[2 * i];
    int img_w = img_size[2 * i + 1];
    float ih = (float)img_h;
    float iw = (float)img_w;
    float input_h = (float)(p.downsample_ratio * p.h);
    float input_w = (float)(p.downsample_ratio * p.w);
    float bias = -0.5f * (p.scale_x_y - 1.0f);
    float cx = ((float)l + yolo_sigmoid(entry[0]) * p.scale_x_y + bias) * iw / (float)p.w;
    float cy = ((float)k + yolo_sigmoid(entry[stride]) * p.scale_x_y + bias) * ih / (float)p.h;
    float bw = expf(entry[2 * stride]) * (float)anchor_wh[2 * j] * iw / input_w;
    float bh = expf(entry[3 * stride]) * (float)anchor_wh[2 * j + 1] * ih / input_h;
    float b[4] = {cx - bw / 2.0f, cy - bh / 2.0f, cx + bw / 2.0f, cy + bh / 2.0f};
    if (p.clip_bbox) {
        float xmax = (float)(img_w - 1);
        float ymax = (float)(img_h - 1);
        b[0] = b[0] > 0.0f ? b[0] : 0.0f;
        b[1] = b[1] > 0.0f ? b[1] : 0.0f;
        b[2] = b[2] < xmax ? b[2] : xmax;
        b[3] = b[3] < ymax ? b[3] : ymax;
    }
    for (int e = 0; e < 4; ++e) {
        box[e] = b[e];
    }
    for (int c = 0; c < p.classes; ++c) {
        score[c] = conf * yolo_sigmoid(entry[(5 + c) * stride]);
    }
}
