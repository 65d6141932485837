//! Recognizes GELU written out from Erf.

use crate::{Pass, PassError};
use temblor_ir::Graph;

pub struct RecognizeGelu;

impl Pass for RecognizeGelu {
    fn name(&self) -> &'static str {
        "recognize_gelu"
    }

    fn run(&self, _g: &mut Graph) -> Result<usize, PassError> {
        Ok(0)
    }
}
