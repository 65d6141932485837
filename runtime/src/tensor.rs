use crate::RuntimeError;
pub use half::{bf16, f16};
use temblor_ir::{DType, Weight};

/// The elements of a tensor, C-ordered, one variant per dtype the IR has.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    F64(Vec<f64>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
    U64(Vec<u64>),
    Bool(Vec<bool>),
}

/// Runs `$body` with `$v` bound to the vector of whatever variant `$data` is.
macro_rules! each_variant {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::F32($v) => $body,
            TensorData::F16($v) => $body,
            TensorData::BF16($v) => $body,
            TensorData::F64($v) => $body,
            TensorData::I8($v) => $body,
            TensorData::U8($v) => $body,
            TensorData::I16($v) => $body,
            TensorData::U16($v) => $body,
            TensorData::I32($v) => $body,
            TensorData::U32($v) => $body,
            TensorData::I64($v) => $body,
            TensorData::U64($v) => $body,
            TensorData::Bool($v) => $body,
        }
    };
}

/// A dense tensor. `data` holds `shape.iter().product()` elements; [`crate::Plan::run`]
/// checks that for its inputs, and every kernel keeps it for its outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F16(_) => DType::F16,
            TensorData::BF16(_) => DType::BF16,
            TensorData::F64(_) => DType::F64,
            TensorData::I8(_) => DType::I8,
            TensorData::U8(_) => DType::U8,
            TensorData::I16(_) => DType::I16,
            TensorData::U16(_) => DType::U16,
            TensorData::I32(_) => DType::I32,
            TensorData::U32(_) => DType::U32,
            TensorData::I64(_) => DType::I64,
            TensorData::U64(_) => DType::U64,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        each_variant!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as little-endian bytes, as [`TensorData::from_le_bytes`] reads them
    /// (bools as one byte, 0 or 1): what a copy to device memory sends.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        fn encode<T: Copy, const N: usize>(v: &[T], f: fn(T) -> [u8; N]) -> Vec<u8> {
            v.iter().flat_map(|&x| f(x)).collect()
        }
        match self {
            TensorData::F32(v) => encode(v, f32::to_le_bytes),
            TensorData::F16(v) => encode(v, f16::to_le_bytes),
            TensorData::BF16(v) => encode(v, bf16::to_le_bytes),
            TensorData::F64(v) => encode(v, f64::to_le_bytes),
            TensorData::I8(v) => encode(v, i8::to_le_bytes),
            TensorData::U8(v) => v.clone(),
            TensorData::I16(v) => encode(v, i16::to_le_bytes),
            TensorData::U16(v) => encode(v, u16::to_le_bytes),
            TensorData::I32(v) => encode(v, i32::to_le_bytes),
            TensorData::U32(v) => encode(v, u32::to_le_bytes),
            TensorData::I64(v) => encode(v, i64::to_le_bytes),
            TensorData::U64(v) => encode(v, u64::to_le_bytes),
            TensorData::Bool(v) => v.iter().map(|&b| u8::from(b)).collect(),
        }
    }

    /// Decodes little-endian bytes of `dtype`; `None` when the length is not a whole number of
    /// elements.
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Option<TensorData> {
        fn decode<T, const N: usize>(bytes: &[u8], f: fn([u8; N]) -> T) -> Option<Vec<T>> {
            bytes.len().is_multiple_of(N).then(|| {
                bytes
                    .chunks_exact(N)
                    .map(|c| f(c.try_into().expect("chunk of N")))
                    .collect()
            })
        }
        Some(match dtype {
            DType::F32 => TensorData::F32(decode(bytes, f32::from_le_bytes)?),
            DType::F16 => TensorData::F16(decode(bytes, f16::from_le_bytes)?),
            DType::BF16 => TensorData::BF16(decode(bytes, bf16::from_le_bytes)?),
            DType::F64 => TensorData::F64(decode(bytes, f64::from_le_bytes)?),
            DType::I8 => TensorData::I8(decode(bytes, i8::from_le_bytes)?),
            DType::U8 => TensorData::U8(bytes.to_vec()),
            DType::I16 => TensorData::I16(decode(bytes, i16::from_le_bytes)?),
            DType::U16 => TensorData::U16(decode(bytes, u16::from_le_bytes)?),
            DType::I32 => TensorData::I32(decode(bytes, i32::from_le_bytes)?),
            DType::U32 => TensorData::U32(decode(bytes, u32::from_le_bytes)?),
            DType::I64 => TensorData::I64(decode(bytes, i64::from_le_bytes)?),
            DType::U64 => TensorData::U64(decode(bytes, u64::from_le_bytes)?),
            DType::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        })
    }
}

impl Tensor {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        Tensor {
            shape,
            data: TensorData::F32(data),
        }
    }

    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Tensor {
        Tensor {
            shape,
            data: TensorData::I64(data),
        }
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The elements as i64s, when they are integers of any width (a shape, indices, pads).
    pub fn to_i64s(&self) -> Option<Vec<i64>> {
        Some(match &self.data {
            TensorData::I8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::I16(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::U16(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::U32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::I64(v) => v.clone(),
            TensorData::U64(v) => v.iter().map(|&x| x as i64).collect(),
            _ => return None,
        })
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Number of elements held.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The tensor as a weight (little-endian bytes), for values computed at compile time.
    pub fn to_weight(&self) -> Weight {
        let mut data = Vec::with_capacity(self.len() * self.dtype().size_bytes());
        match &self.data {
            TensorData::Bool(v) => data.extend(v.iter().map(|&b| b as u8)),
            TensorData::F32(v) => v
                .iter()
                .for_each(|x| data.extend_from_slice(&x.to_le_bytes())),
            TensorData::F16(v) => v
                .iter()
                .for_each(|x| data.extend_from_slice(&x.to_le_bytes())),
            TensorData::BF16(v) => v
                .iter()
                .for_each(|x| data.extend_from_slice(&x.to_le_bytes())),
            TensorData::F64(v) => v
                .iter()
                .for_each(|x| data.extend_from_slice(&x.to_le_bytes())),
            TensorData::I8(v) => v
                .iter()
                .for_each(|x| data.extend_from_slice(&x.to_le_bytes())),
            TensorData::U8(v) => data.extend_from_slice(v),
            TensorData::I16(v) => v
                .iter()
                .for_each(|x| data.extend_from_slice(&x.to_le_bytes())),
            TensorData::U16(v) => v
                .iter()
                .for_each(|x| data.extend_from_slice(&x.to_le_bytes())),
            TensorData::I32(v) => v
                .iter()
                .for_each(|x| data.extend_from_slice(&x.to_le_bytes())),
            TensorData::U32(v) => v
                .iter()
                .for_each(|x| data.extend_from_slice(&x.to_le_bytes())),
            TensorData::I64(v) => v
                .iter()
                .for_each(|x| data.extend_from_slice(&x.to_le_bytes())),
            TensorData::U64(v) => v
                .iter()
                .for_each(|x| data.extend_from_slice(&x.to_le_bytes())),
        }
        Weight {
            dtype: self.dtype(),
            dims: self.shape.clone(),
            data: data.into(),
        }
    }

    /// The weight's values as a tensor.
    pub fn from_weight(w: &Weight) -> Result<Tensor, RuntimeError> {
        let expected = w.element_count() * w.dtype.size_bytes();
        let data = TensorData::from_le_bytes(w.dtype, &w.data)
            .filter(|_| w.data.len() == expected)
            .ok_or_else(|| {
                RuntimeError::bad_input(format!(
                    "weight of {} {:?} holds {} bytes, {expected} expected",
                    w.dtype,
                    w.dims,
                    w.data.len()
                ))
            })?;
        Ok(Tensor {
            shape: w.dims.clone(),
            data,
        })
    }
}
