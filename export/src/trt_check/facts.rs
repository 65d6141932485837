//! What the rules need to know of a graph's values: which are constants (initializers and
//! Constant nodes, external data read on demand), which node makes each, their element types
//! where the file says, and which are graph outputs.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use temblor_frontend::onnx_proto::tensor_proto::{DataLocation, DataType};
use temblor_frontend::onnx_proto::type_proto::Value;
use temblor_frontend::onnx_proto::{GraphProto, NodeProto, TensorProto};

/// External data larger than this is not read (scales and zero points are small).
const READ_LIMIT: u64 = 1 << 20;

/// External data read so far (or found unreadable), by location, offset and length.
type ExternalReads = HashMap<(String, u64, u64), Option<Vec<u8>>>;

pub(super) struct Facts<'a> {
    constants: HashMap<&'a str, &'a TensorProto>,
    producers: HashMap<&'a str, &'a NodeProto>,
    types: HashMap<&'a str, i32>,
    ranks: HashMap<&'a str, usize>,
    pub outputs: HashSet<&'a str>,
    outer: Option<&'a Facts<'a>>,
    dir: PathBuf,
    read: RefCell<ExternalReads>,
}

impl<'a> Facts<'a> {
    pub fn new(g: &'a GraphProto, dir: &Path, outer: Option<&'a Facts<'a>>) -> Facts<'a> {
        let mut constants: HashMap<&str, &TensorProto> =
            g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut producers = HashMap::new();
        let mut types: HashMap<&str, i32> = HashMap::new();
        let mut ranks: HashMap<&str, usize> = HashMap::new();
        for v in g.input.iter().chain(&g.output).chain(&g.value_info) {
            if let Some(Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                types.insert(v.name.as_str(), t.elem_type);
                if let Some(shape) = &t.shape {
                    ranks.insert(v.name.as_str(), shape.dim.len());
                }
            }
        }
        for t in &g.initializer {
            types.insert(t.name.as_str(), t.data_type);
            ranks.insert(t.name.as_str(), t.dims.len());
        }
        for n in &g.node {
            for o in &n.output {
                producers.insert(o.as_str(), n);
            }
            if n.op_type == "Constant" {
                if let (Some(out), Some(t)) = (
                    n.output.first(),
                    n.attribute.iter().find_map(|a| a.t.as_ref()),
                ) {
                    constants.insert(out.as_str(), t);
                    types.insert(out.as_str(), t.data_type);
                }
            }
            if n.op_type == "Cast" {
                if let (Some(out), Some(to)) = (
                    n.output.first(),
                    n.attribute.iter().find(|a| a.name == "to"),
                ) {
                    types.insert(out.as_str(), to.i as i32);
                }
            }
        }
        Facts {
            constants,
            producers,
            types,
            ranks,
            outputs: g.output.iter().map(|o| o.name.as_str()).collect(),
            outer,
            dir: dir.to_path_buf(),
            read: RefCell::new(HashMap::new()),
        }
    }

    pub fn constant(&self, name: &str) -> Option<&'a TensorProto> {
        self.constants
            .get(name)
            .copied()
            .or_else(|| self.outer.and_then(|o| o.constant(name)))
    }

    pub fn is_constant(&self, name: &str) -> bool {
        self.constant(name).is_some()
    }

    pub fn producer(&self, name: &str) -> Option<&'a NodeProto> {
        self.producers.get(name).copied()
    }

    /// The element type (ONNX's `DataType` code) where the file gives it.
    pub fn elem_type(&self, name: &str) -> Option<i32> {
        self.types
            .get(name)
            .copied()
            .or_else(|| self.outer.and_then(|o| o.elem_type(name)))
    }

    /// The rank where the file gives the shape.
    pub fn rank(&self, name: &str) -> Option<usize> {
        self.ranks
            .get(name)
            .copied()
            .or_else(|| self.outer.and_then(|o| o.rank(name)))
    }

    /// A constant's values as f64, when its type is numeric and its data can be read.
    pub fn values(&self, name: &str) -> Option<Vec<f64>> {
        let t = self.constant(name)?;
        let raw = if t.data_location == DataLocation::External as i32 {
            self.external(t)?
        } else {
            t.raw_data.to_vec()
        };
        if raw.is_empty() {
            return typed_fields(t);
        }
        decode(t.data_type, &raw)
    }

    fn external(&self, t: &TensorProto) -> Option<Vec<u8>> {
        let entry = |k: &str| {
            t.external_data
                .iter()
                .find(|e| e.key == k)
                .map(|e| e.value.clone())
        };
        let location = entry("location")?;
        let offset: u64 = entry("offset").map_or(Some(0), |v| v.parse().ok())?;
        let length: u64 = entry("length")?.parse().ok()?;
        if length > READ_LIMIT || location.contains("..") || location.starts_with('/') {
            return None;
        }
        let key = (location.clone(), offset, length);
        if let Some(v) = self.read.borrow().get(&key) {
            return v.clone();
        }
        let read = || -> std::io::Result<Vec<u8>> {
            let mut f = std::fs::File::open(self.dir.join(&location))?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = vec![0; length as usize];
            f.read_exact(&mut buf)?;
            Ok(buf)
        };
        let v = read().ok();
        self.read.borrow_mut().insert(key, v.clone());
        v
    }
}

fn typed_fields(t: &TensorProto) -> Option<Vec<f64>> {
    let code = DataType::try_from(t.data_type).ok()?;
    Some(match code {
        DataType::Float => t.float_data.iter().map(|&v| f64::from(v)).collect(),
        DataType::Double => t.double_data.clone(),
        DataType::Int64 => t.int64_data.iter().map(|&v| v as f64).collect(),
        DataType::Int32 | DataType::Int8 | DataType::Uint8 | DataType::Int16 | DataType::Uint16 => {
            t.int32_data.iter().map(|&v| f64::from(v)).collect()
        }
        DataType::Float16 => t
            .int32_data
            .iter()
            .map(|&v| f64::from(half::f16::from_bits(v as u16)))
            .collect(),
        _ => return None,
    })
}

fn decode(data_type: i32, raw: &[u8]) -> Option<Vec<f64>> {
    let code = DataType::try_from(data_type).ok()?;
    let chunks = |n: usize| raw.chunks_exact(n);
    Some(match code {
        DataType::Float => chunks(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        DataType::Float16 => chunks(2)
            .map(|b| f64::from(half::f16::from_le_bytes([b[0], b[1]])))
            .collect(),
        DataType::Double => chunks(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .collect(),
        DataType::Int64 => chunks(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f64)
            .collect(),
        DataType::Int32 => chunks(4)
            .map(|b| f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        DataType::Int8 => raw.iter().map(|&b| f64::from(b as i8)).collect(),
        DataType::Uint8 => raw.iter().map(|&b| f64::from(b)).collect(),
        _ => return None,
    })
}
