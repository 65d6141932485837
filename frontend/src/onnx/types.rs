//! Types the model declares for its values (graph inputs, outputs, value_info).

use super::proto::{self, tensor_shape_proto::dimension::Value, ValueInfoProto};
use super::tensor;
use temblor_ir::{Dim, Shape, TensorType};

/// A graph input's type: dtype and shape, with `dim_param` names as symbols. The rank must be
/// declared.
pub(super) fn declared_type(vi: &ValueInfoProto) -> Result<TensorType, String> {
    let tt = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(proto::type_proto::Value::TensorType(tt)) => tt,
        None => return Err(format!("input '{}' is not a tensor", vi.name)),
    };
    let dtype = tensor::dtype(tt.elem_type).ok_or_else(|| {
        format!(
            "input '{}' has unsupported type {}",
            vi.name,
            tensor::dtype_name(tt.elem_type)
        )
    })?;
    let shape = tt.shape.as_ref().ok_or_else(|| {
        format!(
            "input '{}' declares no shape (its rank must be known)",
            vi.name
        )
    })?;
    let mut dims = Vec::with_capacity(shape.dim.len());
    for d in &shape.dim {
        dims.push(match &d.value {
            // Some exporters write -1 for a dynamic extent instead of leaving it unset.
            Some(Value::DimValue(v)) if *v < 0 => Dim::Unknown,
            Some(Value::DimValue(v)) => Dim::Known(*v as usize),
            Some(Value::DimParam(p)) if !p.is_empty() => Dim::Symbol(p.clone()),
            _ => Dim::Unknown,
        });
    }
    Ok(TensorType::new(dtype, Shape(dims)))
}

/// The declared extents of a value, when every one is a number.
pub(super) fn declared_dims(vi: &ValueInfoProto) -> Option<Vec<usize>> {
    match vi.r#type.as_ref()?.value.as_ref()? {
        proto::type_proto::Value::TensorType(tt) => tt
            .shape
            .as_ref()?
            .dim
            .iter()
            .map(|d| match d.value {
                Some(Value::DimValue(v)) => usize::try_from(v).ok(),
                _ => None,
            })
            .collect(),
    }
}
