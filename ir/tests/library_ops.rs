//! ops_lib operators as typed IR ops: parsed once from Paddle's attributes, listed back in the
//! order the model wrote them, and kept across a package round trip (including packages written
//! while they were `Op::Custom`).

use std::path::PathBuf;
use temblor_ir::{
    package, AttrValue, DType, Graph, GraphOutput, LibOp, Node, Op, Shape, TensorInfo, TensorType,
    ValueRef, YoloBoxAttrs,
};

fn attrs(list: &[(&str, AttrValue)]) -> Vec<(String, AttrValue)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn yolo_source() -> Vec<(String, AttrValue)> {
    attrs(&[
        ("anchors", AttrValue::Ints(vec![10, 13, 16, 30])),
        ("class_num", AttrValue::Int(2)),
        ("conf_thresh", AttrValue::Float(0.01)),
        ("downsample_ratio", AttrValue::Int(32)),
    ])
}

fn info(name: &str, dtype: DType, dims: &[usize]) -> TensorInfo {
    TensorInfo {
        name: name.into(),
        ty: TensorType::new(dtype, Shape::from_known(dims)),
    }
}

/// x, size -> yolo_box -> boxes, scores.
fn yolo_graph() -> Graph {
    let mut g = Graph::new("yolo");
    let x = g.add_node(Node::new(
        "x",
        Op::Input { index: 0 },
        vec![info("x", DType::F32, &[1, 14, 4, 4])],
    ));
    let size = g.add_node(Node::new(
        "size",
        Op::Input { index: 1 },
        vec![info("size", DType::I32, &[1, 2])],
    ));
    g.inputs = vec![x, size];
    let op = LibOp::parse("yolo_box", &yolo_source()).unwrap();
    let mut node = Node::new(
        "decode",
        Op::Lib(op),
        vec![
            info("boxes", DType::F32, &[1, 32, 4]),
            info("scores", DType::F32, &[1, 32, 2]),
        ],
    );
    node.source_attrs = yolo_source();
    let decode = g.add_node(node);
    g.connect(ValueRef::new(x, 0), decode, 0);
    g.connect(ValueRef::new(size, 0), decode, 1);
    for (port, name) in ["boxes", "scores"].into_iter().enumerate() {
        g.outputs.push(GraphOutput {
            name: name.into(),
            value: ValueRef::new(decode, port),
        });
    }
    temblor_ir::validate(&g).unwrap();
    g
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("temblor-ir-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn lib_op(g: &Graph) -> LibOp {
    g.node_ids()
        .find_map(|id| match &g.node(id).op {
            Op::Lib(op) => Some(op.clone()),
            _ => None,
        })
        .expect("a library op")
}

#[test]
fn parsing_fills_paddle_defaults() {
    let LibOp::YoloBox(a) = LibOp::parse("yolo_box", &yolo_source()).unwrap() else {
        panic!("not a yolo_box");
    };
    assert_eq!(
        a,
        YoloBoxAttrs {
            anchors: Some(vec![10, 13, 16, 30]),
            class_num: 2,
            conf_thresh: 0.01,
            downsample_ratio: 32,
            clip_bbox: true,
            scale_x_y: 1.0,
            iou_aware: false,
            iou_aware_factor: 0.5,
        }
    );
}

#[test]
fn attributes_follow_the_source_order() {
    let source = attrs(&[
        ("nms_eta", AttrValue::Float(1.0)),
        ("score_threshold", AttrValue::Float(0.025)),
        ("background_label", AttrValue::Int(-1)),
        ("nms_threshold", AttrValue::Float(0.6)),
        ("normalized", AttrValue::Int(1)),
        ("nms_top_k", AttrValue::Int(1000)),
        ("keep_top_k", AttrValue::Int(100)),
    ]);
    let op = LibOp::parse("multiclass_nms3", &source).unwrap();
    assert_eq!(op.attributes(&source), source);
    let mut node = Node::new("nms", Op::Lib(op), vec![]);
    node.source_attrs = source.clone();
    let shown = node.attributes();
    assert_eq!(
        shown[0],
        ("domain".into(), AttrValue::String(LibOp::DOMAIN.into()))
    );
    assert_eq!(shown[1..], source[..]);
}

#[test]
fn a_package_round_trips_the_typed_op() {
    let g = yolo_graph();
    let dir = scratch("lib-round-trip");
    package::write(&g, &dir).unwrap();
    let back = package::load(&dir).unwrap();
    assert_eq!(lib_op(&back), lib_op(&g));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_package_with_the_untyped_form_still_loads() {
    let g = yolo_graph();
    let dir = scratch("lib-legacy");
    package::write(&g, &dir).unwrap();
    let path = dir.join(package::MANIFEST);
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    // Packages of that time were format 1, which records no hashes.
    doc["format"] = "temblor-package-1".into();
    let fields = doc.as_object_mut().unwrap();
    for hash in ["temblor_version", "weights_blake3", "manifest_blake3"] {
        fields.remove(hash);
    }
    let nodes = doc["nodes"].as_array_mut().unwrap();
    let node = nodes.iter_mut().find(|n| n["name"] == "decode").unwrap();
    node["op"] = serde_json::json!({
        "custom": {
            "domain": LibOp::DOMAIN,
            "name": "yolo_box",
            "attrs": serde_json::to_value(yolo_source()).unwrap(),
        }
    });
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let back = package::load(&dir).unwrap();
    assert_eq!(lib_op(&back), lib_op(&g));
    std::fs::remove_dir_all(&dir).unwrap();
}
