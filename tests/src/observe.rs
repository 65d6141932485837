//! Observers of a plan's run for the tests that compare a native kernel with its simulation
//! layer by layer.

use std::time::Duration;
use temblor_ir::{DType, Op};
use temblor_runtime::{Observer, RuntimeError, StepInfo, Tensor, ValueView};

/// What a run gave each convolution step: its name, the inputs it read (`None` for one it does
/// not read, such as the weight a native step holds packed) and its output.
#[derive(Default)]
pub struct Convs(pub Vec<(String, Vec<Option<Tensor>>, Tensor)>);

impl Observer for Convs {
    fn step(
        &mut self,
        _: usize,
        step: &StepInfo,
        inputs: &[Option<ValueView<'_>>],
        outputs: &[ValueView<'_>],
        _: Duration,
    ) -> Result<(), RuntimeError> {
        if let Op::Conv(_) = step.op {
            let ins = inputs
                .iter()
                .map(|v| v.map(|v| v.to_host().map(|t| t.into_owned())).transpose())
                .collect::<Result<_, _>>()?;
            let out = outputs[0].to_host()?.into_owned();
            self.0.push((step.node.clone(), ins, out));
        }
        Ok(())
    }
}

/// How many convolution steps of a run stored their output in bytes: an observer that reads no
/// values, so the run is the unobserved one.
#[derive(Default)]
pub struct ConvsInBytes(pub usize);

impl Observer for ConvsInBytes {
    fn step(
        &mut self,
        _: usize,
        step: &StepInfo,
        _: &[Option<ValueView<'_>>],
        outputs: &[ValueView<'_>],
        _: Duration,
    ) -> Result<(), RuntimeError> {
        if let (Op::Conv(_), [out]) = (&step.op, outputs) {
            self.0 += usize::from(out.dtype() == DType::U8);
        }
        Ok(())
    }

    fn reads_values(&self) -> bool {
        false
    }
}
