//! Reading Paddle's attribute lists into the typed attributes of ops_lib operators, with errors
//! that name the op and the attribute. Parsing happens once, at import (or when an older package
//! is loaded); nothing after that reads attribute lists.

use crate::AttrValue;

pub(super) struct Attrs<'a> {
    op: &'static str,
    list: &'a [(String, AttrValue)],
}

impl<'a> Attrs<'a> {
    pub(super) fn new(op: &'static str, list: &'a [(String, AttrValue)]) -> Attrs<'a> {
        Attrs { op, list }
    }

    fn get(&self, name: &str) -> Option<&'a AttrValue> {
        self.list.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    fn required(&self, name: &str) -> Result<&'a AttrValue, String> {
        self.get(name)
            .ok_or_else(|| format!("{}: attribute `{name}` is missing", self.op))
    }

    fn wrong(&self, name: &str, expected: &str, got: &AttrValue) -> String {
        format!(
            "{}: attribute `{name}` must be {expected}, got {got:?}",
            self.op
        )
    }

    fn as_int(&self, name: &str, v: &AttrValue) -> Result<i64, String> {
        match v {
            AttrValue::Int(i) => Ok(*i),
            other => Err(self.wrong(name, "an integer", other)),
        }
    }

    fn as_float(&self, name: &str, v: &AttrValue) -> Result<f32, String> {
        match v {
            AttrValue::Float(f) => Ok(*f),
            AttrValue::Int(i) => Ok(*i as f32),
            other => Err(self.wrong(name, "a float", other)),
        }
    }

    fn as_bool(&self, name: &str, v: &AttrValue) -> Result<bool, String> {
        match v {
            AttrValue::Int(0) => Ok(false),
            AttrValue::Int(1) => Ok(true),
            other => Err(self.wrong(name, "a boolean (Int 0 or 1)", other)),
        }
    }

    pub(super) fn int(&self, name: &str) -> Result<i64, String> {
        self.as_int(name, self.required(name)?)
    }

    pub(super) fn float(&self, name: &str) -> Result<f32, String> {
        self.as_float(name, self.required(name)?)
    }

    pub(super) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub(super) fn ints(&self, name: &str) -> Result<Vec<i64>, String> {
        match self.required(name)? {
            AttrValue::Ints(v) => Ok(v.clone()),
            other => Err(self.wrong(name, "a list of integers", other)),
        }
    }

    /// Attributes Paddle added after an op's first release are absent from older programs;
    /// Paddle itself fills in the declared default when it loads them.
    pub(super) fn float_or(&self, name: &str, default: f32) -> Result<f32, String> {
        self.get(name)
            .map_or(Ok(default), |v| self.as_float(name, v))
    }

    pub(super) fn int_or(&self, name: &str, default: i64) -> Result<i64, String> {
        self.get(name).map_or(Ok(default), |v| self.as_int(name, v))
    }

    pub(super) fn bool_or(&self, name: &str, default: bool) -> Result<bool, String> {
        self.get(name)
            .map_or(Ok(default), |v| self.as_bool(name, v))
    }

    /// An error about an attribute whose value is out of range.
    pub(super) fn invalid(&self, name: &str, why: &str) -> String {
        format!("{}: attribute `{name}` {why}", self.op)
    }
}
