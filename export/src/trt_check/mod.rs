//! `temblor check-trt`: the rules TensorRT's ONNX parser (TensorRT 10 and 11) imposes beyond
//! ONNX itself, checked on a file before anyone tries a build. Each rule is a [`Rule`]; a
//! finding names the node, the rule and why. Errors are what makes the parser refuse the file
//! or build something that computes otherwise (a `linear` GridSample it samples as nearest, a
//! RoiAlign whose absent `sampling_ratio` it reads as 1); notes are what a user should know
//! (plugin nodes, data-dependent shapes, layers an int8 plan leaves in float).

mod facts;
mod rules;
#[cfg(test)]
mod tests;

use facts::Facts;
use prost::Message;
use serde::Serialize;
use std::path::Path;
use temblor_frontend::onnx_proto::{GraphProto, ModelProto};
use temblor_ir::{Error, Result};

/// The default-domain opsets TensorRT's parser reads.
pub const OPSETS: std::ops::RangeInclusive<i64> = 9..=24;
/// TensorRT's TopK takes K below this.
pub const TOPK_LIMIT: i64 = 3840;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Error,
    Note,
}

/// One rule of the parser's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// The default domain's opset is outside 9-24.
    Opset,
    /// A node of another domain: TensorRT needs a plugin library that registers it.
    PluginNode,
    /// An INT64 value into a plugin node, whose creators take INT32.
    PluginInt64,
    /// TopK with `sorted=0`, which the parser refuses.
    TopkUnsorted,
    /// TopK with a constant K of 3840 or more.
    TopkLimit,
    /// RoiAlign without `sampling_ratio`: the parser defaults it to 1, ONNX to 0 (adaptive).
    RoialignSamplingRatio,
    /// GridSample with a mode the parser does not know (`linear`, `cubic` of opset 20), which
    /// it samples as nearest, or an input that is not 4-D.
    GridsampleMode,
    GridsampleRank,
    /// A Q/DQ scale that is not a constant, or not positive.
    QdqScale,
    /// A Q/DQ zero point that is not a constant zero.
    QdqZeroPoint,
    /// A per-channel Q/DQ without `axis` (the parser assumes 0, ONNX means 1).
    QdqAxis,
    /// Per-channel quantization of an activation (TensorRT takes it on weights only).
    QdqPerChannelActivation,
    /// A QuantizeLinear whose scale's type is not its input's.
    QdqScaleType,
    /// A network output produced by a Q or DQ.
    QdqOutput,
    /// An int8 value (a QuantizeLinear's output) into NMS, RoiAlign or GridSample, which
    /// take float.
    QuantizedInput,
    /// DeformConv becomes libnvinfer_plugin's ModulatedDeformConv2d: symmetric pads only.
    DeformconvPads,
    /// DeformConv runs as that plugin, in fp32 or fp16 only.
    DeformconvPlugin,
    /// A double value (a Cast to DOUBLE, a DOUBLE constant): TensorRT has no float64.
    Float64,
    /// An output whose size depends on the data (NonZero, NonMaxSuppression, a run-time K).
    DataDependentShape,
    /// In a file with Q/DQ, a Conv, Gemm or MatMul whose input is not dequantized: it runs in
    /// float.
    OutsideInt8,
}

impl Rule {
    pub fn severity(self) -> Severity {
        match self {
            Rule::PluginNode
            | Rule::DeformconvPlugin
            | Rule::DataDependentShape
            | Rule::OutsideInt8 => Severity::Note,
            _ => Severity::Error,
        }
    }

    pub fn id(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    /// The node's name, or "(model)".
    pub node: String,
    pub op_type: String,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Note => "note",
        };
        write!(
            f,
            "{severity} [{}] {} ({}): {}",
            self.rule.id(),
            self.node,
            self.op_type,
            self.message
        )
    }
}

/// What [`check_file`] found, errors first.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub errors: usize,
    pub notes: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    fn new(mut findings: Vec<Finding>) -> Report {
        findings.sort_by_key(|f| f.severity);
        let errors = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        Report {
            errors,
            notes: findings.len() - errors,
            findings,
        }
    }
}

/// Checks the ONNX file at `path`; external data is read beside it.
pub fn check_file(path: &Path) -> Result<Report> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::bad_input(format!("cannot read {}: {e}", path.display())))?;
    let model = ModelProto::decode(&bytes[..])
        .map_err(|e| Error::bad_input(format!("{}: not an ONNX model: {e}", path.display())))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    Ok(check(&model, dir))
}

/// Checks `model`, whose external data lies in `dir`.
pub fn check(model: &ModelProto, dir: &Path) -> Report {
    let mut found = Vec::new();
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version);
    match opset {
        Some(v) if OPSETS.contains(&v) => {}
        other => found.push(Finding {
            rule: Rule::Opset,
            severity: Rule::Opset.severity(),
            node: "(model)".into(),
            op_type: String::new(),
            message: format!(
                "default-domain opset {} is outside the {}-{} TensorRT reads",
                other.map_or("missing".to_string(), |v| v.to_string()),
                OPSETS.start(),
                OPSETS.end()
            ),
        }),
    }
    if let Some(g) = &model.graph {
        check_graph(g, dir, None, &mut found);
    }
    Report::new(found)
}

/// Checks a graph and the bodies of its Loops and Ifs; `outer` knows the enclosing graphs'
/// values, which bodies read by name.
fn check_graph(g: &GraphProto, dir: &Path, outer: Option<&Facts>, found: &mut Vec<Finding>) {
    let facts = Facts::new(g, dir, outer);
    for node in &g.node {
        rules::node(&facts, node, found);
        for a in &node.attribute {
            for body in a.g.iter().chain(&a.graphs) {
                check_graph(body, dir, Some(&facts), found);
            }
        }
    }
    rules::graph(&facts, g, found);
}
