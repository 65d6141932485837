//! A builder for an IR node written as several ONNX nodes: every value and node it makes up is
//! named after the IR node, so a decomposition reads as the computation it is.

use super::attrs;
use super::emit::Emitter;
use bytes::Bytes;
use temblor_frontend::onnx_proto::AttributeProto;
use temblor_ir::DType;

pub(super) struct Sub<'a> {
    pub em: &'a mut Emitter,
    name: String,
}

impl<'a> Sub<'a> {
    pub fn new(em: &'a mut Emitter, name: &str) -> Self {
        Sub {
            em,
            name: name.to_string(),
        }
    }

    /// A fresh value named `<node>.<what>`.
    pub fn value(&mut self, what: &str) -> String {
        self.em.value(&format!("{}.{what}", self.name))
    }

    /// `op_type(inputs)` with one new output named after `what`.
    pub fn op(
        &mut self,
        op_type: &str,
        what: &str,
        ins: &[&str],
        a: Vec<AttributeProto>,
    ) -> String {
        let out = self.value(what);
        self.op_into(op_type, what, ins, &[&out], a);
        out
    }

    /// `op_type(inputs)` writing the given outputs.
    pub fn op_into(
        &mut self,
        op_type: &str,
        what: &str,
        ins: &[&str],
        outs: &[&str],
        a: Vec<AttributeProto>,
    ) {
        let ins = ins.iter().map(|s| s.to_string()).collect();
        let outs = outs.iter().map(|s| s.to_string()).collect();
        let node = format!("{}.{what}", self.name);
        self.em.node(op_type, &node, ins, outs, a);
    }

    /// `op_type(inputs)` with `n` new outputs.
    pub fn ops(
        &mut self,
        op_type: &str,
        what: &str,
        ins: &[&str],
        n: usize,
        a: Vec<AttributeProto>,
    ) -> Vec<String> {
        let outs: Vec<String> = (0..n).map(|i| self.value(&format!("{what}.{i}"))).collect();
        let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
        self.op_into(op_type, what, ins, &refs, a);
        outs
    }

    pub fn i64s(&mut self, what: &str, values: &[i64]) -> String {
        self.em.int64s(&format!("{}.{what}", self.name), values)
    }

    /// An int64 scalar.
    pub fn i64(&mut self, what: &str, value: i64) -> String {
        self.em
            .scalar(&format!("{}.{what}", self.name), DType::I64, value as f64)
    }

    /// A float32 scalar.
    pub fn f32(&mut self, what: &str, value: f32) -> String {
        self.em.scalar(
            &format!("{}.{what}", self.name),
            DType::F32,
            f64::from(value),
        )
    }

    /// A float64 scalar.
    pub fn f64(&mut self, what: &str, value: f64) -> String {
        self.em
            .scalar(&format!("{}.{what}", self.name), DType::F64, value)
    }

    /// A float32 tensor.
    pub fn f32s(&mut self, what: &str, dims: &[usize], values: &[f32]) -> String {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.em.constant(
            &format!("{}.{what}", self.name),
            DType::F32,
            dims,
            Bytes::from(data),
        )
    }

    /// A bool tensor.
    pub fn bools(&mut self, what: &str, dims: &[usize], values: &[bool]) -> String {
        let data: Vec<u8> = values.iter().map(|&b| u8::from(b)).collect();
        self.em.constant(
            &format!("{}.{what}", self.name),
            DType::Bool,
            dims,
            Bytes::from(data),
        )
    }

    pub fn reshape(&mut self, what: &str, x: &str, dims: &[i64]) -> String {
        let shape = self.i64s(&format!("{what}.shape"), dims);
        self.op("Reshape", what, &[x, &shape], vec![])
    }

    /// `x[.., start..end, ..]` on `axis`.
    pub fn slice(&mut self, what: &str, x: &str, axis: i64, start: i64, end: i64) -> String {
        let s = self.i64s(&format!("{what}.start"), &[start]);
        let e = self.i64s(&format!("{what}.end"), &[end]);
        let a = self.i64s(&format!("{what}.axis"), &[axis]);
        self.op("Slice", what, &[x, &s, &e, &a], vec![])
    }

    pub fn cast(&mut self, what: &str, x: &str, to: DType) -> String {
        let out = self.value(what);
        self.cast_into(what, x, to, &out);
        out
    }

    /// `Cast(x)` to `to`, written into `out`.
    pub fn cast_into(&mut self, what: &str, x: &str, to: DType, out: &str) {
        let code = super::model::dtype_code(to);
        self.op_into(
            "Cast",
            what,
            &[x],
            &[out],
            vec![attrs::int("to", i64::from(code))],
        );
    }

    pub fn unsqueeze(&mut self, what: &str, x: &str, axes: &[i64]) -> String {
        let a = self.i64s(&format!("{what}.axes"), axes);
        self.op("Unsqueeze", what, &[x, &a], vec![])
    }

    pub fn binary(&mut self, op_type: &str, what: &str, a: &str, b: &str) -> String {
        self.op(op_type, what, &[a, b], vec![])
    }

    pub fn transpose(&mut self, what: &str, x: &str, perm: &[i64]) -> String {
        self.op(
            "Transpose",
            what,
            &[x],
            vec![attrs::ints("perm", perm.iter().copied())],
        )
    }

    pub fn concat(&mut self, what: &str, xs: &[&str], axis: i64) -> String {
        self.op("Concat", what, xs, vec![attrs::int("axis", axis)])
    }
}
