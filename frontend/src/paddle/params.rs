//! Paddle's parameter files. Each tensor is stored as: a u32 version word, a u64 count of LoD
//! levels each followed by its u64 byte size and data, a second u32 version word, an i32-length-
//! prefixed `VarType.TensorDesc` protobuf, then the raw little-endian elements. A combined file
//! (`__params__`, `*.pdiparams`) holds the persistable variables in sorted name order; the
//! separate layout holds one such record per file, named after the variable.

use super::proto::var_type::{TensorDesc, Type as VarDType};
use super::proto::VarDesc;
use bytes::Bytes;
use prost::Message;
use std::path::Path;
use temblor_ir::{DType, Weight};

pub(super) fn dtype(t: i32) -> Result<DType, String> {
    Ok(match VarDType::try_from(t) {
        Ok(VarDType::Bool) => DType::Bool,
        Ok(VarDType::Int16) => DType::I16,
        Ok(VarDType::Int32) => DType::I32,
        Ok(VarDType::Int64) => DType::I64,
        Ok(VarDType::Fp16) => DType::F16,
        Ok(VarDType::Fp32) => DType::F32,
        Ok(VarDType::Fp64) => DType::F64,
        Ok(VarDType::Uint8) => DType::U8,
        Ok(VarDType::Int8) => DType::I8,
        Ok(other) => {
            return Err(format!(
                "data type {} is not supported",
                other.as_str_name()
            ))
        }
        Err(_) => return Err(format!("unknown data type code {t}")),
    })
}

/// The declared tensor description of a variable, when it is a dense tensor.
pub(super) fn tensor_desc(var: &VarDesc) -> Option<&TensorDesc> {
    var.r#type.lod_tensor.as_ref().map(|l| &l.tensor)
}

pub(super) fn map_file(path: &Path) -> Result<Bytes, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    if f.metadata().map_err(|e| e.to_string())?.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: read-only map; weights keep slices of it, so the file must not be truncated by
    // another process while the compiler runs, which holds for any mmap-based loader.
    let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| format!("cannot map: {e}"))?;
    Ok(Bytes::from_owner(map))
}

/// A cursor over one parameter file.
pub(super) struct Reader {
    data: Bytes,
    pos: usize,
}

impl Reader {
    pub fn new(data: Bytes) -> Reader {
        Reader { data, pos: 0 }
    }

    /// Bytes read so far.
    #[cfg(test)]
    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, n: usize, var: &str, what: &str) -> Result<Bytes, String> {
        if self.remaining() < n {
            return Err(format!(
                "the parameters end inside '{var}' ({what}: {n} bytes needed, {} left); \
                 the file is truncated or belongs to another model",
                self.remaining()
            ));
        }
        let out = self.data.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    fn u32(&mut self, var: &str, what: &str) -> Result<u32, String> {
        let b = self.take(4, var, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, var: &str, what: &str) -> Result<u64, String> {
        let b = self.take(8, var, what)?;
        Ok(u64::from_le_bytes(b[..8].try_into().expect("8 bytes")))
    }

    /// Reads the next tensor record as the weight of `var`, checking it against the program's
    /// declaration of that variable.
    pub fn tensor(&mut self, var: &VarDesc) -> Result<Weight, String> {
        let name = var.name.as_str();
        let version = self.u32(name, "version")?;
        if version != 0 {
            return Err(format!(
                "parameter '{name}': tensor version {version} is not 0; not a Paddle parameter file, \
                 or parameters of another model"
            ));
        }
        let levels = self.u64(name, "LoD level count")?;
        for _ in 0..levels {
            let size = self.u64(name, "LoD level size")?;
            let size = usize::try_from(size)
                .map_err(|_| format!("parameter '{name}': LoD size {size}"))?;
            self.take(size, name, "LoD data")?;
        }
        let version = self.u32(name, "tensor version")?;
        if version != 0 {
            return Err(format!(
                "parameter '{name}': tensor version {version} is not 0; the parameters do not \
                 match the program"
            ));
        }
        let desc_len = self.u32(name, "description size")? as usize;
        let desc = self.take(desc_len, name, "tensor description")?;
        let desc = TensorDesc::decode(desc).map_err(|e| {
            format!("parameter '{name}': corrupt tensor description ({e}); the parameters do not match the program")
        })?;
        let dtype = dtype(desc.data_type).map_err(|e| format!("parameter '{name}': {e}"))?;
        if desc.dims.iter().any(|&d| d < 0) {
            return Err(format!(
                "parameter '{name}': negative extent in {:?}",
                desc.dims
            ));
        }
        let dims: Vec<usize> = desc.dims.iter().map(|&d| d as usize).collect();
        if let Some(declared) = tensor_desc(var) {
            let declared_dtype =
                self::dtype(declared.data_type).map_err(|e| format!("parameter '{name}': {e}"))?;
            if declared.dims != desc.dims || declared_dtype != dtype {
                return Err(format!(
                    "parameter '{name}': the file holds {dtype} {:?}, the program declares {declared_dtype} {:?}; \
                     the parameters belong to another model",
                    desc.dims, declared.dims
                ));
            }
        }
        let bytes = dims.iter().product::<usize>() * dtype.size_bytes();
        let data = self.take(bytes, name, "tensor data")?;
        Ok(Weight { dtype, dims, data })
    }
}
