//! CTC greedy decoding of a text recognizer, as PaddleOCR's `CTCLabelDecode`.

use temblor_ir::{Error, Result};
use temblor_runtime::Tensor;

/// Each line's text and mean confidence, from probabilities `[lines, T, classes]`; class 0 is
/// CTC's blank, class `i` is `dictionary[i - 1]`.
pub fn decode(_probs: &Tensor, _dictionary: &[String]) -> Result<Vec<(String, f32)>> {
    Err(Error::internal("CTC decoding is being written (issue 17)"))
}
