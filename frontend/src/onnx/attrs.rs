//! ONNX attributes: the verbatim copy kept as source attributes, and typed getters with the
//! defaults each op's spec gives.

use super::proto::attribute_proto::AttributeType;
use super::proto::{AttributeProto, TensorProto};
use super::tensor;
use temblor_ir::AttrValue;

/// The attribute as the parse view shows it. Old exporters leave `type` unset, so the kind is
/// then guessed from the field that holds data.
pub(super) fn to_attr_value(a: &AttributeProto) -> AttrValue {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match kind(a) {
        AttributeType::Float => AttrValue::Float(a.f),
        AttributeType::Int => AttrValue::Int(a.i),
        AttributeType::String => AttrValue::String(text(&a.s)),
        AttributeType::Floats => AttrValue::Floats(a.floats.clone()),
        AttributeType::Ints => AttrValue::Ints(a.ints.clone()),
        AttributeType::Strings => AttrValue::Strings(a.strings.iter().map(|s| text(s)).collect()),
        AttributeType::Tensor => match &a.t {
            Some(t) => AttrValue::Tensor {
                dtype: tensor::dtype_name(t.data_type),
                dims: t.dims.clone(),
            },
            None => AttrValue::String("<missing tensor>".into()),
        },
        other => AttrValue::String(format!(
            "<{} attribute>",
            other.as_str_name().to_lowercase()
        )),
    }
}

fn kind(a: &AttributeProto) -> AttributeType {
    match AttributeType::try_from(a.r#type) {
        Ok(AttributeType::Undefined) | Err(_) => {
            if !a.ints.is_empty() {
                AttributeType::Ints
            } else if !a.floats.is_empty() {
                AttributeType::Floats
            } else if !a.strings.is_empty() {
                AttributeType::Strings
            } else if a.t.is_some() {
                AttributeType::Tensor
            } else if !a.s.is_empty() {
                AttributeType::String
            } else if a.f != 0.0 {
                AttributeType::Float
            } else {
                AttributeType::Int
            }
        }
        Ok(t) => t,
    }
}

/// Typed access to one node's attributes. Errors are short phrases; the importer prefixes the
/// file and node.
pub(super) struct Attrs<'a>(pub &'a [AttributeProto]);

impl<'a> Attrs<'a> {
    pub fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.0.iter().find(|a| a.name == name)
    }

    fn typed(&self, name: &str, want: AttributeType) -> Result<Option<&'a AttributeProto>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if kind(a) == want => Ok(Some(a)),
            Some(a) => Err(format!(
                "attribute '{name}' is {}, expected {}",
                kind(a).as_str_name(),
                want.as_str_name()
            )),
        }
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64, String> {
        Ok(self
            .typed(name, AttributeType::Int)?
            .map_or(default, |a| a.i))
    }

    pub fn float(&self, name: &str, default: f32) -> Result<f32, String> {
        Ok(self
            .typed(name, AttributeType::Float)?
            .map_or(default, |a| a.f))
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, String> {
        Ok(self
            .typed(name, AttributeType::Ints)?
            .map(|a| a.ints.clone()))
    }

    pub fn string(&self, name: &str, default: &str) -> Result<String, String> {
        Ok(self.typed(name, AttributeType::String)?.map_or_else(
            || default.to_string(),
            |a| String::from_utf8_lossy(&a.s).into_owned(),
        ))
    }

    pub fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>, String> {
        Ok(self
            .typed(name, AttributeType::Tensor)?
            .and_then(|a| a.t.as_ref()))
    }

    /// A non-negative integer, as a count or index.
    pub fn usize(&self, name: &str, default: usize) -> Result<usize, String> {
        let v = self.int(name, default as i64)?;
        usize::try_from(v).map_err(|_| format!("attribute '{name}' is {v}, expected >= 0"))
    }

    /// A list of non-negative integers of exactly `N` entries, or `default` when absent.
    pub fn usizes<const N: usize>(
        &self,
        name: &str,
        default: [usize; N],
    ) -> Result<[usize; N], String> {
        let Some(v) = self.ints(name)? else {
            return Ok(default);
        };
        if v.len() != N {
            return Err(format!(
                "attribute '{name}' has {} entries, expected {N}",
                v.len()
            ));
        }
        let mut out = default;
        for (o, x) in out.iter_mut().zip(&v) {
            *o = usize::try_from(*x)
                .map_err(|_| format!("attribute '{name}' holds {x}, expected >= 0"))?;
        }
        Ok(out)
    }
}
