//! The point sets whose hulls OpenCV's `findContours(RETR_LIST)` contours have: one per region of
//! the binary map (8-connected, as OpenCV follows outer borders) and one per hole in a region
//! (4-connected background enclosed by it, whose border is the region's pixels beside it).
//!
//! Only each contour's convex hull matters downstream (the minimum-area rectangle), so no border
//! is followed: a region's pixels have the hull of its outer border, and a hole's border is the
//! set of foreground pixels 4-adjacent to the hole.

/// A contour: the points its hull is taken from, and the pixels (indices into the map) that
/// `cv2.fillPoly` of it covers, for PaddleOCR's `box_score_slow`: a region's own pixels (the
/// holes in it left out, a small difference on text), a hole's pixels and its border.
pub(crate) struct Contour {
    pub points: Vec<[f64; 2]>,
    pub filled: Vec<usize>,
}

/// Each region's then each hole's contour, regions in raster order of their first pixel, as
/// many as `limit`; points are pixel centres (x, y).
pub(crate) fn contour_points(
    bitmap: &[bool],
    height: usize,
    width: usize,
    limit: usize,
) -> Vec<Contour> {
    let mut sets = components(bitmap, height, width, true, limit);
    if sets.len() < limit {
        let holes = components(bitmap, height, width, false, limit - sets.len());
        sets.extend(holes);
    }
    sets
}

/// Foreground regions (`fg`, 8-connected: their leftmost and rightmost pixel per row) or
/// enclosed background regions (4-connected, not touching the map's edge: the foreground pixels
/// around them).
fn components(
    bitmap: &[bool],
    height: usize,
    width: usize,
    fg: bool,
    limit: usize,
) -> Vec<Contour> {
    let mut seen = vec![false; bitmap.len()];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    let neighbours: &[(isize, isize)] = if fg {
        &[
            (-1, -1),
            (0, -1),
            (1, -1),
            (-1, 0),
            (1, 0),
            (-1, 1),
            (0, 1),
            (1, 1),
        ]
    } else {
        &[(0, -1), (-1, 0), (1, 0), (0, 1)]
    };
    for start in 0..bitmap.len() {
        if out.len() >= limit {
            break;
        }
        if seen[start] || bitmap[start] != fg {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut pixels = Vec::new();
        let mut touches_edge = false;
        while let Some(i) = stack.pop() {
            let (x, y) = ((i % width) as isize, (i / width) as isize);
            pixels.push((x, y));
            for &(dx, dy) in neighbours {
                let (nx, ny) = (x + dx, y + dy);
                if nx < 0 || ny < 0 || nx >= width as isize || ny >= height as isize {
                    touches_edge = true;
                    continue;
                }
                let j = ny as usize * width + nx as usize;
                if !seen[j] && bitmap[j] == fg {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        let index = |&(x, y): &(isize, isize)| y as usize * width + x as usize;
        if fg {
            out.push(Contour {
                points: row_extremes(&pixels, height),
                filled: pixels.iter().map(index).collect(),
            });
        } else if !touches_edge {
            // The hole's border: its 4-neighbours, all foreground as the hole is enclosed.
            let mut border: Vec<[f64; 2]> = pixels
                .iter()
                .flat_map(|&(x, y)| [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)])
                .filter(|&(x, y)| bitmap[y as usize * width + x as usize])
                .map(|(x, y)| [x as f64, y as f64])
                .collect();
            border.sort_by(|a, b| a[1].total_cmp(&b[1]).then(a[0].total_cmp(&b[0])));
            border.dedup();
            let mut filled: Vec<usize> = pixels.iter().map(index).collect();
            filled.extend(border.iter().map(|&[x, y]| y as usize * width + x as usize));
            out.push(Contour {
                points: border,
                filled,
            });
        }
    }
    out
}

/// Per row, the leftmost and rightmost pixel: the same convex hull, far fewer points.
fn row_extremes(pixels: &[(isize, isize)], height: usize) -> Vec<[f64; 2]> {
    let mut span = vec![(isize::MAX, isize::MIN); height];
    for &(x, y) in pixels {
        let s = &mut span[y as usize];
        *s = (s.0.min(x), s.1.max(x));
    }
    span.iter()
        .enumerate()
        .filter(|(_, s)| s.0 <= s.1)
        .flat_map(|(y, s)| [[s.0 as f64, y as f64], [s.1 as f64, y as f64]])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        let bits = rows
            .iter()
            .flat_map(|r| r.chars().map(|c| c == '#'))
            .collect();
        (bits, rows.len(), rows[0].len())
    }

    #[test]
    fn regions_are_8_connected_and_enclosed_holes_count() {
        let (b, h, w) = map(&["#....####", ".#...#..#", ".....####", "##......."]);
        let sets = contour_points(&b, h, w, 100);
        // Regions: the diagonal pair, the ring, the bottom-left bar; then the ring's hole.
        assert_eq!(sets.len(), 4);
        assert_eq!(
            sets[0].points,
            vec![[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
        );
        assert_eq!(sets[0].filled, vec![0, w + 1]);
        assert_eq!(sets[3].filled.len(), 2 + 6);
        assert_eq!(
            sets[3].points,
            vec![
                [6.0, 0.0],
                [7.0, 0.0],
                [5.0, 1.0],
                [8.0, 1.0],
                [6.0, 2.0],
                [7.0, 2.0]
            ]
        );
        assert_eq!(contour_points(&b, h, w, 2).len(), 2);
    }
}
