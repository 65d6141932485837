//! The answer for one photo as `results.json` holds it: every coordinate in the photo's own
//! pixels (x to the right, y down, from its top-left corner), masks as COCO RLE.

use crate::{Answer, Rle};
use serde::{Serialize, Serializer};

/// One photo's answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageResult {
    /// The photo's path as given.
    pub image: String,
    pub width: usize,
    pub height: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<Object>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub text: Vec<TextLine>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<ClassScore>,
}

impl ImageResult {
    pub fn new(image: String, (height, width): (usize, usize), answer: Answer) -> ImageResult {
        ImageResult {
            image,
            width,
            height,
            objects: answer.objects,
            text: answer.text,
            classes: answer.classes,
        }
    }
}

/// A detected object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Object {
    pub class: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub score: f32,
    /// x1, y1, x2, y2.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "mask_as_rle"
    )]
    pub mask: Option<Mask>,
}

/// An instance mask: a binary region of the photo, held only over the box it lies in so a large
/// photo's masks cost what their boxes cover.
#[derive(Clone, Debug, PartialEq)]
pub struct Mask {
    /// The photo's height, width.
    pub image: (usize, usize),
    /// The region's top, left corner in the photo.
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
    /// `height * width` values, row-major, 1 inside the object.
    pub bits: Vec<u8>,
}

impl Mask {
    /// The mask whose pixels are the photo's (`image`: height, width) where `inside` (row-major,
    /// the photo's size) holds, kept over the smallest rectangle around them.
    pub fn tight(image: (usize, usize), inside: &[bool]) -> Mask {
        let (h, w) = image;
        let (mut top, mut left, mut bottom, mut right) = (h, w, 0, 0);
        for y in 0..h {
            for x in 0..w {
                if inside[y * w + x] {
                    top = top.min(y);
                    bottom = bottom.max(y + 1);
                    left = left.min(x);
                    right = right.max(x + 1);
                }
            }
        }
        if top >= bottom {
            return Mask {
                image,
                top: 0,
                left: 0,
                height: 0,
                width: 0,
                bits: Vec::new(),
            };
        }
        let (height, width) = (bottom - top, right - left);
        let mut bits = Vec::with_capacity(height * width);
        for y in top..bottom {
            bits.extend(
                inside[y * w + left..y * w + right]
                    .iter()
                    .map(|&b| u8::from(b)),
            );
        }
        Mask {
            image,
            top,
            left,
            height,
            width,
            bits,
        }
    }

    /// Whether the photo's pixel at (x, y) is inside the object.
    pub fn contains(&self, x: usize, y: usize) -> bool {
        (self.top..self.top + self.height).contains(&y)
            && (self.left..self.left + self.width).contains(&x)
            && self.bits[(y - self.top) * self.width + x - self.left] != 0
    }

    /// How many of the photo's pixels are inside the object.
    pub fn area(&self) -> usize {
        self.bits.iter().filter(|&&b| b != 0).count()
    }
}

fn mask_as_rle<S: Serializer>(mask: &Option<Mask>, s: S) -> Result<S::Ok, S::Error> {
    match mask {
        Some(m) => Rle::of_mask(m).serialize(s),
        None => s.serialize_none(),
    }
}

/// A text region and, once recognized, what it says.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TextLine {
    /// Corners, clockwise from the top-left.
    pub polygon: Vec<[f32; 2]>,
    /// The detector's mean probability inside the region.
    pub score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The recognizer's mean probability over the characters read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// Degrees the line was turned before it was read (0 or 180), where a direction
    /// classifier was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub angle: Option<u16>,
}

/// One of the top classes of a classifier.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassScore {
    pub class: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub score: f32,
}
