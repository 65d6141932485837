//! rois_batch_index (temblor's own): turns per-image RoI counts `[N]` into the image index of
//! each RoI, `[sum]` int64, the `batch_indices` operand of the IR's RoiAlign.

use super::{counts_data, counts_dims, ty, Args};
use crate::LibTensor;
use crate::LibView;
use temblor_ir::{DType, Dim, TensorType};

pub(crate) fn infer(args: &Args<'_, TensorType>) -> Result<Vec<TensorType>, String> {
    let (t, what) = args.get(0)?;
    counts_dims(t, &what)?;
    Ok(vec![ty(DType::I64, vec![Dim::Unknown])])
}

pub(crate) fn run(args: &Args<'_, LibView<'_>>) -> Result<Vec<LibTensor>, String> {
    let (v, what) = args.get(0)?;
    let counts = counts_data(v, &what)?;
    let mut out = Vec::new();
    for (image, &c) in counts.iter().enumerate() {
        let c = usize::try_from(c).map_err(|_| format!("{what} holds a negative count {c}"))?;
        out.extend(std::iter::repeat_n(image as i64, c));
    }
    Ok(vec![LibTensor::i64(vec![out.len()], out)])
}
