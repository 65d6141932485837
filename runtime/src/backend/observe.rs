//! What an [`Observer`] sees of a run: each step as it completes, and the values it read and
//! wrote as [`ValueView`]s, which stay wherever the backend keeps them until an observer asks
//! for them on the host. Timing a run must not copy every value off a device.

use crate::{RuntimeError, Tensor};
use std::borrow::Cow;
use std::time::Duration;
use temblor_ir::{DType, Op};

/// One step of a plan as an [`Observer`] sees it: the node it runs.
#[derive(Clone, Debug)]
pub struct StepInfo {
    /// The node's name in the graph.
    pub node: String,
    pub op: Op,
    /// The node as [`temblor_ir::Graph::describe`] names it, for errors.
    pub what: String,
    /// The names of the values the step computes, by output port.
    pub output_names: Vec<String>,
    /// The graph's other nodes whose work this step does and which have no step of their own:
    /// the pointwise expansion a CPU depthwise convolution runs band by band.
    pub fused: Vec<String>,
}

/// Watches a plan run step by step: profiling times steps, calibration and layer comparison read
/// the values each step computes.
pub trait Observer: Send {
    /// Called after step `index` has run, with the inputs it read (`None` for an omitted
    /// optional one) and the outputs it made. An error (a value that could not be copied to
    /// the host) ends the run with it.
    fn step(
        &mut self,
        index: usize,
        step: &StepInfo,
        inputs: &[Option<ValueView<'_>>],
        outputs: &[ValueView<'_>],
        elapsed: Duration,
    ) -> Result<(), RuntimeError>;

    /// Whether the observer reads the values it is shown. A run shown to one that does keeps
    /// every value as the graph types it; one that only times steps (`false`) runs as an
    /// unobserved run would, where a convolution may hand the int8 layers reading its output
    /// that output quantized, in bytes.
    fn reads_values(&self) -> bool {
        true
    }
}

/// A value a step read or wrote, where the backend holds it.
#[derive(Clone, Copy, Debug)]
pub struct ValueView<'a>(Place<'a>);

#[derive(Clone, Copy, Debug)]
enum Place<'a> {
    Host(&'a Tensor),
}

impl<'a> ValueView<'a> {
    pub(crate) fn host(t: &'a Tensor) -> ValueView<'a> {
        ValueView(Place::Host(t))
    }

    pub fn dtype(&self) -> DType {
        match self.0 {
            Place::Host(t) => t.dtype(),
        }
    }

    pub fn shape(&self) -> &'a [usize] {
        match self.0 {
            Place::Host(t) => &t.shape,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value on the host: borrowed where it already is there, copied from a device
    /// otherwise.
    pub fn to_host(&self) -> Result<Cow<'a, Tensor>, RuntimeError> {
        match self.0 {
            Place::Host(t) => Ok(Cow::Borrowed(t)),
        }
    }
}
