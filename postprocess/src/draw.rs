//! The answer drawn on the photo: each object's box in its class's colour with its label and
//! score on a filled tab above it, its mask as a translucent overlay of the same colour, and
//! each text region's outline. Text is drawn with a public-domain 8x8 bitmap font (`font8x8`),
//! so drawing needs no font file; characters outside ASCII are shown as `?`.

use crate::{Answer, Mask};
use std::path::Path;
use temblor_ir::{Error, Result};
use temblor_ops_lib::preprocess::Image;

/// Box outlines are this many pixels wide, inside the box.
pub const LINE: usize = 2;
/// How much of a mask's colour shows over the photo.
const MASK_ALPHA: f32 = 0.45;
/// Text regions are outlined in this colour.
pub const TEXT_COLOUR: [u8; 3] = [255, 0, 255];

/// Twenty colours that stay apart from each other and from most photos (Ultralytics' palette).
const PALETTE: [[u8; 3]; 20] = [
    [255, 56, 56],
    [255, 157, 151],
    [255, 112, 31],
    [255, 178, 29],
    [207, 210, 49],
    [72, 249, 10],
    [146, 204, 23],
    [61, 219, 134],
    [26, 147, 52],
    [0, 212, 187],
    [44, 153, 168],
    [0, 194, 255],
    [52, 69, 147],
    [100, 115, 255],
    [0, 24, 236],
    [132, 56, 255],
    [82, 0, 133],
    [203, 56, 255],
    [255, 149, 200],
    [255, 55, 199],
];

/// The colour objects of `class` are drawn in.
pub fn colour(class: i64) -> [u8; 3] {
    PALETTE[class.rem_euclid(PALETTE.len() as i64) as usize]
}

/// Draws `answer` onto `image` (the photo as decoded).
pub fn draw(image: &mut Image, answer: &Answer) {
    for o in &answer.objects {
        if let Some(mask) = &o.mask {
            overlay(image, mask, colour(o.class));
        }
    }
    for o in &answer.objects {
        let c = colour(o.class);
        let [x1, y1, x2, y2] = o.bbox.map(|v| v.round().max(0.0) as usize);
        rectangle(image, (x1, y1), (x2, y2), c);
        let name = o
            .label
            .clone()
            .unwrap_or_else(|| format!("class {}", o.class));
        tab(image, (x1, y1), &format!("{name} {:.2}", o.score), c);
    }
    for line in &answer.text {
        let n = line.polygon.len();
        for i in 0..n {
            let (a, b) = (line.polygon[i], line.polygon[(i + 1) % n]);
            segment(image, a, b, TEXT_COLOUR);
        }
    }
    if let Some(best) = answer.classes.first() {
        let name = best
            .label
            .clone()
            .unwrap_or_else(|| format!("class {}", best.class));
        tab(
            image,
            (0, GLYPH + 2),
            &format!("{name} {:.2}", best.score),
            colour(best.class),
        );
    }
}

/// Writes `image` as a PNG, through a temporary name so a failure leaves no partial file.
pub fn save_png(image: &Image, path: &Path) -> Result<()> {
    let buffer =
        image::RgbImage::from_raw(image.width as u32, image.height as u32, image.rgb.clone())
            .ok_or_else(|| Error::internal("an image buffer of the wrong size"))?;
    let partial = path.with_extension("png.partial");
    buffer
        .save_with_format(&partial, image::ImageFormat::Png)
        .map_err(|e| Error::internal(format!("{}: {e}", partial.display())))?;
    std::fs::rename(&partial, path).map_err(|e| Error::internal(format!("{}: {e}", path.display())))
}

fn put(image: &mut Image, x: usize, y: usize, c: [u8; 3]) {
    if x < image.width && y < image.height {
        let i = (y * image.width + x) * 3;
        image.rgb[i..i + 3].copy_from_slice(&c);
    }
}

/// A box outline `LINE` pixels wide, drawn inside (x1, y1)..(x2, y2), clipped to the image.
fn rectangle(image: &mut Image, (x1, y1): (usize, usize), (x2, y2): (usize, usize), c: [u8; 3]) {
    let x2 = x2.min(image.width).max(x1 + 1);
    let y2 = y2.min(image.height).max(y1 + 1);
    for t in 0..LINE {
        for x in x1..x2 {
            put(image, x, y1 + t, c);
            put(image, x, (y2 - 1).saturating_sub(t), c);
        }
        for y in y1..y2 {
            put(image, x1 + t, y, c);
            put(image, (x2 - 1).saturating_sub(t), y, c);
        }
    }
}

fn overlay(image: &mut Image, mask: &Mask, c: [u8; 3]) {
    for y in 0..mask.height {
        for x in 0..mask.width {
            let (px, py) = (mask.left + x, mask.top + y);
            if mask.bits[y * mask.width + x] == 0 || px >= image.width || py >= image.height {
                continue;
            }
            let i = (py * image.width + px) * 3;
            for (under, &over) in image.rgb[i..i + 3].iter_mut().zip(&c) {
                let u = f32::from(*under);
                *under = (u + (f32::from(over) - u) * MASK_ALPHA).round() as u8;
            }
        }
    }
}

/// A line one pixel wide from `a` to `b` (photo pixels), by DDA.
fn segment(image: &mut Image, a: [f32; 2], b: [f32; 2], c: [u8; 3]) {
    let steps = (b[0] - a[0]).abs().max((b[1] - a[1]).abs()).ceil().max(1.0) as usize;
    for s in 0..=steps {
        let t = s as f32 / steps as f32;
        let (x, y) = (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t);
        if x >= 0.0 && y >= 0.0 {
            put(image, x.round() as usize, y.round() as usize, c);
        }
    }
}

/// Glyph height and width, in pixels.
const GLYPH: usize = 8;

/// `text` in white on a tab of colour `c` whose bottom-left corner is at (x, y), moved down
/// into the box when there is no room above it and left when it would leave the image.
fn tab(image: &mut Image, (x, y): (usize, usize), text: &str, c: [u8; 3]) {
    let chars: Vec<char> = text.chars().collect();
    let (w, h) = (chars.len() * GLYPH + 2, GLYPH + 2);
    let top = if y >= h { y - h } else { y };
    let left = x.min(image.width.saturating_sub(w));
    for ty in top..top + h {
        for tx in left..left + w {
            put(image, tx, ty, c);
        }
    }
    for (i, ch) in chars.iter().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY
            .get(*ch as usize)
            .unwrap_or(&font8x8::legacy::BASIC_LEGACY[usize::from(b'?')]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..GLYPH {
                if bits & (1 << col) != 0 {
                    put(
                        image,
                        left + 1 + i * GLYPH + col,
                        top + 1 + row,
                        [255, 255, 255],
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Object;

    #[test]
    fn a_box_is_outlined_in_its_class_colour_and_its_inside_is_untouched() {
        let mut image = Image {
            width: 100,
            height: 80,
            rgb: vec![0; 100 * 80 * 3],
        };
        let answer = Answer {
            objects: vec![Object {
                class: 3,
                label: Some("cup".into()),
                score: 0.9,
                bbox: [20.0, 30.0, 70.0, 75.0],
                mask: None,
            }],
            ..Answer::default()
        };
        draw(&mut image, &answer);
        let at = |x: usize, y: usize| {
            let i = (y * 100 + x) * 3;
            [image.rgb[i], image.rgb[i + 1], image.rgb[i + 2]]
        };
        for (x, y) in [(45, 30), (45, 74), (20, 50), (69, 50)] {
            assert_eq!(at(x, y), colour(3), "edge pixel ({x}, {y})");
        }
        assert_eq!(at(45, 50), [0, 0, 0]);
        // The label's tab sits above the box.
        assert_eq!(at(21, 29), colour(3));
    }
}
