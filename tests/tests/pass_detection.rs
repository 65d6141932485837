//! The detection rewrites that change no value: the NMS top-k pre-filter (exact when k is at
//! least the number of boxes that can pass the score threshold) and explicit yolo_box anchors,
//! each pinned as a view on a small graph and run against the unrewritten graph.

use temblor_ir::{AttrValue, DType, Graph, GraphOutput, LibOp, Op, Shape, TensorType, ValueRef};
use temblor_passes::{DeadNodes, Driver, ExplicitAnchors, PrefilterNms};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor};
use temblor_tests::builder::Builder;
use temblor_tests::Rng;
use temblor_visualize::{render, View};

const M: usize = 12;
const C: usize = 3;

fn nms_graph() -> Graph {
    let mut b = Builder::new("nms", 41);
    let ty = |dims: &[usize]| TensorType::new(DType::F32, Shape::from_known(dims));
    let boxes = b.node("boxes", Op::Input { index: 0 }, ty(&[1, M, 4]), &[]);
    let scores = b.node("scores", Op::Input { index: 1 }, ty(&[1, C, M]), &[]);
    b.g.inputs.extend([boxes.node, scores.node]);
    let attrs: Vec<(String, AttrValue)> = [
        ("background_label", AttrValue::Int(-1)),
        ("score_threshold", AttrValue::Float(0.3)),
        ("nms_top_k", AttrValue::Int(M as i64)),
        ("nms_threshold", AttrValue::Float(0.5)),
        ("nms_eta", AttrValue::Float(1.0)),
        ("keep_top_k", AttrValue::Int(6)),
        ("normalized", AttrValue::Int(1)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let op = Op::Lib(LibOp::parse("multiclass_nms3", &attrs).expect("valid attributes"));
    let nms = b.node("nms", op, ty(&[]), &[boxes, scores]);
    let node = b.g.node_mut(nms.node);
    node.outputs.push(node.outputs[0].clone());
    node.outputs.push(node.outputs[0].clone());
    for (p, n) in ["nms:index", "nms:count"].iter().enumerate() {
        node.outputs[p + 1].name = n.to_string();
    }
    b.g.outputs = vec![
        GraphOutput {
            name: "out".into(),
            value: nms,
        },
        GraphOutput {
            name: "count".into(),
            value: ValueRef::new(nms.node, 2),
        },
    ];
    temblor_infer::infer(&mut b.g).expect("types");
    b.g
}

fn prefiltered(g: &Graph, k: usize) -> Graph {
    let mut out = g.clone();
    Driver::new(vec![Box::new(PrefilterNms { k }), Box::new(DeadNodes)])
        .run(&mut out)
        .expect("passes");
    out
}

/// Boxes in the unit square, and scores of which only `live` boxes pass the threshold.
fn inputs(live: usize) -> Vec<(String, Tensor)> {
    let mut rng = Rng(43);
    let mut boxes = Vec::new();
    for _ in 0..M {
        let v = rng.values(4);
        let (x, y) = (v[0].abs() * 0.5, v[1].abs() * 0.5);
        boxes.extend([x, y, x + 0.2 + v[2].abs() * 0.3, y + 0.2 + v[3].abs() * 0.3]);
    }
    let scores: Vec<f32> = (0..C * M)
        .map(|i| {
            let s = rng.values(1)[0].abs().min(0.99);
            if i % M < live {
                0.31 + s * 0.6
            } else {
                s * 0.29
            }
        })
        .collect();
    vec![
        ("boxes".into(), Tensor::f32(vec![1, M, 4], boxes)),
        ("scores".into(), Tensor::f32(vec![1, C, M], scores)),
    ]
}

fn run(g: &Graph, inputs: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    prepare(g, &Device::Cpu, &PrepareOptions::default())
        .expect("plan")
        .run_once(inputs)
        .expect("run")
}

#[test]
fn prefilter_is_exact_when_k_covers_the_candidates() {
    let g = nms_graph();
    let opt = prefiltered(&g, 5);
    insta::assert_snapshot!("prefilter_nms_optimize", render(&opt, View::Optimize));
    let x = inputs(5);
    let before = run(&g, &x);
    assert!(
        before[0].1.shape[0] >= 3,
        "too few detections to tell anything"
    );
    assert_eq!(before, run(&opt, &x));
    // With fewer boxes than can pass, some detections are lost: the filter does something.
    assert_ne!(before, run(&prefiltered(&g, 2), &x));
}

#[test]
fn prefilter_leaves_small_inputs_and_read_indices_alone() {
    let g = nms_graph();
    assert_eq!(prefiltered(&g, M).node_count(), g.node_count());
    let mut reads_index = g.clone();
    let nms = reads_index.outputs[0].value.node;
    reads_index.outputs.push(GraphOutput {
        name: "index".into(),
        value: ValueRef::new(nms, 1),
    });
    let opt = prefiltered(&reads_index, 5);
    assert_eq!(opt.node_count(), reads_index.node_count());
}

#[test]
fn yolo_box_anchors_become_an_explicit_constant() {
    let mut b = Builder::new("yolo", 44);
    let ty = |dtype, dims: &[usize]| TensorType::new(dtype, Shape::from_known(dims));
    let x = b.node(
        "x",
        Op::Input { index: 0 },
        ty(DType::F32, &[1, 2 * 7, 4, 4]),
        &[],
    );
    let size = b.node("size", Op::Input { index: 1 }, ty(DType::I32, &[1, 2]), &[]);
    b.g.inputs.extend([x.node, size.node]);
    let attrs: Vec<(String, AttrValue)> = [
        ("anchors", AttrValue::Ints(vec![10, 13, 33, 23])),
        ("class_num", AttrValue::Int(2)),
        ("conf_thresh", AttrValue::Float(0.01)),
        ("downsample_ratio", AttrValue::Int(32)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let op = Op::Lib(LibOp::parse("yolo_box", &attrs).expect("valid attributes"));
    let decoded = b.node("decode", op, ty(DType::F32, &[]), &[x, size]);
    let node = b.g.node_mut(decoded.node);
    node.outputs.push(node.outputs[0].clone());
    node.outputs[1].name = "decode:scores".into();
    b.g.outputs = vec![
        GraphOutput {
            name: "boxes".into(),
            value: decoded,
        },
        GraphOutput {
            name: "scores".into(),
            value: ValueRef::new(decoded.node, 1),
        },
    ];
    temblor_infer::infer(&mut b.g).expect("types");
    let g = b.g;
    let mut opt = g.clone();
    Driver::new(vec![Box::new(ExplicitAnchors), Box::new(DeadNodes)])
        .run(&mut opt)
        .expect("passes");
    insta::assert_snapshot!("explicit_anchors_optimize", render(&opt, View::Optimize));
    let x = Rng(45).values(14 * 16);
    let inputs = vec![
        ("x".to_string(), Tensor::f32(vec![1, 14, 4, 4], x)),
        (
            "size".to_string(),
            Tensor {
                shape: vec![1, 2],
                data: temblor_runtime::TensorData::I32(vec![128, 128]),
            },
        ),
    ];
    assert_eq!(run(&g, &inputs), run(&opt, &inputs));
}
