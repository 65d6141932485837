//! The smallest rectangle around a point set, as OpenCV's `minAreaRect`, and its corners in the
//! order PaddleOCR's `get_mini_boxes` gives them.

/// A rotated rectangle: its corners clockwise from the top-left (`get_mini_boxes`' order) and
/// its shorter side.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MiniBox {
    pub corners: [[f64; 2]; 4],
    pub short_side: f64,
}

/// The convex hull of `points`, counter-clockwise in image axes (y down), no collinear points
/// (Andrew's monotone chain).
pub(crate) fn convex_hull(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut p: Vec<[f64; 2]> = points.to_vec();
    p.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    p.dedup();
    if p.len() < 3 {
        return p;
    }
    let cross = |o: [f64; 2], a: [f64; 2], b: [f64; 2]| {
        (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
    };
    let mut hull: Vec<[f64; 2]> = Vec::with_capacity(2 * p.len());
    for pass in 0..2 {
        let start = hull.len();
        let order: Box<dyn Iterator<Item = &[f64; 2]>> = if pass == 0 {
            Box::new(p.iter())
        } else {
            Box::new(p.iter().rev())
        };
        for &q in order {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], q) <= 0.0
            {
                hull.pop();
            }
            hull.push(q);
        }
        hull.pop();
    }
    hull
}

/// The minimum-area rectangle around `points` (rotating calipers: one side lies on a hull
/// edge), ordered as `get_mini_boxes`; `None` for no points.
pub(crate) fn mini_box(points: &[[f64; 2]]) -> Option<MiniBox> {
    let hull = convex_hull(points);
    let first = *hull.first()?;
    // (area, corners, sides) of the best rectangle so far; a single point is a 0x0 rectangle.
    let mut best = (f64::INFINITY, [first; 4], (0.0, 0.0));
    let n = hull.len();
    for i in 0..n {
        let (a, b) = (hull[i], hull[(i + 1) % n]);
        let len = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
        if len == 0.0 {
            continue;
        }
        let u = [(b[0] - a[0]) / len, (b[1] - a[1]) / len];
        let v = [-u[1], u[0]];
        let (mut u0, mut u1, mut v0, mut v1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in &hull {
            let (pu, pv) = (p[0] * u[0] + p[1] * u[1], p[0] * v[0] + p[1] * v[1]);
            (u0, u1, v0, v1) = (u0.min(pu), u1.max(pu), v0.min(pv), v1.max(pv));
        }
        let area = (u1 - u0) * (v1 - v0);
        if area < best.0 {
            let at = |s: f64, t: f64| [s * u[0] + t * v[0], s * u[1] + t * v[1]];
            best = (
                area,
                [at(u0, v0), at(u1, v0), at(u1, v1), at(u0, v1)],
                (u1 - u0, v1 - v0),
            );
        }
    }
    let (_, corners, (w, h)) = best;
    Some(MiniBox {
        corners: paddle_order(corners),
        short_side: w.min(h),
    })
}

/// `get_mini_boxes`' order: the corners sorted by x; of the left two the upper is first and the
/// lower last, of the right two the upper second and the lower third.
fn paddle_order(corners: [[f64; 2]; 4]) -> [[f64; 2]; 4] {
    let mut p = corners;
    // Python's sort is stable, as is `sort_by`.
    p.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let (first, last) = if p[1][1] > p[0][1] { (0, 1) } else { (1, 0) };
    let (second, third) = if p[3][1] > p[2][1] { (2, 3) } else { (3, 2) };
    [p[first], p[second], p[third], p[last]]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points filling a `w` x `h` rectangle turned by `angle` about (50, 40), sampled densely.
    fn rotated_rect(w: f64, h: f64, angle: f64) -> Vec<[f64; 2]> {
        let (s, c) = angle.sin_cos();
        let mut pts = Vec::new();
        for i in 0..=20 {
            for j in 0..=10 {
                let (x, y) = (w * (i as f64 / 20.0 - 0.5), h * (j as f64 / 10.0 - 0.5));
                pts.push([50.0 + x * c - y * s, 40.0 + x * s + y * c]);
            }
        }
        pts
    }

    #[test]
    fn a_rotated_rectangle_is_found_with_its_corners_clockwise_from_top_left() {
        let b = mini_box(&rotated_rect(40.0, 10.0, 0.3)).unwrap();
        assert!((b.short_side - 10.0).abs() < 1e-9, "{b:?}");
        let side = |i: usize, j: usize| {
            let (p, q) = (b.corners[i], b.corners[j]);
            ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt()
        };
        assert!((side(0, 1) - 40.0).abs() < 1e-9 && (side(1, 2) - 10.0).abs() < 1e-9);
        // Turned clockwise on screen by 0.3 rad: the top-left corner is the leftmost.
        let (s, c) = 0.3f64.sin_cos();
        let tl = [50.0 - 20.0 * c + 5.0 * s, 40.0 - 20.0 * s - 5.0 * c];
        assert!((b.corners[0][0] - tl[0]).abs() < 1e-9 && (b.corners[0][1] - tl[1]).abs() < 1e-9);
        assert!(b.corners[1][0] > b.corners[0][0] && b.corners[2][1] > b.corners[1][1]);
    }

    #[test]
    fn axis_aligned_pixels_span_centre_to_centre() {
        // Pixels x 10..=20, y 5..=8: OpenCV's rectangle is 10 x 3 (pixel centres).
        let pts: Vec<[f64; 2]> = (10..=20)
            .flat_map(|x| (5..=8).map(move |y| [x as f64, y as f64]))
            .collect();
        let b = mini_box(&pts).unwrap();
        assert_eq!(b.short_side, 3.0);
        assert_eq!(
            b.corners,
            [[10.0, 5.0], [20.0, 5.0], [20.0, 8.0], [10.0, 8.0]]
        );
    }

    #[test]
    fn degenerate_sets() {
        assert!(mini_box(&[]).is_none());
        assert_eq!(mini_box(&[[3.0, 4.0]]).unwrap().short_side, 0.0);
        assert_eq!(mini_box(&[[0.0, 0.0], [5.0, 0.0]]).unwrap().short_side, 0.0);
    }
}
