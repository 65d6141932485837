//! numpy arrays in and out of the runtime. An input is checked against what the plan declares
//! (dtype, rank, known extents, C order) before any data is read, so that a bad array is a
//! `ValueError` naming the input and what it should be; its elements are then copied once into
//! the runtime's `Tensor`, which owns its buffer. An output's buffer is handed to numpy as it
//! is, without a copy.

use numpy::{
    dtype, Element, PyArray1, PyArrayDescr, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods,
    PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use temblor_ir::{DType, Dim};
use temblor_runtime::{bf16, f16, InputSpec, Tensor, TensorData};

/// The numpy dtype of a temblor dtype. numpy has no bfloat16: bf16 values go in and out as
/// float32 arrays (rounded to nearest even on the way in, exact on the way out).
fn descr(py: Python<'_>, d: DType) -> Bound<'_, PyArrayDescr> {
    match d {
        DType::F32 | DType::BF16 => dtype::<f32>(py),
        DType::F16 => dtype::<f16>(py),
        DType::F64 => dtype::<f64>(py),
        DType::I8 => dtype::<i8>(py),
        DType::U8 => dtype::<u8>(py),
        DType::I16 => dtype::<i16>(py),
        DType::U16 => dtype::<u16>(py),
        DType::I32 => dtype::<i32>(py),
        DType::U32 => dtype::<u32>(py),
        DType::I64 => dtype::<i64>(py),
        DType::U64 => dtype::<u64>(py),
        DType::Bool => dtype::<bool>(py),
    }
}

/// `float32 [batch, 3, 416, 416]`: a declared input as the errors show it.
pub fn declared(dtype: DType, dims: &[Dim]) -> String {
    let dims: Vec<String> = dims.iter().map(ToString::to_string).collect();
    format!("{dtype} [{}]", dims.join(", "))
}

/// `value` as the tensor the plan's input `spec` takes, or a `ValueError` saying how it differs.
pub fn to_tensor(spec: &InputSpec, value: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let name = &spec.name;
    let expected = declared(spec.dtype, &spec.dims);
    let array = value.cast::<PyUntypedArray>().map_err(|_| {
        PyValueError::new_err(format!(
            "input '{name}' must be a numpy.ndarray of {expected}, not {}",
            value
                .get_type()
                .name()
                .map_or_else(|_| "an unknown type".into(), |n| n.to_string())
        ))
    })?;
    let shape = array.shape().to_vec();
    let fits = shape.len() == spec.dims.len()
        && shape
            .iter()
            .zip(&spec.dims)
            .all(|(&n, d)| d.known().is_none_or(|k| k == n));
    let given_dtype = array.dtype();
    if !given_dtype.is_equiv_to(&descr(value.py(), spec.dtype)) || !fits {
        return Err(PyValueError::new_err(format!(
            "input '{name}' is {} {shape:?}, the model expects {expected}",
            given_dtype.str()?
        )));
    }
    if !array.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "input '{name}' {shape:?} is not C-contiguous (a transposed or strided view); pass \
             numpy.ascontiguousarray(...) of it"
        )));
    }
    fn elements<T: Element + Clone>(value: &Bound<'_, PyAny>) -> PyResult<Vec<T>> {
        let array = value.cast::<PyArrayDyn<T>>()?.readonly();
        let slice = array
            .as_slice()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(slice.to_vec())
    }
    let data = match spec.dtype {
        DType::F32 => TensorData::F32(elements(value)?),
        DType::F16 => TensorData::F16(elements(value)?),
        DType::BF16 => TensorData::BF16(
            elements::<f32>(value)?
                .into_iter()
                .map(bf16::from_f32)
                .collect(),
        ),
        DType::F64 => TensorData::F64(elements(value)?),
        DType::I8 => TensorData::I8(elements(value)?),
        DType::U8 => TensorData::U8(elements(value)?),
        DType::I16 => TensorData::I16(elements(value)?),
        DType::U16 => TensorData::U16(elements(value)?),
        DType::I32 => TensorData::I32(elements(value)?),
        DType::U32 => TensorData::U32(elements(value)?),
        DType::I64 => TensorData::I64(elements(value)?),
        DType::U64 => TensorData::U64(elements(value)?),
        DType::Bool => TensorData::Bool(elements(value)?),
    };
    Ok(Tensor { shape, data })
}

/// `tensor` as a numpy array that owns its buffer (moved, not copied).
pub fn to_numpy(py: Python<'_>, tensor: Tensor) -> PyResult<Bound<'_, PyAny>> {
    fn array<'py, T: Element>(
        py: Python<'py>,
        v: Vec<T>,
        shape: &[usize],
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyArray1::from_vec(py, v).reshape(shape)?.into_any())
    }
    let shape = &tensor.shape;
    match tensor.data {
        TensorData::F32(v) => array(py, v, shape),
        TensorData::F16(v) => array(py, v, shape),
        TensorData::BF16(v) => array(py, v.iter().map(|x| x.to_f32()).collect(), shape),
        TensorData::F64(v) => array(py, v, shape),
        TensorData::I8(v) => array(py, v, shape),
        TensorData::U8(v) => array(py, v, shape),
        TensorData::I16(v) => array(py, v, shape),
        TensorData::U16(v) => array(py, v, shape),
        TensorData::I32(v) => array(py, v, shape),
        TensorData::U32(v) => array(py, v, shape),
        TensorData::I64(v) => array(py, v, shape),
        TensorData::U64(v) => array(py, v, shape),
        TensorData::Bool(v) => array(py, v, shape),
    }
}
