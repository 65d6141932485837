//! The nodes and made-up constants of the model being written, and the one namespace of its
//! values and the one of its nodes, so that every name the export invents is unique.

use super::attrs;
use super::model::{raw_tensor, scalar_bytes};
use bytes::Bytes;
use std::collections::{BTreeSet, HashSet};
use temblor_frontend::onnx_proto::{AttributeProto, NodeProto};
use temblor_ir::{DType, Weight};

/// Names handed out so far; a taken name gets the first free `.1`, `.2`, ... suffix.
#[derive(Default)]
pub(super) struct Names {
    used: HashSet<String>,
}

impl Names {
    /// Takes `name` exactly; false when it is already taken.
    pub fn reserve(&mut self, name: &str) -> bool {
        self.used.insert(name.to_string())
    }

    pub fn claim(&mut self, base: &str) -> String {
        let base = if base.is_empty() { "value" } else { base };
        if self.reserve(base) {
            return base.to_string();
        }
        (1..)
            .map(|i| format!("{base}.{i}"))
            .find(|n| self.reserve(n))
            .expect("an unused suffix")
    }
}

#[derive(Default)]
pub(super) struct Emitter {
    pub nodes: Vec<NodeProto>,
    /// Operands the export makes up (Split sizes, Clip bounds, ...), by value name.
    pub constants: Vec<(String, Weight)>,
    pub values: Names,
    node_names: Names,
    /// Domains other than the default one that nodes use.
    pub domains: BTreeSet<String>,
    /// Plugin names of the plugin nodes written.
    pub plugins: BTreeSet<String>,
}

impl Emitter {
    /// An emitter for a subgraph (a Loop body, an If branch): its own nodes and constants, the
    /// model's namespaces, which [`Emitter::absorb`] hands back.
    pub fn nested(&mut self) -> Emitter {
        Emitter {
            values: std::mem::take(&mut self.values),
            node_names: std::mem::take(&mut self.node_names),
            ..Emitter::default()
        }
    }

    /// Takes back the namespaces, domains and plugins of a [`Emitter::nested`] one.
    pub fn absorb(&mut self, inner: Emitter) {
        self.values = inner.values;
        self.node_names = inner.node_names;
        self.domains.extend(inner.domains);
        self.plugins.extend(inner.plugins);
    }

    /// Runs `write` on a scratch emitter and keeps what it wrote only when it succeeds, so
    /// that a lowering that gives up half way leaves nothing behind.
    pub fn attempt(
        &mut self,
        write: impl FnOnce(&mut Emitter) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut scratch = self.nested();
        let done = write(&mut scratch);
        let (nodes, constants) = (
            std::mem::take(&mut scratch.nodes),
            std::mem::take(&mut scratch.constants),
        );
        self.absorb(scratch);
        if done.is_ok() {
            self.nodes.extend(nodes);
            self.constants.extend(constants);
        }
        done
    }

    /// A fresh value name derived from `base`.
    pub fn value(&mut self, base: &str) -> String {
        self.values.claim(base)
    }

    /// Appends a node of the default domain.
    pub fn node(
        &mut self,
        op_type: &str,
        name: &str,
        inputs: Vec<String>,
        outputs: Vec<String>,
        attribute: Vec<AttributeProto>,
    ) {
        self.domain_node("", op_type, name, inputs, outputs, attribute);
    }

    pub fn domain_node(
        &mut self,
        domain: &str,
        op_type: &str,
        name: &str,
        mut inputs: Vec<String>,
        outputs: Vec<String>,
        attribute: Vec<AttributeProto>,
    ) {
        // Omitted trailing optional inputs are left out rather than named "".
        while inputs.last().is_some_and(String::is_empty) {
            inputs.pop();
        }
        if !domain.is_empty() {
            self.domains.insert(domain.to_string());
        }
        let name = self.node_names.claim(name);
        self.nodes.push(NodeProto {
            input: inputs,
            output: outputs,
            name,
            op_type: op_type.into(),
            domain: domain.into(),
            attribute,
            ..NodeProto::default()
        });
    }

    /// A made-up constant; returns its value name.
    pub fn constant(&mut self, base: &str, dtype: DType, dims: &[usize], data: Bytes) -> String {
        let name = self.value(base);
        let w = Weight {
            dtype,
            dims: dims.to_vec(),
            data,
        };
        self.constants.push((name.clone(), w));
        name
    }

    /// A scalar constant of `dtype`.
    pub fn scalar(&mut self, base: &str, dtype: DType, value: f64) -> String {
        self.constant(base, dtype, &[], scalar_bytes(dtype, value))
    }

    /// A 1-D int64 constant.
    pub fn int64s(&mut self, base: &str, values: &[i64]) -> String {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(base, DType::I64, &[values.len()], Bytes::from(data))
    }

    /// The made-up tensor as an attribute value (ConstantOfShape's `value`).
    pub fn tensor_attr(name: &str, dtype: DType, value: f64) -> AttributeProto {
        attrs::tensor(
            name,
            raw_tensor("", dtype, &[1], scalar_bytes(dtype, value)),
        )
    }
}
