//! A text region cut out of the photo and stood upright, as PaddleOCR's `get_rotate_crop_image`:
//! the quadrilateral warped onto a rectangle as wide as its longer horizontal edge and as tall
//! as its longer vertical edge (bicubic, edge pixels repeated),
//! turned a quarter counter-clockwise when at least 1.5 times taller than wide (a vertical line).

use temblor_ir::{Error, Result};
use temblor_ops_lib::preprocess::Image;

/// The upright crop of `quad` (corners clockwise from the top-left, in `image`'s pixels).
pub fn rotate_crop(image: &Image, quad: &[[f32; 2]]) -> Result<Image> {
    let &[p0, p1, p2, p3] = quad else {
        return Err(Error::usage(format!(
            "a text region has 4 corners; this one has {}",
            quad.len()
        )));
    };
    if image.width == 0 || image.height == 0 {
        return Err(Error::usage("cannot crop an empty image"));
    }
    let p = [p0, p1, p2, p3].map(|[x, y]| [f64::from(x), f64::from(y)]);
    let dist = |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).hypot(a[1] - b[1]);
    // Python's int() of the float32 lengths: truncation.
    let width = dist(p[0], p[1]).max(dist(p[2], p[3])) as usize;
    let height = dist(p[0], p[3]).max(dist(p[1], p[2])) as usize;
    if width == 0 || height == 0 {
        return Err(Error::usage(format!(
            "the text region {quad:?} is {width}x{height} pixels: nothing to read"
        )));
    }
    let h = Homography::unit_square_to(p);
    let mut rgb = vec![0u8; width * height * 3];
    for y in 0..height {
        for x in 0..width {
            let [sx, sy] = h.apply(x as f64 / width as f64, y as f64 / height as f64);
            let px = bicubic(image, sx, sy);
            rgb[(y * width + x) * 3..][..3].copy_from_slice(&px);
        }
    }
    let crop = Image { width, height, rgb };
    Ok(if height as f64 / width as f64 >= 1.5 {
        rotate_90_counter_clockwise(&crop)
    } else {
        crop
    })
}

/// The image turned half a turn (PaddleOCR's text classifier's "180" label undone).
pub fn rotate_180(image: &Image) -> Image {
    let mut rgb = Vec::with_capacity(image.rgb.len());
    for px in image.rgb.chunks_exact(3).rev() {
        rgb.extend_from_slice(px);
    }
    Image {
        width: image.width,
        height: image.height,
        rgb,
    }
}

/// `np.rot90`: out[i][j] = in[j][W - 1 - i].
fn rotate_90_counter_clockwise(image: &Image) -> Image {
    let (w, h) = (image.width, image.height);
    let mut rgb = Vec::with_capacity(image.rgb.len());
    for i in 0..w {
        for j in 0..h {
            rgb.extend_from_slice(&image.rgb[(j * w + w - 1 - i) * 3..][..3]);
        }
    }
    Image {
        width: h,
        height: w,
        rgb,
    }
}

/// The projective map of the unit square onto a quadrilateral (Heckbert's closed form):
/// (0,0), (1,0), (1,1), (0,1) go to its corners in order.
struct Homography {
    m: [f64; 8],
}

impl Homography {
    fn unit_square_to(q: [[f64; 2]; 4]) -> Homography {
        let [[x0, y0], [x1, y1], [x2, y2], [x3, y3]] = q;
        let (sx, sy) = (x0 - x1 + x2 - x3, y0 - y1 + y2 - y3);
        let (dx1, dx2, dy1, dy2) = (x1 - x2, x3 - x2, y1 - y2, y3 - y2);
        let den = dx1 * dy2 - dx2 * dy1;
        // A parallelogram (or a quadrilateral too flat to tell) is an affine map.
        let (g, h) = if den.abs() < 1e-12 || (sx.abs() < 1e-12 && sy.abs() < 1e-12) {
            (0.0, 0.0)
        } else {
            ((sx * dy2 - dx2 * sy) / den, (dx1 * sy - sx * dy1) / den)
        };
        Homography {
            m: [
                x1 - x0 + g * x1,
                x3 - x0 + h * x3,
                x0,
                y1 - y0 + g * y1,
                y3 - y0 + h * y3,
                y0,
                g,
                h,
            ],
        }
    }

    fn apply(&self, u: f64, v: f64) -> [f64; 2] {
        let [a, b, c, d, e, f, g, h] = self.m;
        let w = g * u + h * v + 1.0;
        [(a * u + b * v + c) / w, (d * u + e * v + f) / w]
    }
}

/// OpenCV's cubic convolution kernel (`INTER_CUBIC`, a = -0.75): the weights of the four
/// pixels at offsets -1, 0, 1, 2 from the one at or left of a point `t` past it.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let near = |d: f64| ((A + 2.0) * d - (A + 3.0)) * d * d + 1.0;
    let far = |d: f64| ((A * d - 5.0 * A) * d + 8.0 * A) * d - 4.0 * A;
    let (w0, w1, w2) = (far(t + 1.0), near(t), near(1.0 - t));
    [w0, w1, w2, 1.0 - w0 - w1 - w2]
}

/// The image's colour at (x, y), by cubic convolution over the 4 x 4 pixel centres around it,
/// pixels outside repeating the nearest edge pixel (OpenCV's `BORDER_REPLICATE`).
fn bicubic(image: &Image, x: f64, y: f64) -> [u8; 3] {
    let (w, h) = (image.width as i64, image.height as i64);
    let (fx, fy) = (x.floor(), y.floor());
    let (wx, wy) = (cubic_weights(x - fx), cubic_weights(y - fy));
    let (x0, y0) = (fx as i64 - 1, fy as i64 - 1);
    let mut sum = [0.0f64; 3];
    for (j, wy) in wy.iter().enumerate() {
        let py = (y0 + j as i64).clamp(0, h - 1) as usize;
        for (i, wx) in wx.iter().enumerate() {
            let px = (x0 + i as i64).clamp(0, w - 1) as usize;
            let pixel = &image.rgb[(py * image.width + px) * 3..][..3];
            for (s, &v) in sum.iter_mut().zip(pixel) {
                *s += wx * wy * f64::from(v);
            }
        }
    }
    sum.map(|v| v.round().clamp(0.0, 255.0) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w` x `h` image whose pixel (x, y) is (x, y, 7).
    fn ramp(w: usize, h: usize) -> Image {
        let rgb = (0..h)
            .flat_map(|y| (0..w).flat_map(move |x| [x as u8, y as u8, 7]))
            .collect();
        Image {
            width: w,
            height: h,
            rgb,
        }
    }

    #[test]
    fn an_upright_rectangle_is_cut_as_is() {
        let img = ramp(50, 40);
        let c = rotate_crop(
            &img,
            &[[10.0, 5.0], [30.0, 5.0], [30.0, 15.0], [10.0, 15.0]],
        )
        .unwrap();
        assert_eq!((c.width, c.height), (20, 10));
        assert_eq!(&c.rgb[..3], &[10, 5, 7]);
        let last = (9 * 20 + 19) * 3;
        assert_eq!(&c.rgb[last..last + 3], &[29, 14, 7]);
    }

    #[test]
    fn a_turned_quadrilateral_is_stood_upright() {
        // The rectangle x 10..30, y 5..15 given from its top-right corner: the crop is the
        // region read turned a quarter (width 10, height 20), then turned back by the 1.5 rule.
        let img = ramp(50, 40);
        let c = rotate_crop(
            &img,
            &[[30.0, 5.0], [30.0, 15.0], [10.0, 15.0], [10.0, 5.0]],
        )
        .unwrap();
        assert_eq!((c.width, c.height), (20, 10));
        // The warp (10 wide, 20 tall) maps its (x, y) to the photo's (30 - y, 5 + x); after
        // np.rot90 the crop's top-left is the warp's (9, 0): the photo's (30, 14).
        assert_eq!(&c.rgb[..3], &[30, 14, 7]);
    }

    #[test]
    fn half_turn_and_bad_regions() {
        let img = ramp(3, 2);
        let r = rotate_180(&img);
        assert_eq!(&r.rgb[..3], &[2, 1, 7]);
        assert!(rotate_crop(&img, &[[0.0, 0.0]; 3]).is_err());
        let flat = rotate_crop(&img, &[[1.0, 1.0]; 4])
            .err()
            .map(|e| e.exit_code());
        assert_eq!(flat, Some(2));
    }
}
