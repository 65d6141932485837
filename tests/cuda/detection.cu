// Harness commands of the per-element detection kernels: yolo_box, roi_align and
// distribute_fpn (formats in harness.cu).
#include "harness.h"

#include "distribute_fpn.cuh"
#include "roi_align.cuh"
#include "yolo_box.cuh"

namespace harness {

void yolo_box() {
    YoloBoxParams p;
    p.n = read_int("n");
    p.h = read_int("h");
    p.w = read_int("w");
    p.anchors = read_int("anchors");
    p.classes = read_int("classes");
    p.iou_aware = read_int("iou_aware");
    p.iou_aware_factor = read_float("iou_aware_factor");
    p.conf_thresh = read_float("conf_thresh");
    p.downsample_ratio = read_int("downsample_ratio");
    p.clip_bbox = read_int("clip_bbox");
    p.scale_x_y = read_float("scale_x_y");
    std::vector<int> anchor_wh = read_ints(2 * p.anchors, "anchor sizes");
    std::vector<int> img_size = read_ints(2 * p.n, "image sizes");
    long long channels = p.anchors * (5 + p.classes + (p.iou_aware ? 1 : 0));
    std::vector<float> x = read_floats(p.n * channels * p.h * p.w, "x");
    long long rows = (long long)p.n * p.anchors * p.h * p.w;
    std::vector<float> boxes(rows * 4), scores(rows * p.classes);
    for (long long i = 0; i < rows; ++i) {
        yolo_box_decode(x.data(), img_size.data(), anchor_wh.data(), p, i, boxes.data(),
                        scores.data());
    }
    boxes.insert(boxes.end(), scores.begin(), scores.end());
    print_floats(boxes);
}

void roi_align() {
    int n = read_int("n");
    RoiAlignParams p;
    p.channels = read_int("channels");
    p.height = read_int("height");
    p.width = read_int("width");
    p.output_height = read_int("output_height");
    p.output_width = read_int("output_width");
    p.sampling_ratio = read_int("sampling_ratio");
    p.spatial_scale = read_float("spatial_scale");
    p.half_pixel = read_int("half_pixel");
    p.max_mode = read_int("max");
    int regions = read_int("regions");
    long long plane = (long long)p.height * p.width;
    std::vector<float> x = read_floats(n * p.channels * plane, "x");
    std::vector<float> rois = read_floats(4LL * regions, "rois");
    std::vector<int> batch = read_ints(regions, "batch");
    std::vector<float> out;
    for (int r = 0; r < regions; ++r) {
        for (int c = 0; c < p.channels; ++c) {
            const float* channel = x.data() + ((long long)batch[r] * p.channels + c) * plane;
            for (int ph = 0; ph < p.output_height; ++ph) {
                for (int pw = 0; pw < p.output_width; ++pw) {
                    out.push_back(roi_align_bin(channel, rois.data() + 4 * r, p, ph, pw));
                }
            }
        }
    }
    print_floats(out);
}

void distribute_fpn() {
    FpnParams p;
    p.min_level = read_int("min_level");
    p.max_level = read_int("max_level");
    p.refer_level = read_int("refer_level");
    p.refer_scale = read_int("refer_scale");
    p.pixel_offset = read_int("pixel_offset");
    int regions = read_int("regions");
    std::vector<float> rois = read_floats(4LL * regions, "rois");
    std::vector<int> levels(regions);
    for (int r = 0; r < regions; ++r) {
        levels[r] = fpn_level_of(rois.data() + 4 * r, p);
    }
    print_ints(levels);
}

} // namespace harness
