//! Detection metrics: COCO AP of one model's detections against ground truth, or against
//! another model's detections (agreement: how much of the reference's behaviour a compressed
//! or otherwise changed model keeps).

mod coco;
pub mod coco_json;

pub use coco::evaluate;

use serde::Serialize;
use temblor_ir::Result;
use temblor_runtime::Tensor;

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
    Ok(temblor_postprocess::table::rows(outputs)?
        .into_iter()
        .map(|r| Detection {
            class: r.class,
            score: r.score,
            bbox: r.bbox,
        })
        .collect())
}
