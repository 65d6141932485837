//! `report.json`: what the compiler did to a model, stage by stage and pass by pass.

use crate::pipeline::{Compiled, Timings};
use crate::verify::Verification;
use serde::Serialize;
use std::collections::BTreeMap;
use temblor_ir::Graph;
use temblor_passes::PassRecord;

#[derive(Serialize)]
pub struct Report<'a> {
    pub temblor_version: &'static str,
    pub model: String,
    pub inputs: Vec<ValueDoc>,
    pub outputs: Vec<ValueDoc>,
    pub views: BTreeMap<&'static str, ViewStats>,
    pub passes: &'a [PassRecord],
    pub timings: &'a Timings,
    /// The check of the optimized graph against the parsed one (absent with --no-verify).
    pub verification: Option<&'a Verification>,
}

#[derive(Serialize)]
pub struct ValueDoc {
    pub name: String,
    pub dtype: String,
    pub shape: String,
}

#[derive(Serialize)]
pub struct ViewStats {
    pub layers: usize,
    pub nodes: usize,
    pub op_counts: BTreeMap<String, usize>,
}

fn stats(g: &Graph) -> ViewStats {
    ViewStats {
        layers: g.layer_count(),
        nodes: g.node_count(),
        op_counts: g.op_counts().into_iter().collect(),
    }
}

pub fn inputs(g: &Graph) -> Vec<ValueDoc> {
    g.inputs
        .iter()
        .map(|&id| {
            let info = &g.node(id).outputs[0];
            ValueDoc {
                name: info.name.clone(),
                dtype: info.ty.dtype.to_string(),
                shape: info.ty.shape.to_string(),
            }
        })
        .collect()
}

pub fn outputs(g: &Graph) -> Vec<ValueDoc> {
    g.outputs
        .iter()
        .map(|o| {
            let ty = g.value_type(o.value);
            ValueDoc {
                name: o.name.clone(),
                dtype: ty.dtype.to_string(),
                shape: ty.shape.to_string(),
            }
        })
        .collect()
}

pub fn build<'a>(model: &str, c: &'a Compiled) -> Report<'a> {
    Report {
        temblor_version: env!("CARGO_PKG_VERSION"),
        model: model.to_string(),
        inputs: inputs(&c.parse),
        outputs: outputs(&c.compile),
        views: BTreeMap::from([
            ("parse", stats(&c.parse)),
            ("optimize", stats(&c.optimize)),
            ("compile", stats(&c.compile)),
        ]),
        passes: &c.passes,
        timings: &c.timings,
        verification: c.verification.as_ref(),
    }
}
