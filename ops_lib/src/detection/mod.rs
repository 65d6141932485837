//! Detection arithmetic, the one home of it: PaddleDetection's operators (typed as [`LibOp`],
//! with Paddle 2.6's CPU kernels as the reference for every number, tie-break and ordering they
//! produce), and the kernels of the ONNX detection ops the runtime hands its tensors to
//! ([`non_max_suppression`], [`roi_align`], with onnxruntime's as the reference).

mod boxes;
mod distribute_fpn;
mod generate_proposals;
mod matrix_nms;
mod multiclass_nms;
mod nms;
mod roi_align;
mod rois_batch_index;
mod yolo_box;

pub use distribute_fpn::fpn_level;
pub use nms::{non_max_suppression, non_max_suppression_with, OnnxBoxes};
pub use roi_align::roi_align;

use crate::LibTensor;
use crate::LibView;
use temblor_ir::{DType, Dim, LibOp, Shape, TensorType};

/// Output types from input types (`None` for an omitted optional input). Extents that depend
/// on the data, such as the number of detections, are [`Dim::Unknown`].
pub fn infer(op: &LibOp, inputs: &[Option<TensorType>]) -> Result<Vec<TensorType>, String> {
    let args = Args::new(op, inputs)?;
    match op {
        LibOp::YoloBox(a) => yolo_box::infer(a, &args),
        LibOp::MulticlassNms(_) => multiclass_nms::infer(&args),
        LibOp::MatrixNms(_) => matrix_nms::infer(&args),
        LibOp::GenerateProposals(_) => generate_proposals::infer(&args),
        LibOp::DistributeFpnProposals(a) => distribute_fpn::infer(a, &args),
        LibOp::RoisBatchIndex => rois_batch_index::infer(&args),
    }
}

/// Runs the CPU kernel.
pub fn run(op: &LibOp, inputs: &[Option<LibView<'_>>]) -> Result<Vec<LibTensor>, String> {
    let args = Args::new(op, inputs)?;
    match op {
        LibOp::YoloBox(a) => yolo_box::run(a, &args),
        LibOp::MulticlassNms(a) => multiclass_nms::run(a, &args),
        LibOp::MatrixNms(a) => matrix_nms::run(a, &args),
        LibOp::GenerateProposals(a) => generate_proposals::run(a, &args),
        LibOp::DistributeFpnProposals(a) => distribute_fpn::run(a, &args),
        LibOp::RoisBatchIndex => rois_batch_index::run(&args),
    }
}

/// The inputs of one call, checked against the op's declared parameters, so kernels and shape
/// rules fetch them by position with errors that name the parameter.
pub(crate) struct Args<'s, T> {
    op: &'static str,
    names: &'static [(&'static str, bool)],
    values: &'s [Option<T>],
}

impl<'s, T> Args<'s, T> {
    fn new(op: &LibOp, values: &'s [Option<T>]) -> Result<Args<'s, T>, String> {
        let names = op.inputs();
        if values.len() > names.len() {
            return Err(format!(
                "{}: expected at most {} inputs, got {}",
                op.name(),
                names.len(),
                values.len()
            ));
        }
        Ok(Args {
            op: op.name(),
            names,
            values,
        })
    }

    /// A required input, with the parameter name for error messages.
    pub(crate) fn get(&self, i: usize) -> Result<(&'s T, String), String> {
        let what = self.what(i);
        match self.values.get(i).and_then(Option::as_ref) {
            Some(v) => Ok((v, what)),
            None => Err(format!("{what} is required but not connected")),
        }
    }

    /// An optional input.
    pub(crate) fn opt(&self, i: usize) -> Option<(&'s T, String)> {
        self.values
            .get(i)
            .and_then(Option::as_ref)
            .map(|v| (v, self.what(i)))
    }

    fn what(&self, i: usize) -> String {
        format!("{} input {}", self.op, self.names[i].0)
    }
}

/// The dims of a float32 input type of the given rank.
pub(crate) fn float_dims<'t>(
    t: &'t TensorType,
    what: &str,
    rank: usize,
) -> Result<&'t [Dim], String> {
    if t.dtype != DType::F32 {
        return Err(format!("{what} must be float32, got {}", t.dtype.name()));
    }
    ranked(t, what, rank)
}

/// The dims of an int32/int64 input type of the given rank.
pub(crate) fn int_dims<'t>(
    t: &'t TensorType,
    what: &str,
    rank: usize,
) -> Result<&'t [Dim], String> {
    if !matches!(t.dtype, DType::I32 | DType::I64) {
        return Err(format!(
            "{what} must be int32 or int64, got {}",
            t.dtype.name()
        ));
    }
    ranked(t, what, rank)
}

/// The images of a per-image count input (RoisNum): `[N]`, or a 0-D count of one image, which
/// Paddle 2.6 writes when a model takes the count from a decreased slice of a shape.
pub(crate) fn counts_dims(t: &TensorType, what: &str) -> Result<Dim, String> {
    if t.shape.rank() == 0 {
        int_dims(t, what, 0)?;
        return Ok(Dim::Known(1));
    }
    Ok(int_dims(t, what, 1)?[0].clone())
}

/// The values of a per-image count input (see [`counts_dims`]).
pub(crate) fn counts_data(v: &LibView<'_>, what: &str) -> Result<Vec<i64>, String> {
    int_data(v, what, v.dims.len().min(1))
}

fn ranked<'t>(t: &'t TensorType, what: &str, rank: usize) -> Result<&'t [Dim], String> {
    let dims = t.shape.dims();
    if dims.len() != rank {
        return Err(format!(
            "{what} must have rank {rank}, got shape {}",
            t.shape
        ));
    }
    Ok(dims)
}

pub(crate) fn ty(dtype: DType, dims: Vec<Dim>) -> TensorType {
    TensorType::new(dtype, Shape(dims))
}

/// The elements of a float32 input of the given rank, checked against its extents.
pub(crate) fn float_data<'a>(
    v: &LibView<'a>,
    what: &str,
    rank: usize,
) -> Result<&'a [f32], String> {
    let data = v.f32(what)?;
    check_len(v, what, rank, data.len())?;
    Ok(data)
}

/// The elements of an integer input of the given rank, widened to i64.
pub(crate) fn int_data(v: &LibView<'_>, what: &str, rank: usize) -> Result<Vec<i64>, String> {
    let data = v.ints(what)?;
    check_len(v, what, rank, data.len())?;
    Ok(data)
}

fn check_len(v: &LibView<'_>, what: &str, rank: usize, len: usize) -> Result<(), String> {
    if v.dims.len() != rank {
        return Err(format!(
            "{what} must have rank {rank}, got dims {:?}",
            v.dims
        ));
    }
    let expected: usize = v.dims.iter().product();
    if expected != len {
        return Err(format!(
            "{what} has {len} elements but its dims {:?} need {expected}",
            v.dims
        ));
    }
    Ok(())
}

/// Per-image RoI counts to start offsets (one more entry than images), rejecting negative
/// counts and a total that does not match the RoIs present.
pub(crate) fn offsets_from_counts(
    counts: &[i64],
    total: usize,
    what: &str,
) -> Result<Vec<usize>, String> {
    let mut offsets = Vec::with_capacity(counts.len() + 1);
    offsets.push(0usize);
    for &c in counts {
        let c = usize::try_from(c).map_err(|_| format!("{what} holds a negative count {c}"))?;
        offsets.push(offsets[offsets.len() - 1] + c);
    }
    if offsets[counts.len()] != total {
        return Err(format!(
            "{what} sums to {} but there are {total} RoIs",
            offsets[counts.len()]
        ));
    }
    Ok(offsets)
}
