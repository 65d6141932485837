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
