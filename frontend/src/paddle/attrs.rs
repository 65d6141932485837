//! Reading an op's attributes by name and kind; errors name the attribute and what was expected.

use super::proto::{op_desc::Attr, AttrType};
use temblor_ir::AttrValue;

#[derive(Clone, Copy)]
pub(super) struct Attrs<'p>(pub &'p [Attr]);

/// Paddle's bookkeeping attributes, which say nothing about what an op computes.
fn is_bookkeeping(name: &str) -> bool {
    name.starts_with("op_")
        || matches!(
            name,
            "use_mkldnn"
                | "use_cudnn"
                | "mkldnn_data_type"
                | "use_quantizer"
                | "with_quant_attr"
                | "is_test"
                | "force_cpu"
                | "workspace_size_MB"
                | "exhaustive_search"
                | "fuse_relu_before_depthwise_conv"
                | "use_addto"
                | "name"
        )
}

impl<'p> Attrs<'p> {
    fn get(&self, name: &str) -> Option<&'p Attr> {
        self.0.iter().find(|a| a.name == name)
    }

    fn kind(a: &Attr) -> Option<AttrType> {
        AttrType::try_from(a.r#type).ok()
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn int(&self, name: &str) -> Result<i64, String> {
        let a = self.required(name)?;
        match Self::kind(a) {
            Some(AttrType::Int) => Ok(a.i.unwrap_or_default() as i64),
            Some(AttrType::Long) => Ok(a.l.unwrap_or_default()),
            Some(AttrType::Boolean) => Ok(a.b.unwrap_or_default() as i64),
            _ => Err(format!("attribute '{name}' is not an integer")),
        }
    }

    pub fn int_or(&self, name: &str, default: i64) -> Result<i64, String> {
        if self.has(name) {
            self.int(name)
        } else {
            Ok(default)
        }
    }

    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, String> {
        Ok(self.int_or(name, default as i64)? != 0)
    }

    pub fn float(&self, name: &str) -> Result<f32, String> {
        let a = self.required(name)?;
        match Self::kind(a) {
            Some(AttrType::Float) => Ok(a.f.unwrap_or_default()),
            Some(AttrType::Float64) => Ok(a.float64.unwrap_or_default() as f32),
            Some(AttrType::Int) => Ok(a.i.unwrap_or_default() as f32),
            Some(AttrType::Long) => Ok(a.l.unwrap_or_default() as f32),
            _ => Err(format!("attribute '{name}' is not a number")),
        }
    }

    pub fn float_or(&self, name: &str, default: f32) -> Result<f32, String> {
        if self.has(name) {
            self.float(name)
        } else {
            Ok(default)
        }
    }

    pub fn ints(&self, name: &str) -> Result<Vec<i64>, String> {
        let a = self.required(name)?;
        match Self::kind(a) {
            Some(AttrType::Ints) => Ok(a.ints.iter().map(|&v| v as i64).collect()),
            Some(AttrType::Longs) => Ok(a.longs.clone()),
            Some(AttrType::Booleans) => Ok(a.bools.iter().map(|&v| v as i64).collect()),
            _ => Err(format!("attribute '{name}' is not a list of integers")),
        }
    }

    pub fn ints_or(&self, name: &str, default: &[i64]) -> Result<Vec<i64>, String> {
        if self.has(name) {
            self.ints(name)
        } else {
            Ok(default.to_vec())
        }
    }

    pub fn floats(&self, name: &str) -> Result<Vec<f32>, String> {
        let a = self.required(name)?;
        match Self::kind(a) {
            Some(AttrType::Floats) => Ok(a.floats.clone()),
            Some(AttrType::Float64s) => Ok(a.float64s.iter().map(|&v| v as f32).collect()),
            Some(AttrType::Ints) => Ok(a.ints.iter().map(|&v| v as f32).collect()),
            _ => Err(format!("attribute '{name}' is not a list of numbers")),
        }
    }

    pub fn string_or(&self, name: &str, default: &str) -> Result<String, String> {
        match self.get(name) {
            None => Ok(default.to_string()),
            Some(a) if Self::kind(a) == Some(AttrType::String) => {
                Ok(a.s.clone().unwrap_or_default())
            }
            Some(_) => Err(format!("attribute '{name}' is not a string")),
        }
    }

    pub fn block(&self, name: &str) -> Result<usize, String> {
        let a = self.required(name)?;
        match (Self::kind(a), a.block_idx) {
            (Some(AttrType::Block), Some(i)) if i >= 0 => Ok(i as usize),
            _ => Err(format!("attribute '{name}' is not a block index")),
        }
    }

    fn required(&self, name: &str) -> Result<&'p Attr, String> {
        self.get(name)
            .ok_or_else(|| format!("attribute '{name}' is missing"))
    }

    /// Every attribute that describes the computation, as the parse view and ops_lib read them.
    pub fn source(&self) -> Vec<(String, AttrValue)> {
        self.0
            .iter()
            .filter(|a| !is_bookkeeping(&a.name))
            .filter_map(|a| Some((a.name.clone(), to_attr_value(a)?)))
            .collect()
    }
}

fn to_attr_value(a: &Attr) -> Option<AttrValue> {
    Some(match Attrs::kind(a)? {
        AttrType::Int => AttrValue::Int(a.i.unwrap_or_default() as i64),
        AttrType::Long => AttrValue::Int(a.l.unwrap_or_default()),
        AttrType::Boolean => AttrValue::Int(a.b.unwrap_or_default() as i64),
        AttrType::Float => AttrValue::Float(a.f.unwrap_or_default()),
        AttrType::Float64 => AttrValue::Float(a.float64.unwrap_or_default() as f32),
        AttrType::String => AttrValue::String(a.s.clone().unwrap_or_default()),
        AttrType::Ints => AttrValue::Ints(a.ints.iter().map(|&v| v as i64).collect()),
        AttrType::Longs => AttrValue::Ints(a.longs.clone()),
        AttrType::Booleans => AttrValue::Ints(a.bools.iter().map(|&v| v as i64).collect()),
        AttrType::Floats => AttrValue::Floats(a.floats.clone()),
        AttrType::Float64s => AttrValue::Floats(a.float64s.iter().map(|&v| v as f32).collect()),
        AttrType::Strings => AttrValue::Strings(a.strings.clone()),
        AttrType::Block => AttrValue::Int(a.block_idx.unwrap_or_default() as i64),
        AttrType::Blocks => AttrValue::Ints(a.blocks_idx.iter().map(|&v| v as i64).collect()),
        AttrType::Var | AttrType::Vars | AttrType::Scalar | AttrType::Scalars => return None,
    })
}
