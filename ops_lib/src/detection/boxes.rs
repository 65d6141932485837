//! Box geometry shared by the NMS kernels, in f32 with Paddle's operation order so that
//! comparisons against thresholds break the same way.

/// Area of `[x1, y1, x2, y2]`; zero for an inverted box. Pixel boxes (not `normalized`) count
/// both end pixels, hence the `+ 1`.
pub(crate) fn area(b: &[f32], normalized: bool) -> f32 {
    if b[2] < b[0] || b[3] < b[1] {
        return 0.0;
    }
    let w = b[2] - b[0];
    let h = b[3] - b[1];
    if normalized {
        w * h
    } else {
        (w + 1.0) * (h + 1.0)
    }
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes.
pub(crate) fn iou(a: &[f32], b: &[f32], normalized: bool) -> f32 {
    if b[0] > a[2] || b[2] < a[0] || b[1] > a[3] || b[3] < a[1] {
        return 0.0;
    }
    let norm = if normalized { 0.0 } else { 1.0 };
    let inter_w = a[2].min(b[2]) - a[0].max(b[0]) + norm;
    let inter_h = a[3].min(b[3]) - a[1].max(b[1]) + norm;
    let inter = inter_w * inter_h;
    inter / (area(a, normalized) + area(b, normalized) - inter)
}

/// Greedy NMS over candidates already in visiting order: a candidate survives when its IoU with
/// every kept box is at most the threshold, which decays by `eta` after each kept box while it
/// is above 0.5 (Paddle's adaptive NMS). Returns the kept candidates in visiting order.
pub(crate) fn greedy_nms<'b>(
    order: impl IntoIterator<Item = usize>,
    boxes: impl Fn(usize) -> &'b [f32],
    threshold: f32,
    eta: f32,
    normalized: bool,
) -> Vec<usize> {
    let mut kept: Vec<usize> = Vec::new();
    let mut adaptive = threshold;
    for idx in order {
        let cur = boxes(idx);
        if kept
            .iter()
            .all(|&k| iou(cur, boxes(k), normalized) <= adaptive)
        {
            kept.push(idx);
            if eta < 1.0 && adaptive > 0.5 {
                adaptive *= eta;
            }
        }
    }
    kept
}
