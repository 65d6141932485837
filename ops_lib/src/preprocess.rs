//! Image preprocessing: decode a JPEG or PNG, resize, normalize and lay out as an
//! `[1, 3, H, W]` f32 tensor, as the exporters of detection models expect
//! (`(pixel / 255 - mean) / std`, channels in RGB or BGR order).

use image::ImageDecoder;
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

/// The most pixels an image may have: 64 Mi (8192 x 8192), above every camera's full-size
/// photo bar the 100+ megapixel sensors. The largest form a decoder may hold (16-bit RGBA, 8
/// bytes a pixel) is then 512 MiB, the decoders' allocation limit below.
pub const MAX_PIXELS: u64 = 1 << 26;

/// The largest image file read (whole, as the JPEG decoder needs it): the samples of a 16-bit
/// RGBA image of [`MAX_PIXELS`], stored without compression; a photo is far smaller.
const MAX_FILE_BYTES: u64 = MAX_PIXELS * 8;

/// Decodes a JPEG or a PNG, recognized by content, not by name, into 8-bit RGB: any bit depth
/// (16-bit samples rounded to 8), gray, palette, an alpha channel dropped; a JPEG's EXIF
/// orientation applied, so the pixels stand as the camera showed them. The size in the header
/// is checked against [`MAX_PIXELS`] before any pixel is decoded.
pub fn load_image(path: &Path) -> Result<Image, PreprocessError> {
    let fail = |message: String| PreprocessError {
        path: path.display().to_string(),
        message,
    };
    let bytes = read_bounded(path).map_err(fail)?;
    let (format, name) = match image::guess_format(&bytes) {
        Ok(f @ image::ImageFormat::Jpeg) => (f, "JPEG"),
        Ok(f @ image::ImageFormat::Png) => (f, "PNG"),
        _ => {
            return Err(fail(format!(
                "not a JPEG or PNG image: {}",
                what_it_is(&bytes)
            )))
        }
    };
    let too_large = |(width, height): (u32, u32)| {
        (u64::from(width) * u64::from(height) > MAX_PIXELS).then(|| {
            fail(format!(
                "{width}x{height} pixels is too large: temblor decodes at most {MAX_PIXELS} \
                 pixels"
            ))
        })
    };
    // A PNG's size is refused from its IHDR alone, before the decoder reads further chunks.
    if let Some(e) = png_size(&bytes).and_then(too_large) {
        return Err(e);
    }
    if format == image::ImageFormat::Jpeg && !jpeg_complete(&bytes) {
        return Err(fail(
            "truncated JPEG: the data ends before the end-of-image marker".into(),
        ));
    }
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(&bytes), format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| fail(format!("corrupt {name} header: {e}")))?;
    if let Some(e) = too_large(decoder.dimensions()) {
        return Err(e);
    }
    let orientation = decoder
        .orientation()
        .map_err(|e| fail(format!("corrupt {name} metadata: {e}")))?;
    let mut img = image::DynamicImage::from_decoder(decoder)
        .map_err(|e| fail(format!("corrupt or truncated {name}: {e}")))?;
    img.apply_orientation(orientation);
    let rgb = img.into_rgb8();
    Ok(Image {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        rgb: rgb.into_raw(),
    })
}

/// Width and height from a PNG's IHDR, which the format requires to be the first chunk.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let ihdr = bytes.get(8..24)?;
    if &ihdr[4..8] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&ihdr[8..12]), be(&ihdr[12..16])))
}

/// Whether a JPEG reaches its end-of-image marker (FF D9). The decoder, lenient as browsers
/// are, fills what a cut-off file lacks with gray, so a truncated photo would pass unnoticed.
/// Segments are skipped by their length (so the marker of an EXIF thumbnail is not taken for
/// the image's), entropy-coded bytes one by one: there an FF is always followed by 00 (a
/// stuffed byte), a restart marker or the next segment's marker.
fn jpeg_complete(bytes: &[u8]) -> bool {
    let mut at = 2; // after SOI
    while at + 1 < bytes.len() {
        if bytes[at] != 0xFF {
            at += 1;
            continue;
        }
        match bytes[at + 1] {
            0xD9 => return true,
            0xFF => at += 1,                      // fill byte
            0x00 | 0x01 | 0xD0..=0xD7 => at += 2, // stuffed byte, TEM, restart: no length
            _ => {
                let Some(len) = bytes.get(at + 2..at + 4) else {
                    return false;
                };
                at += 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
            }
        }
    }
    false
}

/// The file's bytes, refusing an empty file and one over [`MAX_FILE_BYTES`] before reading.
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    if len == 0 {
        return Err("empty file (0 bytes), not an image".into());
    }
    if len > MAX_FILE_BYTES {
        return Err(format!(
            "{len} bytes is too large for an image file (at most {MAX_FILE_BYTES})"
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_FILE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(bytes)
}

/// A short description of content that is not an image, for the error: text or binary, and
/// how it begins.
fn what_it_is(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(16)];
    if std::str::from_utf8(bytes).is_ok() {
        let text: String = String::from_utf8_lossy(head).escape_default().collect();
        format!("it holds text, starting \"{text}\"")
    } else {
        let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
        format!("it starts with bytes {}", hex.join(" "))
    }
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
