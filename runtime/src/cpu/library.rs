//! ops_lib operators: the runtime's tensors handed to `temblor_ops_lib` kernels as borrowed
//! views, and their results taken back.

use super::args::Args;
use crate::RuntimeError;
use crate::Tensor;
use crate::TensorData;
use temblor_ir::LibOp;
use temblor_ops_lib::{LibData, LibSlice, LibView};

fn view(t: &Tensor) -> Result<LibView<'_>, RuntimeError> {
    let data = match &t.data {
        TensorData::F32(v) => LibSlice::F32(v),
        TensorData::I32(v) => LibSlice::I32(v),
        TensorData::I64(v) => LibSlice::I64(v),
        other => {
            return Err(RuntimeError::bad_input(format!(
                "ops_lib operators take float32, int32 or int64 tensors, not {}",
                other.dtype()
            )))
        }
    };
    Ok(LibView {
        dims: &t.shape,
        data,
    })
}

/// Runs the ops_lib kernel of `lib` (typed at import, so nothing is parsed here).
pub(crate) fn execute(lib: &LibOp, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
    let ins = args
        .ins
        .iter()
        .map(|t| t.map(view).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    let outs = temblor_ops_lib::run(lib, &ins).map_err(RuntimeError::bad_input)?;
    Ok(outs
        .into_iter()
        .map(|o| Tensor {
            shape: o.dims,
            data: match o.data {
                LibData::F32(v) => TensorData::F32(v),
                LibData::I32(v) => TensorData::I32(v),
                LibData::I64(v) => TensorData::I64(v),
            },
        })
        .collect())
}
