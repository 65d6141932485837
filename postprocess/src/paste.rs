//! Pasting one box's `M x M` mask probabilities into the photo, as PaddleDetection's
//! `MaskPostProcess.paste_mask` does over the whole photo (a bilinear GridSample, zero outside
//! the mask, `align_corners=False`, sampled at each pixel's centre; then `>= 0.5`), but only
//! over the pixels the mask can reach: its box and one mask cell around it, which is where
//! GridSample's result can be nonzero.

use crate::Mask;

/// Paddle's `binary_thresh`.
pub const THRESHOLD: f32 = 0.5;

/// The mask of probabilities `probs` (`m` rows of `n`, row-major) over `bbox` (x1, y1, x2, y2,
/// in the photo's pixels) in a photo of `image` (height, width).
pub fn paste(probs: &[f32], (m, n): (usize, usize), bbox: [f32; 4], image: (usize, usize)) -> Mask {
    let (h, w) = image;
    let [x0, y0, x1, y1] = bbox;
    let (bw, bh) = ((x1 - x0).max(f32::EPSILON), (y1 - y0).max(f32::EPSILON));
    // Mask coordinate of a pixel: ((p + 0.5 - start) / extent) * cells - 0.5.
    let to_mask_x = |x: usize| (x as f32 + 0.5 - x0) / bw * n as f32 - 0.5;
    let to_mask_y = |y: usize| (y as f32 + 0.5 - y0) / bh * m as f32 - 0.5;
    let range = |start: f32, extent: f32, cells: usize, limit: usize| {
        let cell = extent / cells as f32;
        let lo = (start - cell - 1.0).floor().max(0.0) as usize;
        let hi = ((start + extent + cell + 1.0).ceil().max(0.0) as usize).min(limit);
        (lo.min(hi), hi)
    };
    let (left, right) = range(x0, bw, n, w);
    let (top, bottom) = range(y0, bh, m, h);
    let at = |r: isize, c: isize| {
        if r < 0 || c < 0 || r >= m as isize || c >= n as isize {
            0.0
        } else {
            probs[r as usize * n + c as usize]
        }
    };
    let mut inside = vec![false; h * w];
    for y in top..bottom {
        let fy = to_mask_y(y);
        let (ry, wy) = (fy.floor(), fy - fy.floor());
        let r = ry as isize;
        for x in left..right {
            let fx = to_mask_x(x);
            let (cx, wx) = (fx.floor(), fx - fx.floor());
            let c = cx as isize;
            let v = at(r, c) * (1.0 - wy) * (1.0 - wx)
                + at(r, c + 1) * (1.0 - wy) * wx
                + at(r + 1, c) * wy * (1.0 - wx)
                + at(r + 1, c + 1) * wy * wx;
            inside[y * w + x] = v >= THRESHOLD;
        }
    }
    Mask::tight(image, &inside)
}
