//! TensorProto -> ir::Weight. Raw data stays a slice of the memory-mapped model; external data is
//! mapped from its side file (one map per file) and bounds-checked; the typed repeated fields
//! (float_data, int64_data, ...) are the only case that copies.

use super::attrs::Attrs;
use super::proto::tensor_proto::{DataLocation, DataType};
use super::proto::TensorProto;
use bytes::Bytes;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use temblor_ir::{DType, Weight};

pub(super) fn dtype(code: i32) -> Option<DType> {
    match DataType::try_from(code).ok()? {
        DataType::Float => Some(DType::F32),
        DataType::Float16 => Some(DType::F16),
        DataType::Bfloat16 => Some(DType::BF16),
        DataType::Double => Some(DType::F64),
        DataType::Int8 => Some(DType::I8),
        DataType::Uint8 => Some(DType::U8),
        DataType::Int16 => Some(DType::I16),
        DataType::Uint16 => Some(DType::U16),
        DataType::Int32 => Some(DType::I32),
        DataType::Uint32 => Some(DType::U32),
        DataType::Int64 => Some(DType::I64),
        DataType::Uint64 => Some(DType::U64),
        DataType::Bool => Some(DType::Bool),
        _ => None,
    }
}

/// ONNX's name of a data type code, for messages and the parse view.
pub(super) fn dtype_name(code: i32) -> String {
    match DataType::try_from(code) {
        Ok(t) => t.as_str_name().to_lowercase(),
        Err(_) => format!("data type {code}"),
    }
}

/// Reads tensors of one model; remembers the external files it has mapped.
pub(super) struct TensorReader {
    model_dir: PathBuf,
    external: HashMap<String, Bytes>,
}

impl TensorReader {
    pub fn new(model_dir: &Path) -> TensorReader {
        TensorReader {
            model_dir: model_dir.to_path_buf(),
            external: HashMap::new(),
        }
    }

    /// The weight of `t`; errors are phrases naming the tensor, without the model file.
    pub fn weight(&mut self, t: &TensorProto) -> Result<Weight, String> {
        let name = &t.name;
        let dtype = dtype(t.data_type).ok_or_else(|| {
            format!(
                "tensor '{name}' has unsupported type {}",
                dtype_name(t.data_type)
            )
        })?;
        let mut dims = Vec::with_capacity(t.dims.len());
        for &d in &t.dims {
            dims.push(
                usize::try_from(d).map_err(|_| format!("tensor '{name}' has dimension {d}"))?,
            );
        }
        let count = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| format!("tensor '{name}' is too large"))?;
        let len = count
            .checked_mul(dtype.size_bytes())
            .ok_or_else(|| format!("tensor '{name}' is too large"))?;
        let data = if t.data_location == DataLocation::External as i32 {
            self.external_data(t, len)?
        } else if !t.raw_data.is_empty() {
            t.raw_data.clone()
        } else {
            typed_data(t, dtype, count)
        };
        if data.len() != len {
            return Err(format!(
                "tensor '{name}' holds {} bytes, {len} expected for {dtype} {dims:?}",
                data.len()
            ));
        }
        Ok(Weight { dtype, dims, data })
    }

    /// The value of a Constant node, from whichever `value*` attribute it uses.
    pub fn constant(&mut self, attrs: &Attrs) -> Result<Weight, String> {
        if let Some(t) = attrs.tensor("value")? {
            return self.weight(t);
        }
        if let Some(a) = attrs.get("value_float") {
            return Ok(Weight::from_f32(vec![], &[a.f]));
        }
        if let Some(a) = attrs.get("value_floats") {
            return Ok(Weight::from_f32(vec![a.floats.len()], &a.floats));
        }
        if let Some(a) = attrs.get("value_int") {
            return Ok(Weight::from_i64(vec![], &[a.i]));
        }
        if let Some(a) = attrs.get("value_ints") {
            return Ok(Weight::from_i64(vec![a.ints.len()], &a.ints));
        }
        let kinds: Vec<&str> = attrs.0.iter().map(|a| a.name.as_str()).collect();
        Err(format!("value attributes {kinds:?} are not supported"))
    }

    fn external_data(&mut self, t: &TensorProto, len: usize) -> Result<Bytes, String> {
        let name = &t.name;
        let entry = |key: &str| {
            t.external_data
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.value.as_str())
        };
        let location = entry("location")
            .ok_or_else(|| format!("tensor '{name}' is external but names no location"))?;
        let number = |key: &str| -> Result<Option<usize>, String> {
            entry(key)
                .map(|v| {
                    v.trim().parse::<usize>().map_err(|_| {
                        format!("tensor '{name}': external {key} '{v}' is not a number")
                    })
                })
                .transpose()
        };
        let offset = number("offset")?.unwrap_or(0);
        let length = number("length")?;
        let file = self
            .map_external(location)
            .map_err(|e| format!("tensor '{name}': {e}"))?;
        let end = match length {
            Some(l) => offset.checked_add(l),
            None => offset.checked_add(len),
        }
        .filter(|&end| end <= file.len())
        .ok_or_else(|| {
            format!(
                "tensor '{name}': bytes {offset}..{} lie outside '{location}' ({} bytes)",
                offset.saturating_add(length.unwrap_or(len)),
                file.len()
            )
        })?;
        Ok(file.slice(offset..end))
    }

    fn map_external(&mut self, location: &str) -> Result<Bytes, String> {
        if let Some(b) = self.external.get(location) {
            return Ok(b.clone());
        }
        let rel = Path::new(location);
        // A model must not make us read files outside its own directory.
        if location.is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(format!(
                "external data location '{location}' is not a plain relative path"
            ));
        }
        let path = self.model_dir.join(rel);
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("cannot open external data '{}': {e}", path.display()))?;
        let size = file
            .metadata()
            .map_err(|e| format!("cannot read external data '{}': {e}", path.display()))?
            .len();
        let bytes = if size == 0 {
            Bytes::new()
        } else {
            // SAFETY: the map is read-only; like every mmap user we rely on the file not being
            // truncated by another process while the compiler runs.
            let map = unsafe { memmap2::Mmap::map(&file) }
                .map_err(|e| format!("cannot map external data '{}': {e}", path.display()))?;
            Bytes::from_owner(map)
        };
        self.external.insert(location.to_string(), bytes.clone());
        Ok(bytes)
    }
}

/// Values stored in the typed repeated fields, re-encoded little-endian.
fn typed_data(t: &TensorProto, dtype: DType, count: usize) -> Bytes {
    let mut out = Vec::with_capacity(count.saturating_mul(dtype.size_bytes()).min(1 << 30));
    match dtype {
        DType::F32 => t
            .float_data
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DType::F64 => t
            .double_data
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DType::I64 => t
            .int64_data
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DType::I32 => t
            .int32_data
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DType::U32 | DType::U64 => t.uint64_data.iter().for_each(|&v| {
            out.extend_from_slice(&v.to_le_bytes()[..dtype.size_bytes()]);
        }),
        // ONNX keeps the narrow types one per int32 entry (f16 and bf16 as their bit patterns).
        DType::F16 | DType::BF16 | DType::I16 | DType::U16 => t
            .int32_data
            .iter()
            .for_each(|&v| out.extend_from_slice(&(v as u16).to_le_bytes())),
        DType::I8 | DType::U8 | DType::Bool => t.int32_data.iter().for_each(|&v| out.push(v as u8)),
    }
    Bytes::from(out)
}
