//! DBNet text detection, as PaddleOCR's `DBPostProcess` (either `score_mode`) followed by what its
//! `TextDetector` and `TextSystem` do with the boxes: drop slivers, clip to the photo, sort in
//! reading order.

mod contours;
mod min_rect;

use crate::{floats, Geometry, ScoreMode, TextDetection, TextLine};
use min_rect::{mini_box, MiniBox};
use temblor_ir::{Error, Result};
use temblor_runtime::Tensor;

/// `DBPostProcess.min_size`: a box whose short side is below it (in map pixels) is noise.
const MIN_SIZE: f64 = 3.0;

/// The text regions of a probability map `[1, 1, H, W]` (the model input's size), as
/// quadrilaterals in the photo's pixels, clockwise from the top-left, in reading order.
pub fn text_regions(
    map: &Tensor,
    settings: &TextDetection,
    geometry: &Geometry,
) -> Result<Vec<TextLine>> {
    let [1, 1, height, width] = map.shape[..] else {
        return Err(Error::usage(format!(
            "a text detector's output is a probability map [1, 1, H, W]; this one is {:?}",
            map.shape
        )));
    };
    let values = floats("text probability map", map)?;
    let bitmap: Vec<bool> = values.iter().map(|&p| p > settings.threshold).collect();
    let pred = Plane {
        values: &values,
        height,
        width,
    };
    let mut lines = Vec::new();
    for contour in contours::contour_points(&bitmap, height, width, settings.max_candidates) {
        let Some(b) = mini_box(&contour.points).filter(|b| b.short_side >= MIN_SIZE) else {
            continue;
        };
        let score = match settings.score_mode {
            ScoreMode::Fast => pred.mean_inside(&b.corners),
            ScoreMode::Slow => pred.mean_over(&contour.filled),
        };
        if score < f64::from(settings.box_score) {
            continue;
        }
        let grown = unclip(&b.corners, f64::from(settings.unclip_ratio));
        let Some(b) = mini_box(&grown).filter(|b| b.short_side >= MIN_SIZE + 2.0) else {
            continue;
        };
        if let Some(polygon) = in_photo(&b, geometry) {
            lines.push(TextLine {
                polygon,
                score: score as f32,
                text: None,
                confidence: None,
                angle: None,
            });
        }
    }
    reading_order(&mut lines);
    Ok(lines)
}

/// The box's corners in the photo's pixels, rounded and clipped as `DBPostProcess` then
/// `TextDetector.filter_tag_det_res` do (x in 0..=W-1); none when a side is then 3 pixels or
/// less.
fn in_photo(b: &MiniBox, geometry: &Geometry) -> Option<Vec<[f32; 2]>> {
    let (h, w) = geometry.original;
    let polygon: Vec<[f32; 2]> = b
        .corners
        .iter()
        .map(|&[x, y]| {
            let [x, y] = geometry.to_original(x as f32, y as f32);
            [
                x.round_ties_even().min(w.saturating_sub(1) as f32),
                y.round_ties_even().min(h.saturating_sub(1) as f32),
            ]
        })
        .collect();
    let side = |a: [f32; 2], b: [f32; 2]| ((a[0] - b[0]).hypot(a[1] - b[1])).trunc();
    (side(polygon[0], polygon[1]) > 3.0 && side(polygon[0], polygon[3]) > 3.0).then_some(polygon)
}

/// The probability map, one plane.
struct Plane<'a> {
    values: &'a [f32],
    height: usize,
    width: usize,
}

impl Plane<'_> {
    /// `box_score_slow`: the mean probability over the pixels `cv2.fillPoly` of the contour
    /// covers.
    fn mean_over(&self, pixels: &[usize]) -> f64 {
        if pixels.is_empty() {
            return 0.0;
        }
        pixels
            .iter()
            .map(|&i| f64::from(self.values[i]))
            .sum::<f64>()
            / pixels.len() as f64
    }

    /// `box_score_fast`: the mean probability over the quadrilateral's pixels, its corners
    /// truncated to whole pixels (relative to its bounding box) as `cv2.fillPoly` takes them; a
    /// pixel on the outline counts.
    fn mean_inside(&self, corners: &[[f64; 2]; 4]) -> f64 {
        let clip = |v: f64, n: usize| (v as i64).clamp(0, n as i64 - 1);
        let xs = corners.map(|c| c[0]);
        let ys = corners.map(|c| c[1]);
        let fold = |v: [f64; 4], f: fn(f64, f64) -> f64| v.into_iter().reduce(f).unwrap_or(0.0);
        let x0 = clip(fold(xs, f64::min).floor(), self.width);
        let x1 = clip(fold(xs, f64::max).ceil(), self.width);
        let y0 = clip(fold(ys, f64::min).floor(), self.height);
        let y1 = clip(fold(ys, f64::max).ceil(), self.height);
        let poly = corners.map(|[x, y]| [(x - x0 as f64) as i64, (y - y0 as f64) as i64]);
        let (bw, bh) = ((x1 - x0 + 1) as usize, (y1 - y0 + 1) as usize);
        let mut mask = vec![false; bw * bh];
        for y in 0..bh {
            for x in 0..bw {
                mask[y * bw + x] = inside_or_on(&poly, [x as i64, y as i64]);
            }
        }
        // cv2.fillPoly also draws the outline, as 8-connected lines, whose pixels lie up to
        // half a pixel outside the exact polygon: on a thin text line they are a good share
        // of the pixels counted, so leaving them out raises the score.
        for k in 0..4 {
            for [x, y] in line_pixels(poly[k], poly[(k + 1) % 4]) {
                if (0..bw as i64).contains(&x) && (0..bh as i64).contains(&y) {
                    mask[y as usize * bw + x as usize] = true;
                }
            }
        }
        let (mut sum, mut count) = (0f64, 0usize);
        for y in 0..bh {
            for x in 0..bw {
                if mask[y * bw + x] {
                    let i = (y + y0 as usize) * self.width + x + x0 as usize;
                    sum += f64::from(self.values[i]);
                    count += 1;
                }
            }
        }
        if count == 0 {
            0.0
        } else {
            sum / count as f64
        }
    }
}

/// The pixels of an 8-connected line from `a` to `b`, both ends included (Bresenham).
fn line_pixels(a: [i64; 2], b: [i64; 2]) -> Vec<[i64; 2]> {
    let (dx, dy) = ((b[0] - a[0]).abs(), -(b[1] - a[1]).abs());
    let (sx, sy) = ((b[0] - a[0]).signum(), (b[1] - a[1]).signum());
    let (mut p, mut err) = (a, dx + dy);
    let mut out = Vec::with_capacity((dx - dy + 1) as usize);
    loop {
        out.push(p);
        if p == b {
            return out;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            p[0] += sx;
        }
        if e2 <= dx {
            err += dx;
            p[1] += sy;
        }
    }
}

/// Whether `p` lies inside or on the convex polygon `poly` (either orientation).
fn inside_or_on(poly: &[[i64; 2]; 4], p: [i64; 2]) -> bool {
    let (mut pos, mut neg) = (false, false);
    for k in 0..4 {
        let (a, b) = (poly[k], poly[(k + 1) % 4]);
        let c = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]);
        pos |= c > 0;
        neg |= c < 0;
    }
    if pos && neg {
        return false;
    }
    if pos || neg {
        return true;
    }
    // A polygon flattened to a segment: `p` must lie within its extent.
    let (xs, ys) = (poly.map(|q| q[0]), poly.map(|q| q[1]));
    let within = |v: [i64; 4], t: i64| v.iter().min() <= Some(&t) && Some(&t) <= v.iter().max();
    within(xs, p[0]) && within(ys, p[1])
}

/// `DBPostProcess.unclip`: the box grown by `area * ratio / perimeter` with round corners, as
/// pyclipper offsets it (corners truncated to integers on the way in, arcs of the default 0.25
/// tolerance, every point rounded on the way out).
fn unclip(corners: &[[f64; 2]; 4], ratio: f64) -> Vec<[f64; 2]> {
    let mut area = 0.0;
    let mut perimeter = 0.0;
    for k in 0..4 {
        let (a, b) = (corners[k], corners[(k + 1) % 4]);
        area += a[0] * b[1] - b[0] * a[1];
        perimeter += (b[0] - a[0]).hypot(b[1] - a[1]);
    }
    let area = area.abs() / 2.0;
    if perimeter == 0.0 {
        return corners.to_vec();
    }
    let delta = area * ratio / perimeter;
    let p = corners.map(|[x, y]| [x.trunc(), y.trunc()]);
    // Outward normals need the winding: in image axes (y down) `get_mini_boxes` order is
    // clockwise on screen, a positive shoelace sum; truncation can flatten it, not flip it.
    let signed: f64 = (0..4)
        .map(|k| p[k][0] * p[(k + 1) % 4][1] - p[(k + 1) % 4][0] * p[k][1])
        .sum();
    let outward = if signed >= 0.0 { 1.0 } else { -1.0 };
    let normal = |a: [f64; 2], b: [f64; 2]| {
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len = dx.hypot(dy);
        if len == 0.0 {
            None
        } else {
            Some([outward * dy / len, -outward * dx / len])
        }
    };
    // Clipper: steps per full turn = pi / acos(1 - tolerance / delta).
    let tolerance = 0.25f64.min(delta * 0.25);
    let per_turn =
        (std::f64::consts::PI / (1.0 - tolerance / delta).acos()).min(delta * std::f64::consts::PI);
    let step = 2.0 * std::f64::consts::PI / per_turn.max(1.0);
    let round = |v: f64| v.round();
    let mut out = Vec::new();
    for k in 0..4 {
        let prev = p[(k + 3) % 4];
        let next = p[(k + 1) % 4];
        let (Some(n1), Some(n2)) = (normal(prev, p[k]), normal(p[k], next)) else {
            out.push([round(p[k][0]), round(p[k][1])]);
            continue;
        };
        let turn = (n1[0] * n2[1] - n1[1] * n2[0]).atan2(n1[0] * n2[0] + n1[1] * n2[1]);
        let steps = ((turn.abs() / step).round() as usize).max(1);
        let rotate = turn.signum() * step;
        for i in 0..steps {
            let (s, c) = (rotate * i as f64).sin_cos();
            let n = [n1[0] * c - n1[1] * s, n1[0] * s + n1[1] * c];
            out.push([round(p[k][0] + delta * n[0]), round(p[k][1] + delta * n[1])]);
        }
        out.push([
            round(p[k][0] + delta * n2[0]),
            round(p[k][1] + delta * n2[1]),
        ]);
    }
    out
}

/// PaddleOCR's `sorted_boxes`: by the top-left corner's y then x, then a box whose top-left
/// lies within 10 pixels of the previous one's height and left of it moves before it.
fn reading_order(lines: &mut [TextLine]) {
    let tl = |l: &TextLine| l.polygon[0];
    lines.sort_by(|a, b| {
        let (a, b) = (tl(a), tl(b));
        a[1].total_cmp(&b[1]).then(a[0].total_cmp(&b[0]))
    });
    for i in 0..lines.len().saturating_sub(1) {
        for j in (0..=i).rev() {
            let (a, b) = (tl(&lines[j]), tl(&lines[j + 1]));
            if (b[1] - a[1]).abs() < 10.0 && b[0] < a[0] {
                lines.swap(j, j + 1);
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(h: usize, w: usize) -> Geometry {
        Geometry {
            original: (h, w),
            scale: (1.0, 1.0),
        }
    }

    /// A `h` x `w` map, 0.9 inside the given pixel rectangles (x0, y0, x1, y1 inclusive).
    fn map(h: usize, w: usize, rects: &[(usize, usize, usize, usize)]) -> Tensor {
        let mut v = vec![0.05f32; h * w];
        for &(x0, y0, x1, y1) in rects {
            for y in y0..=y1 {
                for x in x0..=x1 {
                    v[y * w + x] = 0.9;
                }
            }
        }
        Tensor::f32(vec![1, 1, h, w], v)
    }

    /// PaddleOCR's own settings, which the expected boxes here were worked out with.
    fn paddleocr() -> TextDetection {
        TextDetection {
            box_score: 0.6,
            unclip_ratio: 1.5,
            ..TextDetection::default()
        }
    }

    #[test]
    fn a_rectangle_grows_by_area_times_ratio_over_perimeter() {
        // Pixels x 10..=49, y 20..=29: box 39 x 9, distance 1.5 * 351 / 96 = 5.48.
        let t = map(60, 80, &[(10, 20, 49, 29)]);
        let lines = text_regions(&t, &paddleocr(), &geometry(60, 80)).unwrap();
        assert_eq!(lines.len(), 1);
        let p = &lines[0].polygon;
        assert_eq!(
            p,
            &vec![[5.0, 15.0], [54.0, 15.0], [54.0, 34.0], [5.0, 34.0]]
        );
        assert!((lines[0].score - 0.9).abs() < 1e-6);
    }

    #[test]
    fn slivers_and_faint_regions_are_dropped_and_lines_read_in_order() {
        let mut t = map(60, 80, &[(50, 5, 70, 12), (5, 7, 40, 14), (5, 40, 70, 41)]);
        // A faint region: above the threshold, below the box score.
        if let temblor_runtime::TensorData::F32(v) = &mut t.data {
            for y in 30..36 {
                for x in 20..40 {
                    v[y * 80 + x] = 0.4;
                }
            }
        }
        let lines = text_regions(&t, &paddleocr(), &geometry(60, 80)).unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].polygon[0][0] < lines[1].polygon[0][0],
            "left line first"
        );
    }

    #[test]
    fn corners_map_to_the_photo() {
        let t = map(64, 64, &[(10, 20, 49, 29)]);
        let g = Geometry {
            original: (128, 32),
            scale: (0.5, 2.0),
        };
        let lines = text_regions(&t, &paddleocr(), &g).unwrap();
        assert_eq!(lines[0].polygon[0], [2.0, 30.0]);
        assert_eq!(lines[0].polygon[2], [27.0, 68.0]);
    }

    #[test]
    fn a_map_of_another_shape_is_a_usage_error() {
        let t = Tensor::f32(vec![1, 2, 4, 4], vec![0.0; 32]);
        let e = text_regions(&t, &TextDetection::default(), &geometry(4, 4)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
