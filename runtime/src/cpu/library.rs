//! ops_lib operators: the runtime's tensors handed to `temblor_ops_lib` kernels as borrowed
//! views, and their results taken back.

use super::args::Args;
use crate::RuntimeError;
use crate::Tensor;
use crate::TensorData;
use temblor_ir::{LibOp, Op};
use temblor_ops_lib::{LibData, LibSlice, LibView};

/// The ops_lib operator a node of the custom family stands for, or why the CPU cannot run it.
pub(crate) fn resolve(op: &Op) -> Result<&LibOp, String> {
    match op {
        Op::Lib(lib) => Ok(lib),
        Op::Custom { domain, name, .. } => {
            Err(format!("custom op {domain}:{name} has no CPU kernel"))
        }
        other => Err(format!("{} is not an ops_lib operator", other.name())),
    }
}

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

pub(crate) fn execute(op: &Op, args: &Args) -> Result<Vec<Tensor>, RuntimeError> {
    let lib = resolve(op).map_err(RuntimeError::internal)?;
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
