//! The rules, node by node. Each looks at one node (and the constants and producers of its
//! inputs) and says what TensorRT's parser will make of it.

use super::facts::Facts;
use super::{Finding, Rule, TOPK_LIMIT};
use temblor_frontend::onnx_proto::tensor_proto::DataType;
use temblor_frontend::onnx_proto::{AttributeProto, GraphProto, NodeProto};

fn attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn input(n: &NodeProto, i: usize) -> Option<&str> {
    n.input.get(i).map(String::as_str).filter(|s| !s.is_empty())
}

fn finding(n: &NodeProto, rule: Rule, message: String) -> Finding {
    Finding {
        rule,
        severity: rule.severity(),
        node: n.name.clone(),
        op_type: n.op_type.clone(),
        message,
    }
}

fn is_standard(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

pub(super) fn node(f: &Facts, n: &NodeProto, found: &mut Vec<Finding>) {
    let mut say = |rule: Rule, message: String| found.push(finding(n, rule, message));
    if !is_standard(&n.domain) {
        say(
            Rule::PluginNode,
            format!(
                "TensorRT needs a plugin library that registers '{}' (domain '{}')",
                n.op_type, n.domain
            ),
        );
        for name in n.input.iter().filter(|i| !i.is_empty()) {
            if f.elem_type(name) == Some(DataType::Int64 as i32) {
                say(
                    Rule::PluginInt64,
                    format!("input '{name}' is INT64; plugin creators take INT32"),
                );
            }
        }
        return;
    }
    if matches!(
        n.op_type.as_str(),
        "NonMaxSuppression" | "RoiAlign" | "GridSample"
    ) {
        for name in n.input.iter().filter(|i| !i.is_empty()) {
            if f.producer(name)
                .is_some_and(|p| p.op_type == "QuantizeLinear")
            {
                say(
                    Rule::QuantizedInput,
                    format!("input '{name}' is quantized; dequantize it to float first"),
                );
            }
        }
    }
    let double = DataType::Double as i32;
    if n.op_type == "Cast" && attr(n, "to").is_some_and(|a| a.i == i64::from(double)) {
        say(
            Rule::Float64,
            "casts to DOUBLE; TensorRT has no float64".into(),
        );
    }
    for name in n.input.iter().filter(|i| !i.is_empty()) {
        if f.is_constant(name) && f.elem_type(name) == Some(double) {
            say(
                Rule::Float64,
                format!("reads the DOUBLE constant '{name}'; TensorRT has no float64"),
            );
        }
    }
    match n.op_type.as_str() {
        "TopK" => top_k(f, n, &mut say),
        "RoiAlign" if attr(n, "sampling_ratio").is_none() => say(
            Rule::RoialignSamplingRatio,
            "no sampling_ratio: TensorRT's parser takes 1, ONNX means 0 (adaptive)".into(),
        ),
        "GridSample" => grid_sample(f, n, &mut say),
        "NonMaxSuppression" | "NonZero" | "Unique" => say(
            Rule::DataDependentShape,
            "its output's size depends on the data".into(),
        ),
        "QuantizeLinear" | "DequantizeLinear" => qdq(f, n, &mut say),
        "DeformConv" => deform_conv(n, &mut say),
        _ => {}
    }
}

fn top_k(f: &Facts, n: &NodeProto, say: &mut impl FnMut(Rule, String)) {
    if attr(n, "sorted").is_some_and(|a| a.i == 0) {
        say(
            Rule::TopkUnsorted,
            "sorted=0; TensorRT takes sorted TopK only".into(),
        );
    }
    let Some(k) = input(n, 1) else { return };
    match f.values(k).and_then(|v| v.first().copied()) {
        Some(k) if k >= TOPK_LIMIT as f64 => say(
            Rule::TopkLimit,
            format!("K = {k}; TensorRT's TopK takes K below {TOPK_LIMIT}"),
        ),
        Some(_) => {}
        None => say(
            Rule::DataDependentShape,
            format!("K is a run-time value; TensorRT requires it below {TOPK_LIMIT}"),
        ),
    }
}

fn grid_sample(f: &Facts, n: &NodeProto, say: &mut impl FnMut(Rule, String)) {
    if let Some(mode) = attr(n, "mode") {
        let mode = String::from_utf8_lossy(&mode.s);
        if !matches!(mode.as_ref(), "bilinear" | "nearest" | "bicubic") {
            say(
                Rule::GridsampleMode,
                format!(
                    "mode '{mode}': TensorRT's parser knows bilinear, nearest and bicubic and \
                     samples anything else as nearest (leave mode out for bilinear)"
                ),
            );
        }
    }
    if let Some(rank) = input(n, 0).and_then(|x| f.rank(x)) {
        if rank != 4 {
            say(
                Rule::GridsampleRank,
                format!("a {rank}-D input; TensorRT's GridSample takes 4-D"),
            );
        }
    }
}

fn qdq(f: &Facts, n: &NodeProto, say: &mut impl FnMut(Rule, String)) {
    let scale = input(n, 1).unwrap_or_default();
    let values = f.values(scale);
    match (f.is_constant(scale), &values) {
        (false, _) => say(Rule::QdqScale, format!("scale '{scale}' is not a constant")),
        (true, Some(v)) if v.iter().any(|&s| !(s > 0.0 && s.is_finite())) => say(
            Rule::QdqScale,
            format!("scale '{scale}' holds a value that is not positive and finite"),
        ),
        _ => {}
    }
    if let Some(zp) = input(n, 2) {
        let zero = f.values(zp).is_some_and(|v| v.iter().all(|&z| z == 0.0));
        if !zero {
            say(
                Rule::QdqZeroPoint,
                format!("zero point '{zp}' is not a constant zero"),
            );
        }
    }
    let per_channel = f
        .constant(scale)
        .is_some_and(|t| t.dims.iter().product::<i64>() > 1);
    if per_channel {
        if attr(n, "axis").is_none() {
            say(
                Rule::QdqAxis,
                "per-channel without axis: TensorRT's parser assumes 0, ONNX means 1".into(),
            );
        }
        let data = input(n, 0).unwrap_or_default();
        if !f.is_constant(data) {
            say(
                Rule::QdqPerChannelActivation,
                format!("'{data}' is an activation; TensorRT quantizes weights per channel only"),
            );
        }
    }
    if n.op_type == "QuantizeLinear" {
        let data = input(n, 0).unwrap_or_default();
        if let (Some(x), Some(s)) = (f.elem_type(data), f.elem_type(scale)) {
            if x != s {
                say(
                    Rule::QdqScaleType,
                    format!(
                        "scale '{scale}' is {} but the input is {}",
                        type_name(s),
                        type_name(x)
                    ),
                );
            }
        }
    }
    for out in n.output.iter().filter(|o| f.outputs.contains(o.as_str())) {
        say(
            Rule::QdqOutput,
            format!("'{out}' is a network output; TensorRT wants no Q/DQ on outputs"),
        );
    }
}

fn deform_conv(n: &NodeProto, say: &mut impl FnMut(Rule, String)) {
    say(
        Rule::DeformconvPlugin,
        "runs as libnvinfer_plugin's ModulatedDeformConv2d, in fp32 or fp16 only".into(),
    );
    if let Some(p) = attr(n, "pads") {
        let half = p.ints.len() / 2;
        if p.ints[..half] != p.ints[half..] {
            say(
                Rule::DeformconvPads,
                format!("pads {:?} are not symmetric", p.ints),
            );
        }
    }
}

/// Rules over the whole graph: with any Q/DQ in it, the heavy layers left in float.
pub(super) fn graph(f: &Facts, g: &GraphProto, found: &mut Vec<Finding>) {
    let quantized = g
        .node
        .iter()
        .any(|n| matches!(n.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear"));
    if !quantized {
        return;
    }
    for n in &g.node {
        if !matches!(
            n.op_type.as_str(),
            "Conv" | "ConvTranspose" | "Gemm" | "MatMul"
        ) {
            continue;
        }
        let dequantized = input(n, 0)
            .and_then(|x| f.producer(x))
            .is_some_and(|p| p.op_type == "DequantizeLinear");
        if !dequantized {
            found.push(finding(
                n,
                Rule::OutsideInt8,
                "its input is not dequantized: it runs in float".into(),
            ));
        }
    }
}

fn type_name(code: i32) -> String {
    DataType::try_from(code).map_or(format!("type {code}"), |t| t.as_str_name().to_lowercase())
}
