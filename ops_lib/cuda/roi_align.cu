// Kernel of roi_align.cuh: one thread per output element [regions, channels, output_height,
// output_width], grid-stride. `batch` gives each region's image. Extern "C" names, for lookup
// by name in an NVRTC-compiled module.
#include "roi_align.cuh"

// RoIAlign with batch indices of type Index checked against the `images` of x: the
// CPU kernel refuses a region of an image outside the batch, and reading one here would fault
// the device, so such a region's bins are written as zero instead.
template <typename Index>
__device__ void roi_align_checked(const float* x, const float* rois, const Index* batch,
                                  long long images, long long regions, const RoiAlignParams& p,
                                  float* out) {
    long long bins = (long long)p.output_height * p.output_width;
    long long plane = (long long)p.height * p.width;
    long long total = regions * p.channels * bins;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int pw = (int)(e % p.output_width);
        int ph = (int)(e / p.output_width % p.output_height);
        long long c = e / bins % p.channels;
        long long r = e / (bins * p.channels);
        long long b = (long long)batch[r];
        if (b < 0 || b >= images) {
            out[e] = 0.0f;
            continue;
        }
        out[e] = roi_align_bin(x + (b * p.channels + c) * plane, rois + 4 * r, p, ph, pw);
    }
}

extern "C" __global__ void ops_lib_roi_align_i32(const float* x, const float* rois,
                                                 const int* batch, int images, int regions,
                                                 RoiAlignParams p, float* out) {
    roi_align_checked(x, rois, batch, images, regions, p, out);
}

extern "C" __global__ void ops_lib_roi_align_i64(const float* x, const float* rois,
                                                 const long long* batch, int images,
                                                 int regions, RoiAlignParams p, float* out) {
    roi_align_checked(x, rois, batch, images, regions, p, out);
}
