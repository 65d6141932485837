//! Image preprocessing: decode a PNG, resize, normalize and lay out as an `[1, 3, H, W]` f32
//! tensor, as the exporters of detection models expect (`(pixel / 255 - mean) / std`, channels
//! in RGB or BGR order).

use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PreprocessError {
    pub path: String,
    pub message: String,
}

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Emit channels as B, G, R (PaddleOCR, OpenCV-trained models) instead of R, G, B.
    pub bgr: bool,
}

/// Decodes a PNG of any bit depth and colour type into 8-bit RGB.
pub fn load_png(path: &Path) -> Result<Image, PreprocessError> {
    let fail = |message: String| PreprocessError {
        path: path.display().to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder
        .read_info()
        .map_err(|e| fail(format!("not a PNG image: {e}")))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| fail(format!("corrupt PNG: {e}")))?;
    let (width, height) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let pixels = buf[..info.buffer_size()].chunks_exact(channels);
    let rgb: Vec<u8> = match info.color_type {
        png::ColorType::Grayscale | png::ColorType::GrayscaleAlpha => {
            pixels.flat_map(|p| [p[0]; 3]).collect()
        }
        png::ColorType::Rgb | png::ColorType::Rgba => {
            pixels.flat_map(|p| [p[0], p[1], p[2]]).collect()
        }
        png::ColorType::Indexed => return Err(fail("palette not expanded".into())),
    };
    Ok(Image { width, height, rgb })
}

/// Bilinear resize with half-pixel centres (OpenCV's `INTER_LINEAR` convention).
pub fn resize_bilinear(img: &Image, width: usize, height: usize) -> Image {
    let sx = img.width as f32 / width as f32;
    let sy = img.height as f32 / height as f32;
    let mut rgb = vec![0u8; width * height * 3];
    let sample = |x: usize, y: usize, c: usize| img.rgb[(y * img.width + x) * 3 + c] as f32;
    for oy in 0..height {
        let fy = ((oy as f32 + 0.5) * sy - 0.5).clamp(0.0, (img.height - 1) as f32);
        let (y0, wy) = (fy.floor() as usize, fy - fy.floor());
        let y1 = (y0 + 1).min(img.height - 1);
        for ox in 0..width {
            let fx = ((ox as f32 + 0.5) * sx - 0.5).clamp(0.0, (img.width - 1) as f32);
            let (x0, wx) = (fx.floor() as usize, fx - fx.floor());
            let x1 = (x0 + 1).min(img.width - 1);
            for c in 0..3 {
                let top = sample(x0, y0, c) * (1.0 - wx) + sample(x1, y0, c) * wx;
                let bottom = sample(x0, y1, c) * (1.0 - wx) + sample(x1, y1, c) * wx;
                let v = top * (1.0 - wy) + bottom * wy;
                rgb[(oy * width + ox) * 3 + c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Image { width, height, rgb }
}

/// Bicubic resize as OpenCV's `INTER_CUBIC` computes it: half-pixel centres, the Keys kernel
/// with a = -0.75, edge pixels replicated, each channel rounded to 8 bits. PaddleDetection's
/// exported configs ask for it (`interp: 2`).
pub fn resize_cubic(img: &Image, width: usize, height: usize) -> Image {
    let taps = |out: usize, len: usize| -> Vec<([usize; 4], [f32; 4])> {
        let scale = len as f32 / out as f32;
        (0..out)
            .map(|o| {
                let f = (o as f32 + 0.5) * scale - 0.5;
                let base = f.floor();
                let t = f - base;
                let index = |k: i64| (base as i64 + k).clamp(0, len as i64 - 1) as usize;
                ([index(-1), index(0), index(1), index(2)], cubic_weights(t))
            })
            .collect()
    };
    let (xs, ys) = (taps(width, img.width), taps(height, img.height));
    let mut rgb = vec![0u8; width * height * 3];
    let sample = |x: usize, y: usize, c: usize| img.rgb[(y * img.width + x) * 3 + c] as f32;
    for (oy, (yi, wy)) in ys.iter().enumerate() {
        for (ox, (xi, wx)) in xs.iter().enumerate() {
            for c in 0..3 {
                let mut v = 0.0;
                for (&y, &wy) in yi.iter().zip(wy) {
                    let row: f32 = xi.iter().zip(wx).map(|(&x, &w)| sample(x, y, c) * w).sum();
                    v += row * wy;
                }
                rgb[(oy * width + ox) * 3 + c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Image { width, height, rgb }
}

/// The four weights of the Keys cubic kernel (a = -0.75, OpenCV's choice) at offset `t` in [0, 1).
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let w0 = far(t + 1.0);
    let w1 = near(t);
    let w2 = near(1.0 - t);
    [w0, w1, w2, 1.0 - w0 - w1 - w2]
}

/// Nearest-neighbour resize as OpenCV's `INTER_NEAREST` computes it: source index
/// `floor(dst * in / out)`, no half-pixel shift.
pub fn resize_nearest(img: &Image, width: usize, height: usize) -> Image {
    let pick = |o: usize, out: usize, len: usize| ((o * len) / out).min(len - 1);
    let mut rgb = Vec::with_capacity(width * height * 3);
    for oy in 0..height {
        let y = pick(oy, height, img.height);
        for ox in 0..width {
            let at = (y * img.width + pick(ox, width, img.width)) * 3;
            rgb.extend_from_slice(&img.rgb[at..at + 3]);
        }
    }
    Image { width, height, rgb }
}

/// `[1, 3, H, W]` values, channel-major.
pub fn to_chw(img: &Image, norm: &Normalize) -> Vec<f32> {
    let plane = img.width * img.height;
    let mut out = vec![0f32; 3 * plane];
    for (i, px) in img.rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            let src = if norm.bgr { 2 - c } else { c };
            out[c * plane + i] = (px[src] as f32 / 255.0 - norm.mean[c]) / norm.std[c];
        }
    }
    out
}
