//! ModelProto assembly: the opset, graph input/output types, tensors, and weights as external
//! data in a side file.

use bytes::Bytes;
use std::collections::HashMap;
use std::io::Write;
use temblor_frontend::onnx_proto::tensor_proto::{DataLocation, DataType};
use temblor_frontend::onnx_proto::tensor_shape_proto::{dimension, Dimension};
use temblor_frontend::onnx_proto::type_proto::{self, Value};
use temblor_frontend::onnx_proto::{
    GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use temblor_ir::{DType, Dim, TensorType, Weight, WeightId};

/// Opset 20 of the default domain has every op the IR maps to one ONNX op: HardSwish (14),
/// LayerNormalization (17), Mish and axes-as-inputs Reduce and Split (18), DeformConv (19),
/// Gelu and GridSample's `linear`/`cubic` (20). TensorRT 10 and onnxruntime read it.
pub(super) const OPSET: i64 = 20;
/// The IR version that opset 20 requires (ONNX 1.15).
const IR_VERSION: i64 = 9;
/// The opset of a file that holds bfloat16 values: opset 22 is the first whose arithmetic ops
/// (Conv, the activations, pooling) take bfloat16; from 20 to 22 the ops only gained types.
const BF16_OPSET: i64 = 22;
/// The IR version that opset 22 requires (ONNX 1.17).
const BF16_IR_VERSION: i64 = 10;
/// Weights smaller than this stay inline, as `onnx.save_model`'s default threshold does:
/// shape operands then remain visible to ONNX shape inference.
const EXTERNAL_THRESHOLD: usize = 1024;
const ALIGN: usize = 64;

pub(super) fn dtype_code(dtype: DType) -> i32 {
    (match dtype {
        DType::F32 => DataType::Float,
        DType::F16 => DataType::Float16,
        DType::BF16 => DataType::Bfloat16,
        DType::F64 => DataType::Double,
        DType::I8 => DataType::Int8,
        DType::U8 => DataType::Uint8,
        DType::I16 => DataType::Int16,
        DType::U16 => DataType::Uint16,
        DType::I32 => DataType::Int32,
        DType::U32 => DataType::Uint32,
        DType::I64 => DataType::Int64,
        DType::U64 => DataType::Uint64,
        DType::Bool => DataType::Bool,
    }) as i32
}

pub(super) fn value_info(name: &str, ty: &TensorType) -> ValueInfoProto {
    let dim = |d: &Dim| Dimension {
        value: match d {
            Dim::Known(n) => Some(dimension::Value::DimValue(*n as i64)),
            Dim::Symbol(s) => Some(dimension::Value::DimParam(s.clone())),
            Dim::Unknown => None,
        },
        ..Dimension::default()
    };
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(Value::TensorType(type_proto::Tensor {
                elem_type: dtype_code(ty.dtype),
                shape: Some(TensorShapeProto {
                    dim: ty.shape.dims().iter().map(dim).collect(),
                }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

/// A tensor with its bytes inline.
pub(super) fn raw_tensor(name: &str, dtype: DType, dims: &[usize], data: Bytes) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: dtype_code(dtype),
        dims: dims.iter().map(|&d| d as i64).collect(),
        raw_data: data,
        ..TensorProto::default()
    }
}

/// `value` as one little-endian element of `dtype` (operands the export makes up, such as Clip
/// bounds, take the dtype of the tensor they apply to).
pub(super) fn scalar_bytes(dtype: DType, value: f64) -> Bytes {
    let v: Vec<u8> = match dtype {
        DType::F32 => (value as f32).to_le_bytes().to_vec(),
        DType::F16 => temblor_runtime::f16::from_f64(value).to_le_bytes().to_vec(),
        DType::BF16 => temblor_runtime::bf16::from_f64(value)
            .to_le_bytes()
            .to_vec(),
        DType::F64 => value.to_le_bytes().to_vec(),
        DType::I8 => (value as i8).to_le_bytes().to_vec(),
        DType::U8 => (value as u8).to_le_bytes().to_vec(),
        DType::I16 => (value as i16).to_le_bytes().to_vec(),
        DType::U16 => (value as u16).to_le_bytes().to_vec(),
        DType::I32 => (value as i32).to_le_bytes().to_vec(),
        DType::U32 => (value as u32).to_le_bytes().to_vec(),
        DType::I64 => (value as i64).to_le_bytes().to_vec(),
        DType::U64 => (value as u64).to_le_bytes().to_vec(),
        DType::Bool => vec![(value != 0.0) as u8],
    };
    Bytes::from(v)
}

/// A float16 or bfloat16 weight as float32 (exact: every half is a float).
pub(super) fn widen_half(w: &Weight) -> Weight {
    let widen = |c: &[u8]| match w.dtype {
        DType::BF16 => temblor_runtime::bf16::from_le_bytes([c[0], c[1]]).to_f32(),
        _ => temblor_runtime::f16::from_le_bytes([c[0], c[1]]).to_f32(),
    };
    let data: Vec<u8> = w
        .data
        .chunks_exact(2)
        .flat_map(|c| widen(c).to_le_bytes())
        .collect();
    Weight {
        dtype: DType::F32,
        dims: w.dims.clone(),
        data: Bytes::from(data),
    }
}

/// Writes weights into the external data file as the initializers referring to them are made;
/// a weight read by several constants is stored once.
pub(super) struct ExternalData<W: Write> {
    out: W,
    location: String,
    len: usize,
    placed: HashMap<WeightId, (usize, usize)>,
}

impl<W: Write> ExternalData<W> {
    pub fn new(out: W, location: &str) -> ExternalData<W> {
        ExternalData {
            out,
            location: location.into(),
            len: 0,
            placed: HashMap::new(),
        }
    }

    /// The initializer `name` holding `w`: inline when small, else a reference to its 64-byte
    /// aligned range in the data file. `id` is the weight's in the graph's store, if it has one.
    pub fn initializer(
        &mut self,
        name: &str,
        id: Option<WeightId>,
        w: &Weight,
    ) -> std::io::Result<TensorProto> {
        if w.data.len() < EXTERNAL_THRESHOLD {
            return Ok(raw_tensor(name, w.dtype, &w.dims, w.data.clone()));
        }
        let (offset, length) = match id.and_then(|id| self.placed.get(&id)) {
            Some(&range) => range,
            None => {
                let offset = self.len.next_multiple_of(ALIGN);
                self.out.write_all(&vec![0u8; offset - self.len])?;
                self.out.write_all(&w.data)?;
                self.len = offset + w.data.len();
                if let Some(id) = id {
                    self.placed.insert(id, (offset, w.data.len()));
                }
                (offset, w.data.len())
            }
        };
        let entry = |key: &str, value: String| StringStringEntryProto {
            key: key.into(),
            value,
        };
        Ok(TensorProto {
            name: name.into(),
            data_type: dtype_code(w.dtype),
            dims: w.dims.iter().map(|&d| d as i64).collect(),
            data_location: DataLocation::External as i32,
            external_data: vec![
                entry("location", self.location.clone()),
                entry("offset", offset.to_string()),
                entry("length", length.to_string()),
            ],
            ..TensorProto::default()
        })
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The model around `graph`, importing opset [`OPSET`] ([`BF16_OPSET`] when `bf16`, the graph
/// holds bfloat16 values) and each extra domain at version 1.
pub(super) fn model(graph: GraphProto, domains: &[String], bf16: bool) -> ModelProto {
    let (opset, ir_version) = if bf16 {
        (BF16_OPSET, BF16_IR_VERSION)
    } else {
        (OPSET, IR_VERSION)
    };
    let mut opset_import = vec![OperatorSetIdProto {
        domain: String::new(),
        version: opset,
    }];
    opset_import.extend(domains.iter().map(|d| OperatorSetIdProto {
        domain: d.clone(),
        version: 1,
    }));
    ModelProto {
        ir_version,
        opset_import,
        producer_name: "temblor".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        ..ModelProto::default()
    }
}
