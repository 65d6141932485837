//! Ultralytics YOLO heads (YOLOv8, YOLO11; detection and segmentation).

use crate::{Geometry, Object};
use temblor_ir::{Error, Result};
use temblor_runtime::Tensor;

/// The objects in a YOLO model's outputs: `[1, 4 + classes (+ 32), anchors]` and, for
/// segmentation, prototypes `[1, 32, h, w]`.
pub fn objects(
    _outputs: &[(String, Tensor)],
    _min_score: f32,
    _iou: f32,
    _max_detections: usize,
    _geometry: &Geometry,
) -> Result<Vec<Object>> {
    Err(Error::internal("YOLO decoding is being written (issue 17)"))
}
