//! Detection metrics: COCO AP of one model's detections against ground truth, or against
//! another model's detections (agreement: how much of the reference's behaviour a compressed
//! or otherwise changed model keeps).

mod coco;
pub mod coco_json;

pub use coco::evaluate;

use serde::Serialize;
use temblor_ir::{Error, Result};
use temblor_runtime::{Tensor, TensorData};

/// The reference's detections that count as ground truth in [`agreement`] unless told
/// otherwise: PaddleDetection's `draw_threshold` default, the score its deploy tools treat as
/// "detected". Lower, and the reference's own guesses become truths the candidate is punished
/// for not repeating; higher, and few boxes are left to measure with.
pub const DEFAULT_MIN_SCORE: f32 = 0.5;

/// One detected box, in the original image's pixels.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Detection {
    pub class: i64,
    pub score: f32,
    /// x1, y1, x2, y2.
    pub bbox: [f32; 4],
}

impl Detection {
    /// The box as COCO writes it: x, y, width, height.
    pub fn xywh(&self) -> [f64; 4] {
        let [x1, y1, x2, y2] = self.bbox.map(f64::from);
        [x1, y1, x2 - x1, y2 - y1]
    }
}

/// A ground truth box, as COCO annotations hold it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GtBox {
    pub class: i64,
    /// x, y, width, height.
    pub bbox: [f64; 4],
    /// COCO's `area` (of the segmentation for COCO's own data; the box's otherwise).
    pub area: f64,
    /// `iscrowd`: matches any number of detections and is not counted.
    pub crowd: bool,
}

impl GtBox {
    /// A detection taken as ground truth.
    pub fn from_detection(d: &Detection) -> GtBox {
        let bbox = d.xywh();
        GtBox {
            class: d.class,
            bbox,
            area: bbox[2] * bbox[3],
            crowd: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// AP at IoU 0.50:0.95, area all, 100 detections per image.
    pub ap: f64,
    pub ap50: f64,
    pub ap75: f64,
    /// Classes with at least one counted ground truth box, by class id.
    pub per_class: Vec<ClassAp>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassAp {
    pub class: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub ap: f64,
    pub ap50: f64,
    pub ap75: f64,
    pub ground_truth: usize,
    pub detections: usize,
}

/// The candidate's detections scored against the reference's, those with a score of at least
/// `min_score` taken as ground truth.
pub fn agreement(
    reference: &[Vec<Detection>],
    candidate: &[Vec<Detection>],
    min_score: f32,
) -> Metrics {
    evaluate(&reference_truth(reference, min_score), candidate)
}

/// The reference's detections scoring at least `min_score`, as ground truth.
pub fn reference_truth(reference: &[Vec<Detection>], min_score: f32) -> Vec<Vec<GtBox>> {
    reference
        .iter()
        .map(|dets| {
            dets.iter()
                .filter(|d| d.score >= min_score)
                .map(GtBox::from_detection)
                .collect()
        })
        .collect()
}

/// Detections from PaddleDetection-style outputs: one float output of rows `[N, 6]` (class,
/// score, x1, y1, x2, y2) and, optionally, an integer output holding how many rows are real.
/// Rows with a negative class are padding.
pub fn detections_from_outputs(outputs: &[(String, Tensor)]) -> Result<Vec<Detection>> {
    let rows: Vec<&(String, Tensor)> = outputs
        .iter()
        .filter(|(_, t)| t.shape.len() == 2 && t.shape[1] == 6 && floats(t).is_some())
        .collect();
    let [(_, rows)] = rows.as_slice() else {
        let shapes: Vec<String> = outputs
            .iter()
            .map(|(n, t)| format!("{n} {} {:?}", t.dtype(), t.shape))
            .collect();
        return Err(Error::usage(format!(
            "expected one float output of detection rows [N, 6] (class, score, x1, y1, x2, y2); \
             the model's outputs are: {}",
            shapes.join(", ")
        )));
    };
    let values = floats(rows).unwrap_or_default();
    let count = outputs
        .iter()
        .find_map(|(_, t)| count(t))
        .unwrap_or(rows.shape[0]);
    Ok(values
        .chunks_exact(6)
        .take(count)
        .filter(|r| r[0] >= 0.0)
        .map(|r| Detection {
            class: r[0].round() as i64,
            score: r[1],
            bbox: [r[2], r[3], r[4], r[5]],
        })
        .collect())
}

fn floats(t: &Tensor) -> Option<Vec<f32>> {
    match &t.data {
        TensorData::F32(v) => Some(v.clone()),
        TensorData::F16(v) => Some(v.iter().map(|x| x.to_f32()).collect()),
        TensorData::F64(v) => Some(v.iter().map(|&x| x as f32).collect()),
        _ => None,
    }
}

/// A one-element integer output: the number of real rows (batch 1).
fn count(t: &Tensor) -> Option<usize> {
    let n = match &t.data {
        TensorData::I32(v) if v.len() == 1 => v[0] as i64,
        TensorData::I64(v) if v.len() == 1 => v[0],
        _ => return None,
    };
    usize::try_from(n).ok()
}
