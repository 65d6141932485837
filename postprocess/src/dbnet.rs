//! DBNet text detection, as PaddleOCR's `DBPostProcess`.

use crate::{Geometry, TextDetection, TextLine};
use temblor_ir::{Error, Result};
use temblor_runtime::Tensor;

/// The text regions of a probability map `[1, 1, H, W]` (the model input's size), as
/// quadrilaterals in the photo's pixels, clockwise from the top-left.
pub fn text_regions(
    _map: &Tensor,
    _settings: &TextDetection,
    _geometry: &Geometry,
) -> Result<Vec<TextLine>> {
    Err(Error::internal(
        "DBNet postprocessing is being written (issue 17)",
    ))
}
