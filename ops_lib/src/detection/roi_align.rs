//! RoiAlign (Mask R-CNN): each region of interest is cut into `output_height x output_width`
//! bins, and each bin pools bilinear samples on a regular grid. It takes plain slices and a batch
//! index per region, so Paddle's roi_align (regions counted per image, turned into indices by
//! rois_batch_index) runs it too.
//! The arithmetic follows onnxruntime's, in f32, including max mode's quirk: it takes the
//! largest weighted corner of each sample rather than the largest interpolated value.

use temblor_ir::RoiAlignAttrs;

/// One bilinear sample: the flat positions of its four neighbours in a channel plane and their
/// weights (all zero for a sample outside the map).
#[derive(Clone, Copy, Default)]
struct Sample {
    pos: [usize; 4],
    w: [f32; 4],
}

impl Sample {
    fn at(y: f32, x: f32, height: usize, width: usize) -> Sample {
        if y < -1.0 || y > height as f32 || x < -1.0 || x > width as f32 {
            return Sample::default();
        }
        let (y_low, y_high, y) = neighbours(y.max(0.0), height);
        let (x_low, x_high, x) = neighbours(x.max(0.0), width);
        let (ly, lx) = (y - y_low as f32, x - x_low as f32);
        let (hy, hx) = (1.0 - ly, 1.0 - lx);
        Sample {
            pos: [
                y_low * width + x_low,
                y_low * width + x_high,
                y_high * width + x_low,
                y_high * width + x_high,
            ],
            w: [hy * hx, hy * lx, ly * hx, ly * lx],
        }
    }
}

/// The lower and upper neighbour of a non-negative coordinate along an axis of `len` (at least
/// 1); past the last cell both are the last one and the coordinate snaps to it.
fn neighbours(v: f32, len: usize) -> (usize, usize, f32) {
    let low = v as usize;
    if low + 1 >= len {
        (len - 1, len - 1, (len - 1) as f32)
    } else {
        (low, low + 1, v)
    }
}

/// The sampling grid of one region: for each bin in row-major order, its grid of samples.
struct RegionGrid {
    samples: Vec<Sample>,
    per_bin: usize,
    /// The divisor of average pooling (the number of samples, at least 1).
    count: f32,
}

fn region_grid(
    a: &RoiAlignAttrs,
    roi: &[f32],
    height: usize,
    width: usize,
) -> Result<RegionGrid, String> {
    let offset = if a.half_pixel { 0.5 } else { 0.0 };
    let start_w = roi[0] * a.spatial_scale - offset;
    let start_h = roi[1] * a.spatial_scale - offset;
    let mut roi_w = roi[2] * a.spatial_scale - offset - start_w;
    let mut roi_h = roi[3] * a.spatial_scale - offset - start_h;
    if !a.half_pixel {
        // Malformed regions count as 1x1, as they did before half_pixel existed.
        roi_w = roi_w.max(1.0);
        roi_h = roi_h.max(1.0);
    }
    let (oh, ow) = (a.output_height, a.output_width);
    let bin_h = roi_h / oh as f32;
    let bin_w = roi_w / ow as f32;
    // A negative adaptive size (a flipped region) samples nothing.
    let grid = |size: f32| match a.sampling_ratio {
        0 => size.ceil().max(0.0) as usize,
        s => s,
    };
    let (grid_h, grid_w) = (grid(bin_h), grid(bin_w));
    // The grid comes from an attribute or from the region's size (data): a huge one is refused
    // before it is allocated.
    temblor_ir::limits::Limits::get()
        .check_value(&[oh, ow, grid_h, grid_w], size_of::<Sample>())
        .map_err(|e| format!("the sampling grid of region {roi:?}: {e}"))?;
    let mut samples = Vec::with_capacity(oh * ow * grid_h * grid_w);
    for ph in 0..oh {
        for pw in 0..ow {
            for iy in 0..grid_h {
                let y = start_h + ph as f32 * bin_h + (iy as f32 + 0.5) * bin_h / grid_h as f32;
                for ix in 0..grid_w {
                    let x = start_w + pw as f32 * bin_w + (ix as f32 + 0.5) * bin_w / grid_w as f32;
                    samples.push(Sample::at(y, x, height, width));
                }
            }
        }
    }
    Ok(RegionGrid {
        samples,
        per_bin: grid_h * grid_w,
        count: (grid_h * grid_w).max(1) as f32,
    })
}

fn pool_bin(samples: &[Sample], plane: &[f32], max: bool, count: f32) -> f32 {
    if max {
        samples
            .iter()
            .map(|s| {
                let v = |i: usize| s.w[i] * plane[s.pos[i]];
                v(0).max(v(1)).max(v(2)).max(v(3))
            })
            .reduce(f32::max)
            .unwrap_or(0.0)
    } else {
        let sum: f32 = samples
            .iter()
            .map(|s| {
                s.w[0] * plane[s.pos[0]]
                    + s.w[1] * plane[s.pos[1]]
                    + s.w[2] * plane[s.pos[2]]
                    + s.w[3] * plane[s.pos[3]]
            })
            .sum();
        sum / count
    }
}

/// RoiAlign of `x` (`[n, c, h, w]`) over `rois` (`[x1, y1, x2, y2]` each, in input
/// coordinates before `spatial_scale`), region `r` taken from image `batch[r]`. Returns
/// `[regions, c, output_height, output_width]` values.
pub fn roi_align(
    a: &RoiAlignAttrs,
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    rois: &[f32],
    batch: &[usize],
) -> Result<Vec<f32>, String> {
    if x.len() != n * c * h * w || rois.len() != batch.len() * 4 {
        return Err(format!(
            "roi_align: {} values do not make [{n}, {c}, {h}, {w}], or {} rois values {} regions",
            x.len(),
            rois.len(),
            batch.len()
        ));
    }
    if let Some(&b) = batch.iter().find(|&&b| b >= n) {
        return Err(format!(
            "a region refers to image {b}, but the batch has {n}"
        ));
    }
    let (oh, ow) = (a.output_height, a.output_width);
    if h == 0 || w == 0 || oh == 0 || ow == 0 {
        return Ok(vec![0.0; batch.len() * c * oh * ow]);
    }
    let mut out = Vec::with_capacity(batch.len() * c * oh * ow);
    for (roi, &b) in rois.chunks_exact(4).zip(batch) {
        let grid = region_grid(a, roi, h, w)?;
        for plane in x[b * c * h * w..(b + 1) * c * h * w].chunks_exact(h * w) {
            if grid.per_bin == 0 {
                out.extend(std::iter::repeat_n(0.0, oh * ow));
                continue;
            }
            out.extend(
                grid.samples
                    .chunks_exact(grid.per_bin)
                    .map(|bin| pool_bin(bin, plane, a.max, grid.count)),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(max: bool, sampling_ratio: usize) -> RoiAlignAttrs {
        RoiAlignAttrs {
            max,
            output_height: 2,
            output_width: 3,
            sampling_ratio,
            spatial_scale: 0.5,
            half_pixel: true,
        }
    }

    #[test]
    fn a_constant_map_averages_to_its_value() {
        let x = vec![3.0; 2 * 8 * 8];
        let out = roi_align(
            &attrs(false, 0),
            &x,
            [1, 2, 8, 8],
            &[2.0, 2.0, 10.0, 12.0],
            &[0],
        )
        .unwrap();
        assert_eq!(out.len(), 2 * 2 * 3);
        assert!(out.iter().all(|&v| (v - 3.0).abs() < 1e-6), "{out:?}");
    }

    #[test]
    fn a_region_of_a_missing_image_is_refused() {
        let x = vec![0.0; 8 * 8];
        let err = roi_align(&attrs(true, 2), &x, [1, 1, 8, 8], &[0.0; 4], &[1]).unwrap_err();
        assert!(err.contains("image 1"), "{err}");
    }

    /// A sampling ratio of 2^40 (an attribute) or a region of 1e30 pixels (data, adaptive
    /// grid) asks for more samples than memory holds: refused before anything is allocated.
    #[test]
    fn a_huge_sampling_grid_is_refused() {
        let x = vec![1.0; 8 * 8];
        let err = roi_align(
            &attrs(false, 1 << 40),
            &x,
            [1, 1, 8, 8],
            &[0.0, 0.0, 4.0, 4.0],
            &[0],
        )
        .unwrap_err();
        assert!(err.contains("above the limit"), "{err}");
        let err = roi_align(
            &attrs(false, 0),
            &x,
            [1, 1, 8, 8],
            &[0.0, 0.0, 1e30, 1e30],
            &[0],
        )
        .unwrap_err();
        assert!(err.contains("above the limit"), "{err}");
    }
}
