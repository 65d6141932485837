//! Each rule on a small graph that breaks it, and the same graph mended.

use super::{check, Rule, Severity};
use bytes::Bytes;
use std::path::Path;
use temblor_frontend::onnx_proto::attribute_proto::AttributeType;
use temblor_frontend::onnx_proto::tensor_proto::DataType;
use temblor_frontend::onnx_proto::tensor_shape_proto::Dimension;
use temblor_frontend::onnx_proto::type_proto::{Tensor, Value};
use temblor_frontend::onnx_proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

fn node(
    op: &str,
    name: &str,
    ins: &[&str],
    outs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: outs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..NodeProto::default()
    }
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i,
        ..AttributeProto::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..AttributeProto::default()
    }
}

fn string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: Bytes::copy_from_slice(s.as_bytes()),
        ..AttributeProto::default()
    }
}

fn floats(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: DataType::Float as i32,
        dims: dims.to_vec(),
        float_data: v.to_vec(),
        ..TensorProto::default()
    }
}

fn int64s(name: &str, v: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type: DataType::Int64 as i32,
        dims: vec![v.len() as i64],
        int64_data: v.to_vec(),
        ..TensorProto::default()
    }
}

fn value(name: &str, ty: DataType, rank: usize) -> ValueInfoProto {
    let dim = (0..rank).map(|_| Dimension::default()).collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(Value::TensorType(Tensor {
                elem_type: ty as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

fn graph(nodes: Vec<NodeProto>, init: Vec<TensorProto>) -> GraphProto {
    GraphProto {
        node: nodes,
        initializer: init,
        input: vec![value("x", DataType::Float, 4)],
        output: vec![value("y", DataType::Float, 4)],
        ..GraphProto::default()
    }
}

fn model(g: GraphProto, opset: i64) -> ModelProto {
    ModelProto {
        graph: Some(g),
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        ..ModelProto::default()
    }
}

/// The (rule, node) pairs `check` finds.
fn found(nodes: Vec<NodeProto>, init: Vec<TensorProto>) -> Vec<(Rule, String)> {
    found_in(model(graph(nodes, init), 20))
}

fn found_in(m: ModelProto) -> Vec<(Rule, String)> {
    check(&m, Path::new("."))
        .findings
        .into_iter()
        .map(|f| (f.rule, f.node))
        .collect()
}

fn has(found: &[(Rule, String)], rule: Rule, node: &str) -> bool {
    found.iter().any(|(r, n)| *r == rule && n == node)
}

#[test]
fn a_clean_graph_has_no_finding() {
    assert!(found(vec![node("Relu", "relu", &["x"], &["y"], vec![])], vec![]).is_empty());
}

#[test]
fn opset_outside_9_to_24() {
    let m = model(
        graph(vec![node("Relu", "r", &["x"], &["y"], vec![])], vec![]),
        8,
    );
    assert!(has(&found_in(m), Rule::Opset, "(model)"));
}

#[test]
fn plugin_nodes_are_noted_and_int64_into_them_is_an_error() {
    let mut p = node("Custom", "p", &["x", "k"], &["y"], vec![]);
    p.domain = "temblor.plugins".into();
    let f = found(vec![p], vec![int64s("k", &[1])]);
    assert!(has(&f, Rule::PluginNode, "p"));
    assert!(has(&f, Rule::PluginInt64, "p"));
    assert_eq!(Rule::PluginNode.severity(), Severity::Note);
}

#[test]
fn topk_unsorted_too_large_or_run_time() {
    let topk = |k: &str, attrs| node("TopK", "t", &["x", k], &["y", "i"], attrs);
    let f = found(
        vec![topk("k", vec![int("sorted", 0)])],
        vec![int64s("k", &[10])],
    );
    assert!(has(&f, Rule::TopkUnsorted, "t"));
    let f = found(vec![topk("k", vec![])], vec![int64s("k", &[5000])]);
    assert!(has(&f, Rule::TopkLimit, "t"));
    let f = found(vec![topk("x", vec![])], vec![]);
    assert!(has(&f, Rule::DataDependentShape, "t"));
    assert!(found(vec![topk("k", vec![])], vec![int64s("k", &[100])]).is_empty());
}

#[test]
fn roialign_needs_its_sampling_ratio_written() {
    let roi = |attrs| node("RoiAlign", "roi", &["x", "r", "b"], &["y"], attrs);
    assert!(has(
        &found(vec![roi(vec![])], vec![]),
        Rule::RoialignSamplingRatio,
        "roi"
    ));
    assert!(found(vec![roi(vec![int("sampling_ratio", 0)])], vec![]).is_empty());
}

#[test]
fn gridsample_mode_and_rank() {
    let gs = |input: &str, attrs| node("GridSample", "gs", &[input, "g"], &["y"], attrs);
    let f = found(vec![gs("x", vec![string("mode", "linear")])], vec![]);
    assert!(has(&f, Rule::GridsampleMode, "gs"));
    assert!(found(vec![gs("x", vec![string("mode", "bilinear")])], vec![]).is_empty());
    let mut g = graph(vec![gs("v", vec![])], vec![]);
    g.input.push(value("v", DataType::Float, 5));
    assert!(has(&found_in(model(g, 20)), Rule::GridsampleRank, "gs"));
}

#[test]
fn qdq_scales_and_zero_points() {
    let q = |ins: &[&str], attrs| node("QuantizeLinear", "q", ins, &["t"], attrs);
    let dq = |out| node("DequantizeLinear", "dq", &["t", "s"], &[out], vec![]);
    let relu = node("Relu", "relu", &["u"], &["y"], vec![]);
    let ok = vec![floats("s", &[], &[0.1])];
    let f = found(vec![q(&["x", "s"], vec![]), dq("u"), relu], ok.clone());
    assert!(
        !f.iter().any(|(r, _)| r.severity() == Severity::Error),
        "{f:?}"
    );
    // A scale from the graph's input, a negative one, a zero point of 3.
    let f = found(vec![q(&["x", "x"], vec![])], vec![]);
    assert!(has(&f, Rule::QdqScale, "q"));
    let f = found(
        vec![q(&["x", "s"], vec![])],
        vec![floats("s", &[], &[-0.1])],
    );
    assert!(has(&f, Rule::QdqScale, "q"));
    let zp = TensorProto {
        name: "zp".into(),
        data_type: DataType::Int8 as i32,
        int32_data: vec![3],
        ..TensorProto::default()
    };
    let f = found(vec![q(&["x", "s", "zp"], vec![])], vec![ok[0].clone(), zp]);
    assert!(has(&f, Rule::QdqZeroPoint, "q"));
    // Per channel on an activation, without axis.
    let f = found(
        vec![q(&["x", "s"], vec![])],
        vec![floats("s", &[2], &[0.1, 0.2])],
    );
    assert!(has(&f, Rule::QdqAxis, "q"));
    assert!(has(&f, Rule::QdqPerChannelActivation, "q"));
    // The DQ's output is the network's.
    let f = found(vec![q(&["x", "s"], vec![]), dq("y")], ok);
    assert!(has(&f, Rule::QdqOutput, "dq"));
}

#[test]
fn qdq_scale_type_must_be_the_inputs() {
    let half = TensorProto {
        name: "s".into(),
        data_type: DataType::Float16 as i32,
        raw_data: Bytes::from(half::f16::from_f32(0.1).to_le_bytes().to_vec()),
        ..TensorProto::default()
    };
    let f = found(
        vec![node("QuantizeLinear", "q", &["x", "s"], &["y"], vec![])],
        vec![half],
    );
    assert!(has(&f, Rule::QdqScaleType, "q"));
}

#[test]
fn quantized_values_into_float_only_ops() {
    let f = found(
        vec![
            node("QuantizeLinear", "q", &["x", "s"], &["t"], vec![]),
            node("NonMaxSuppression", "nms", &["t", "x"], &["y"], vec![]),
        ],
        vec![floats("s", &[], &[0.1])],
    );
    assert!(has(&f, Rule::QuantizedInput, "nms"));
    assert!(has(&f, Rule::DataDependentShape, "nms"));
}

#[test]
fn deformconv_pads_must_be_symmetric() {
    let dc = |pads: &[i64]| {
        node(
            "DeformConv",
            "dc",
            &["x", "w", "o"],
            &["y"],
            vec![ints("pads", pads)],
        )
    };
    assert!(has(
        &found(vec![dc(&[1, 1, 0, 0])], vec![]),
        Rule::DeformconvPads,
        "dc"
    ));
    let f = found(vec![dc(&[1, 1, 1, 1])], vec![]);
    assert!(!has(&f, Rule::DeformconvPads, "dc"));
    assert!(has(&f, Rule::DeformconvPlugin, "dc"));
}

#[test]
fn layers_an_int8_graph_leaves_in_float() {
    let f = found(
        vec![
            node("QuantizeLinear", "q", &["x", "s"], &["t"], vec![]),
            node("DequantizeLinear", "dq", &["t", "s"], &["u"], vec![]),
            node("Conv", "int8_conv", &["u", "w"], &["v"], vec![]),
            node("Conv", "float_conv", &["v", "w"], &["y"], vec![]),
        ],
        vec![floats("s", &[], &[0.1])],
    );
    assert!(has(&f, Rule::OutsideInt8, "float_conv"));
    assert!(!has(&f, Rule::OutsideInt8, "int8_conv"));
}

#[test]
fn bodies_are_checked_too() {
    let body = GraphProto {
        node: vec![node(
            "TopK",
            "inner",
            &["x", "k"],
            &["y", "i"],
            vec![int("sorted", 0)],
        )],
        initializer: vec![int64s("k", &[1])],
        ..GraphProto::default()
    };
    let body_attr = AttributeProto {
        name: "then_branch".into(),
        r#type: AttributeType::Graph as i32,
        g: Some(body),
        ..AttributeProto::default()
    };
    let f = found(
        vec![node("If", "if", &["c"], &["y"], vec![body_attr])],
        vec![],
    );
    assert!(has(&f, Rule::TopkUnsorted, "inner"));
}

#[test]
fn float64_values() {
    let f = found(
        vec![node(
            "Cast",
            "to_double",
            &["x"],
            &["y"],
            vec![int("to", DataType::Double as i64)],
        )],
        vec![],
    );
    assert!(has(&f, Rule::Float64, "to_double"));
    let one = TensorProto {
        name: "one".into(),
        data_type: DataType::Double as i32,
        double_data: vec![1.0],
        ..TensorProto::default()
    };
    let f = found(
        vec![node("Add", "add", &["x", "one"], &["y"], vec![])],
        vec![one],
    );
    assert!(has(&f, Rule::Float64, "add"));
}
