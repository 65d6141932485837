//! rois_batch_index (temblor's own): turns per-image RoI counts `[N]` into the image index of
//! each RoI, `[sum]` int64, the `batch_indices` operand of the IR's RoiAlign.

use super::{int_data, int_dims, ty, Args};
use crate::{LibTensor, LibView};
use temblor_ir::{DType, Dim, TensorType};

pub(crate) fn infer(args: &Args<'_, TensorType>) -> Result<Vec<TensorType>, String> {
    let (t, what) = args.get(0)?;
    int_dims(t, &what, 1)?;
    Ok(vec![ty(DType::I64, vec![Dim::Unknown])])
}

pub(crate) fn run(args: &Args<'_, LibView<'_>>) -> Result<Vec<LibTensor>, String> {
    let (v, what) = args.get(0)?;
    let counts = int_data(v, &what, 1)?;
    let mut out = Vec::new();
    for (image, &c) in counts.iter().enumerate() {
        let c = usize::try_from(c).map_err(|_| format!("{what} holds a negative count {c}"))?;
        out.extend(std::iter::repeat_n(image as i64, c));
    }
    Ok(vec![LibTensor::i64(vec![out.len()], out)])
}
