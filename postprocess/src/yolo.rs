//! Ultralytics YOLO heads (YOLOv8, YOLO11; detection and segmentation), decoded as Ultralytics
//! 8.2/8.3 do (`ultralytics/utils/ops.py`):
//!
//! - `non_max_suppression` with `multi_label=False`, `agnostic=False`: an anchor is a candidate
//!   where its best class scores above `min_score`; boxes `cx, cy, w, h` become corners
//!   (`cx - w / 2`, in f32 as torch does); beyond 30000 candidates only the best-scoring ones
//!   stay; each box is moved by `class * 7680` so that classes never overlap, then torchvision's
//!   greedy NMS (suppress where IoU > `iou`) keeps at most `max_detections`, best first.
//! - `process_mask` (not the retina variant): logits `coefficients @ prototypes`, zeroed outside
//!   the box scaled to the prototypes' size (`crop_mask`), upsampled bilinearly to the input
//!   size (`F.interpolate`, `align_corners=False`), and kept where above 0. Ultralytics 8.3
//!   thresholds the logits at 0; 8.0 took the sigmoid first and thresholded at 0.5. The two
//!   agree pixel for pixel before the resize but not after it (sigmoid is not linear, and the
//!   crop's zeros mean 0.5 in one and "outside" in the other), so this follows 8.3.
//!
//! From the input to the photo: our letterbox pads only at the bottom and right, so boxes are
//! divided by the resize's scale ([`Geometry::to_original`]), and a mask is the input's region
//! `[0, round(h0 * scale_y)) x [0, round(w0 * scale_x))` resized to the photo by nearest
//! neighbour at pixel centres (`floor((x + 0.5) * region / photo)`): a binary mask gains
//! nothing from a bilinear resize but a second threshold to choose.

use crate::{floats, Geometry, Mask, Object};
use std::ops::Range;
use temblor_ir::{Error, Result};
use temblor_runtime::Tensor;

/// Ultralytics' `max_wh`: the class offset that keeps NMS from comparing different classes.
const MAX_WH: f32 = 7680.0;
/// Ultralytics' `max_nms`: candidates beyond these (by score) never reach NMS.
const MAX_NMS: usize = 30_000;
/// Prototypes are the stride-8 features upsampled twice (Ultralytics' `Proto`): a quarter of
/// the input's size.
const PROTO_STRIDE: usize = 4;

/// The objects in a YOLO model's outputs: `[1, 4 + classes (+ 32), anchors]` and, for
/// segmentation, prototypes `[1, 32, h, w]`.
pub fn objects(
    outputs: &[(String, Tensor)],
    min_score: f32,
    iou: f32,
    max_detections: usize,
    geometry: &Geometry,
) -> Result<Vec<Object>> {
    for (what, v) in [("min_score", min_score), ("iou", iou)] {
        if !(0.0..=1.0).contains(&v) {
            return Err(Error::usage(format!(
                "YOLO {what} must be within 0..1, not {v}"
            )));
        }
    }
    let head = Head::find(outputs)?;
    let kept = suppress(head.candidates(min_score), iou, max_detections);
    let masks = head.protos.as_ref().map(|p| Upsample::new(p, geometry));
    Ok(kept
        .into_iter()
        .map(|c| {
            let [x1, y1, x2, y2] = c.bbox;
            let [ox1, oy1] = geometry.to_original(x1, y1);
            let [ox2, oy2] = geometry.to_original(x2, y2);
            let mask = match (&head.protos, &masks) {
                (Some(p), Some(up)) => Some(up.mask(p, &head.coefficients(c.anchor), c.bbox)),
                _ => None,
            };
            Object {
                class: c.class as i64,
                label: None,
                score: c.score,
                bbox: [ox1, oy1, ox2, oy2],
                mask,
            }
        })
        .collect())
}

/// The prediction `[1, 4 + classes + coefficients, anchors]` and, for segmentation, the
/// prototypes.
struct Head {
    values: Vec<f32>,
    classes: usize,
    anchors: usize,
    protos: Option<Protos>,
}

/// Mask prototypes `[1, channels, height, width]`.
struct Protos {
    values: Vec<f32>,
    channels: usize,
    height: usize,
    width: usize,
}

/// An anchor whose best class scored above the threshold; its box in input pixels, corners.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    anchor: usize,
    class: usize,
    score: f32,
    bbox: [f32; 4],
}

impl Head {
    fn find(outputs: &[(String, Tensor)]) -> Result<Head> {
        let shapes = || {
            let all: Vec<String> = outputs
                .iter()
                .map(|(n, t)| format!("'{n}' {} {:?}", t.dtype(), t.shape))
                .collect();
            all.join(", ")
        };
        let of_rank = |r: usize| -> Vec<&(String, Tensor)> {
            outputs.iter().filter(|(_, t)| t.shape.len() == r).collect()
        };
        let (pred_name, pred) = match of_rank(3).as_slice() {
            [one] => (&one.0, &one.1),
            _ => {
                return Err(Error::usage(format!(
                    "expected one YOLO prediction output [1, 4 + classes (+ 32 mask \
                     coefficients), anchors]; the model's outputs are: {}",
                    shapes()
                )))
            }
        };
        let protos = match of_rank(4).as_slice() {
            [] => None,
            [(name, t)] => {
                let (batch, channels) = (t.shape[0], t.shape[1]);
                let (height, width) = (t.shape[2], t.shape[3]);
                if batch != 1 || channels == 0 || height == 0 || width == 0 {
                    return Err(Error::usage(format!(
                        "YOLO mask prototypes '{name}' {:?}: expected [1, 32, h, w]",
                        t.shape
                    )));
                }
                Some(Protos {
                    values: floats(name, t)?,
                    channels,
                    height,
                    width,
                })
            }
            _ => {
                return Err(Error::usage(format!(
                    "expected at most one YOLO mask prototype output [1, 32, h, w]; the model's \
                     outputs are: {}",
                    shapes()
                )))
            }
        };
        let (batch, rows, anchors) = (pred.shape[0], pred.shape[1], pred.shape[2]);
        let coefficients = protos.as_ref().map_or(0, |p| p.channels);
        if batch != 1 || rows <= 4 + coefficients {
            return Err(Error::usage(format!(
                "YOLO prediction '{pred_name}' {:?}: expected [1, 4 + classes{}, anchors] with \
                 at least one class",
                pred.shape,
                if coefficients > 0 {
                    format!(" + {coefficients} mask coefficients")
                } else {
                    String::new()
                }
            )));
        }
        Ok(Head {
            values: floats(pred_name, pred)?,
            classes: rows - 4 - coefficients,
            anchors,
            protos,
        })
    }

    fn at(&self, row: usize, anchor: usize) -> f32 {
        self.values[row * self.anchors + anchor]
    }

    /// Every anchor whose best class scores above `min_score`, with that class (the first of
    /// equal scores, as `torch.max` picks).
    fn candidates(&self, min_score: f32) -> Vec<Candidate> {
        let mut out = Vec::new();
        for a in 0..self.anchors {
            let (mut class, mut score) = (0, self.at(4, a));
            for c in 1..self.classes {
                let s = self.at(4 + c, a);
                if s > score {
                    (class, score) = (c, s);
                }
            }
            if score > min_score {
                let (cx, cy) = (self.at(0, a), self.at(1, a));
                let (hw, hh) = (self.at(2, a) / 2.0, self.at(3, a) / 2.0);
                out.push(Candidate {
                    anchor: a,
                    class,
                    score,
                    bbox: [cx - hw, cy - hh, cx + hw, cy + hh],
                });
            }
        }
        out
    }

    fn coefficients(&self, anchor: usize) -> Vec<f32> {
        let first = 4 + self.classes;
        let n = self.protos.as_ref().map_or(0, |p| p.channels);
        (first..first + n).map(|r| self.at(r, anchor)).collect()
    }
}

/// Class-aware greedy NMS, best first, as torchvision's `nms` on boxes offset by class.
fn suppress(mut candidates: Vec<Candidate>, iou: f32, max_detections: usize) -> Vec<Candidate> {
    // A stable sort: equal scores keep anchor order.
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    candidates.truncate(MAX_NMS);
    let boxes: Vec<[f32; 4]> = candidates
        .iter()
        .map(|c| {
            let off = c.class as f32 * MAX_WH;
            c.bbox.map(|v| v + off)
        })
        .collect();
    let area = |b: &[f32; 4]| (b[2] - b[0]) * (b[3] - b[1]);
    let mut suppressed = vec![false; candidates.len()];
    let mut kept = Vec::new();
    for i in 0..candidates.len() {
        if suppressed[i] {
            continue;
        }
        kept.push(candidates[i]);
        if kept.len() == max_detections {
            break;
        }
        let (a, area_a) = (&boxes[i], area(&boxes[i]));
        for j in i + 1..candidates.len() {
            if suppressed[j] {
                continue;
            }
            let b = &boxes[j];
            let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
            let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
            let inter = w * h;
            if inter / (area_a + area(b) - inter) > iou {
                suppressed[j] = true;
            }
        }
    }
    kept
}

/// One output pixel's bilinear taps (`align_corners=False`): the two source indices and
/// their weights.
#[derive(Clone, Copy)]
struct Tap {
    lo: usize,
    hi: usize,
    w_lo: f32,
    w_hi: f32,
}

/// PyTorch's `upsample_bilinear2d` source positions along one axis, from `from` to `to` pixels.
fn taps(from: usize, to: usize) -> Vec<Tap> {
    let scale = from as f32 / to as f32;
    (0..to)
        .map(|i| {
            let src = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
            let lo = (src as usize).min(from - 1);
            let hi = if lo + 1 < from { lo + 1 } else { lo };
            let w_hi = src - lo as f32;
            Tap {
                lo,
                hi,
                w_lo: 1.0 - w_hi,
                w_hi,
            }
        })
        .collect()
}

/// What every mask of one image shares: the upsampling taps and the photo-to-input map.
struct Upsample {
    rows: Vec<Tap>,
    cols: Vec<Tap>,
    /// The input pixel each photo row, column samples.
    photo_rows: Vec<usize>,
    photo_cols: Vec<usize>,
    input: (usize, usize),
    photo: (usize, usize),
}

impl Upsample {
    fn new(p: &Protos, geometry: &Geometry) -> Upsample {
        let input = (p.height * PROTO_STRIDE, p.width * PROTO_STRIDE);
        let photo = geometry.original;
        // The resized photo's extent in the input (the rest is padding).
        let extent = |n: usize, scale: f32, max: usize| {
            ((n as f64 * f64::from(scale)).round() as usize).clamp(1, max)
        };
        let region = (
            extent(photo.0, geometry.scale.0, input.0),
            extent(photo.1, geometry.scale.1, input.1),
        );
        let nearest = |n: usize, region: usize| -> Vec<usize> {
            (0..n)
                .map(|i| (((i as f64 + 0.5) * region as f64 / n as f64) as usize).min(region - 1))
                .collect()
        };
        Upsample {
            rows: taps(p.height, input.0),
            cols: taps(p.width, input.1),
            photo_rows: nearest(photo.0, region.0),
            photo_cols: nearest(photo.1, region.1),
            input,
            photo,
        }
    }

    /// The mask of the detection with `coefficients` and `bbox` (input pixels), in the photo.
    /// Only the photo pixels whose input pixel blends a kept prototype cell are computed: the
    /// rest are outside (zero logits), so a large photo's masks cost what their boxes cover.
    fn mask(&self, p: &Protos, coefficients: &[f32], bbox: [f32; 4]) -> Mask {
        let (logits, rows, cols) = cropped_logits(p, coefficients, bbox, self.input);
        let ys = window(&self.photo_rows, &self.rows, &rows);
        let xs = window(&self.photo_cols, &self.cols, &cols);
        let mut inside = Vec::with_capacity(ys.len() * xs.len());
        for &iy in &self.photo_rows[ys.clone()] {
            let r = self.rows[iy];
            for &ix in &self.photo_cols[xs.clone()] {
                let c = self.cols[ix];
                let at = |py: usize, px: usize| logits[py * p.width + px];
                let top = c.w_lo * at(r.lo, c.lo) + c.w_hi * at(r.lo, c.hi);
                let bottom = c.w_lo * at(r.hi, c.lo) + c.w_hi * at(r.hi, c.hi);
                inside.push(r.w_lo * top + r.w_hi * bottom > 0.0);
            }
        }
        let m = Mask::tight((ys.len(), xs.len()), &inside);
        if m.height == 0 {
            return Mask {
                image: self.photo,
                ..m
            };
        }
        Mask {
            image: self.photo,
            top: m.top + ys.start,
            left: m.left + xs.start,
            ..m
        }
    }
}

/// The photo pixels along one axis (`map`: each one's input pixel, non-decreasing) whose
/// input pixel's bilinear taps reach a `kept` prototype cell.
fn window(map: &[usize], taps: &[Tap], kept: &Range<usize>) -> Range<usize> {
    if kept.is_empty() {
        return 0..0;
    }
    let start = map.partition_point(|&i| taps[i].hi < kept.start);
    let end = map.partition_point(|&i| taps[i].lo < kept.end);
    start..end.max(start)
}

/// The prototype cells `i` with `lo <= i < hi`, as `crop_mask` compares them (none for NaN).
fn kept(n: usize, lo: f32, hi: f32) -> Range<usize> {
    let start = (0..n).find(|&i| i as f32 >= lo).unwrap_or(n);
    let end = (start..n).find(|&i| i as f32 >= hi).unwrap_or(n);
    start..end
}

/// `coefficients @ prototypes` at the prototypes' size, zero outside `bbox` scaled to it
/// (Ultralytics' `crop_mask`), with the rows and columns kept.
fn cropped_logits(
    p: &Protos,
    coefficients: &[f32],
    bbox: [f32; 4],
    input: (usize, usize),
) -> (Vec<f32>, Range<usize>, Range<usize>) {
    let (rx, ry) = (
        p.width as f32 / input.1 as f32,
        p.height as f32 / input.0 as f32,
    );
    let rows = kept(p.height, bbox[1] * ry, bbox[3] * ry);
    let cols = kept(p.width, bbox[0] * rx, bbox[2] * rx);
    let plane = p.height * p.width;
    let mut out = vec![0f32; plane];
    for y in rows.clone() {
        for x in cols.clone() {
            let i = y * p.width + x;
            out[i] = coefficients
                .iter()
                .enumerate()
                .map(|(k, &c)| c * p.values[k * plane + i])
                .sum();
        }
    }
    (out, rows, cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(rows: Vec<Vec<f32>>) -> Vec<(String, Tensor)> {
        let anchors = rows[0].len();
        let shape = vec![1, rows.len(), anchors];
        vec![("output0".into(), Tensor::f32(shape, rows.concat()))]
    }

    const SAME: Geometry = Geometry {
        original: (100, 100),
        scale: (1.0, 1.0),
    };

    #[test]
    fn overlapping_boxes_of_one_class_leave_the_best() {
        // cx, cy, w, h; two classes. Anchors 0 and 1 overlap (IoU 0.82), anchor 2 is class 1
        // at the same place, anchor 3 scores too low.
        let outputs = head(vec![
            vec![50.0, 51.0, 50.0, 10.0],
            vec![50.0, 50.0, 50.0, 10.0],
            vec![20.0, 20.0, 20.0, 4.0],
            vec![20.0, 20.0, 20.0, 4.0],
            vec![0.9, 0.8, 0.1, 0.2],
            vec![0.1, 0.1, 0.7, 0.1],
        ]);
        let got = objects(&outputs, 0.25, 0.7, 300, &SAME).unwrap();
        let classes: Vec<(i64, f32)> = got.iter().map(|o| (o.class, o.score)).collect();
        assert_eq!(classes, [(0, 0.9), (1, 0.7)]);
        assert_eq!(got[0].bbox, [40.0, 40.0, 60.0, 60.0]);
        assert!(got.iter().all(|o| o.mask.is_none()));
        assert_eq!(objects(&outputs, 0.25, 0.7, 1, &SAME).unwrap().len(), 1);
    }

    #[test]
    fn boxes_go_to_the_photo() {
        let outputs = head(vec![
            vec![32.0],
            vec![32.0],
            vec![16.0],
            vec![8.0],
            vec![0.5],
        ]);
        let half = Geometry {
            original: (200, 100),
            scale: (0.5, 0.5),
        };
        let got = objects(&outputs, 0.25, 0.7, 300, &half).unwrap();
        assert_eq!(got[0].bbox, [48.0, 56.0, 80.0, 72.0]);
    }

    #[test]
    fn a_mask_covers_its_box_where_the_logits_are_positive() {
        // Input 16x16, prototypes 4x4 of one channel, all 1: the mask is the box, grown by the
        // bilinear blend with the zeros outside it.
        let mut outputs = head(vec![
            vec![8.0],
            vec![8.0],
            vec![8.0],
            vec![8.0],
            vec![0.9],
            vec![2.0],
        ]);
        outputs.push((
            "output1".into(),
            Tensor::f32(vec![1, 1, 4, 4], vec![1.0; 16]),
        ));
        let geometry = Geometry {
            original: (16, 16),
            scale: (1.0, 1.0),
        };
        let got = objects(&outputs, 0.25, 0.7, 300, &geometry).unwrap();
        let mask = got[0].mask.as_ref().unwrap();
        // Prototype cells 1 and 2 are kept; their centres are input pixels 5.5 and 9.5, and the
        // blend with the zero cells stays positive up to the zero cells' centres.
        assert_eq!(
            (mask.top, mask.left, mask.height, mask.width),
            (2, 2, 12, 12)
        );
        assert!(mask.contains(8, 8));
    }

    #[test]
    fn outputs_that_are_not_a_yolo_head_are_named() {
        let bad = vec![(
            "scores".to_string(),
            Tensor::f32(vec![1, 4, 10], vec![0.0; 40]),
        )];
        let err = objects(&bad, 0.25, 0.7, 300, &SAME)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'scores'") && err.contains("[1, 4, 10]"),
            "{err}"
        );
        let none = vec![("x".to_string(), Tensor::f32(vec![1, 6], vec![0.0; 6]))];
        let err = objects(&none, 0.25, 0.7, 300, &SAME)
            .unwrap_err()
            .to_string();
        assert!(err.contains("'x' float32 [1, 6]"), "{err}");
        let err = objects(&head(vec![vec![0.0]; 5]), 0.25, 1.5, 300, &SAME)
            .unwrap_err()
            .to_string();
        assert!(err.contains("iou"), "{err}");
        let mut empty = head(vec![vec![0.0]; 6]);
        empty.push(("protos".into(), Tensor::f32(vec![1, 1, 0, 0], vec![])));
        let err = objects(&empty, 0.25, 0.7, 300, &SAME)
            .unwrap_err()
            .to_string();
        assert!(err.contains("'protos' [1, 1, 0, 0]"), "{err}");
    }
}
