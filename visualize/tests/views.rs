//! Snapshots of the three views of a small hand-built graph, and a mechanical check of the
//! text rules Netron's Caffe reader needs (DESIGN.md, "The three views (Netron)").

mod netron_rules;

use netron_rules::check_netron_rules;
use temblor_ir::{
    AttrValue, BinaryOp, ConvAttrs, DType, Framework, Graph, GraphOutput, Layout, Node, NodeId, Op,
    Origin, Partition, Placement, Precision, Provenance, Shape, TensorInfo, TensorType, UnaryOp,
    ValueRef, Weight,
};
use temblor_visualize::{render, View};

fn info(name: &str, dims: &[usize], layout: Layout) -> TensorInfo {
    let mut ty = TensorType::new(DType::F32, Shape::from_known(dims));
    ty.layout = layout;
    TensorInfo {
        name: name.into(),
        ty,
    }
}

fn constant(g: &mut Graph, name: &str, dims: &[usize], layout: Layout) -> ValueRef {
    let n: usize = dims.iter().product();
    let weight = g
        .weights
        .add(Weight::from_f32(dims.to_vec(), &vec![0.5; n]));
    let out = info(name, dims, layout);
    ValueRef::new(
        g.add_node(Node::new(name, Op::Constant { weight }, vec![out])),
        0,
    )
}

/// Adds a layer imported from ONNX op `onnx_op`, reading `ins` on ports 0, 1, ...
fn layer(
    g: &mut Graph,
    (name, onnx_op): (&str, &str),
    op: Op,
    ins: &[ValueRef],
    out: TensorInfo,
    src: &[(&str, AttrValue)],
) -> ValueRef {
    let origin = g.add_origin(Origin {
        framework: Framework::Onnx,
        node_name: name.into(),
        op_type: onnx_op.into(),
        file: "tiny.onnx".into(),
    });
    let mut node = Node::new(name, op, vec![out]);
    node.provenance = Provenance::imported(origin);
    node.source_attrs = src
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let id = g.add_node(node);
    for (port, v) in ins.iter().enumerate() {
        g.connect(*v, id, port);
    }
    ValueRef::new(id, 0)
}

fn conv(kernel: usize) -> Op {
    Op::Conv(ConvAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        activation: None,
        kernel: [kernel; 2],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [kernel / 2; 4],
        group: 1,
        affine: None,
    })
}

/// x 1x3x8x8 -> conv1 (weight, bias) -> bn1 -> relu1; x -> conv2 (1x1, no bias);
/// add1 = relu1 + conv2; cat1 = concat(add1, relu1). Outputs y = cat1, z = add1.
/// Past `View::Parse` the batch norm is folded into conv1, as a pass would.
fn tiny(stage: View) -> Graph {
    let mut g = Graph::new("tiny");
    let x = g.add_node(Node::new(
        "x",
        Op::Input { index: 0 },
        vec![info("x", &[1, 3, 8, 8], Layout::NCHW)],
    ));
    g.inputs.push(x);
    let x = ValueRef::new(x, 0);
    let nchw = |name: &str, c: usize| info(name, &[1, c, 8, 8], Layout::NCHW);
    let w1 = constant(&mut g, "conv1.weight", &[4, 3, 3, 3], Layout::OIHW);
    let b1 = constant(&mut g, "conv1.bias", &[4], Layout::C);
    let ints = |v: &[i64]| AttrValue::Ints(v.to_vec());
    let conv_src = [
        ("kernel_shape", ints(&[3, 3])),
        ("pads", ints(&[1, 1, 1, 1])),
        ("strides", ints(&[1, 1])),
        ("auto_pad", AttrValue::String("NOTSET".into())),
    ];
    let c1 = layer(
        &mut g,
        ("conv1", "Conv"),
        conv(3),
        &[x, w1, b1],
        nchw("conv1_out", 4),
        &conv_src,
    );
    let act_in = if stage == View::Parse {
        let bn: Vec<ValueRef> = ["scale", "bias", "mean", "var"]
            .iter()
            .map(|role| constant(&mut g, &format!("bn1.{role}"), &[4], Layout::C))
            .collect();
        let bn_src = [
            ("epsilon", AttrValue::Float(1e-5)),
            ("momentum", AttrValue::Float(0.9)),
        ];
        let ins = [c1, bn[0], bn[1], bn[2], bn[3]];
        let bn_op = Op::BatchNorm { epsilon: 1e-5 };
        layer(
            &mut g,
            ("bn1", "BatchNormalization"),
            bn_op,
            &ins,
            nchw("bn1_out", 4),
            &bn_src,
        )
    } else {
        let bn_origin = g.add_origin(Origin {
            framework: Framework::Onnx,
            node_name: "bn1".into(),
            op_type: "BatchNormalization".into(),
            file: "tiny.onnx".into(),
        });
        let node = g.node_mut(c1.node);
        let imported = [node.provenance.clone(), Provenance::imported(bn_origin)];
        node.provenance = Provenance::merged("fold_batchnorm", &imported);
        c1
    };
    let relu = Op::Unary(UnaryOp::Relu);
    let r1 = layer(
        &mut g,
        ("relu1", "Relu"),
        relu,
        &[act_in],
        nchw("relu1_out", 4),
        &[],
    );
    let w2 = constant(&mut g, "conv2.weight", &[4, 3, 1, 1], Layout::OIHW);
    let c2 = layer(
        &mut g,
        ("conv2", "Conv"),
        conv(1),
        &[x, w2],
        nchw("conv2_out", 4),
        &[],
    );
    let add = Op::Binary(BinaryOp::Add);
    let a1 = layer(
        &mut g,
        ("add1", "Add"),
        add,
        &[r1, c2],
        nchw("add1_out", 4),
        &[],
    );
    let cat = Op::Concat { axis: 1 };
    let src = [("axis", AttrValue::Int(1))];
    let y = layer(
        &mut g,
        ("cat1", "Concat"),
        cat,
        &[a1, r1],
        nchw("cat1_out", 8),
        &src,
    );
    g.outputs = vec![
        GraphOutput {
            name: "y".into(),
            value: y,
        },
        GraphOutput {
            name: "z".into(),
            value: a1,
        },
    ];
    if stage == View::Compile {
        let ids: Vec<NodeId> = g.node_ids().collect();
        for id in ids {
            let host = matches!(g.node(id).op, Op::Concat { .. });
            g.node_mut(id).placement = Some(Placement {
                precision: if host {
                    Precision::Fp32
                } else {
                    Precision::Fp16
                },
                partition: if host {
                    Partition::Host
                } else {
                    Partition::Engine
                },
            });
        }
    }
    temblor_ir::validate(&g).expect("valid test graph");
    g
}

#[test]
fn parse_view() {
    insta::assert_snapshot!("parse", render(&tiny(View::Parse), View::Parse));
}

#[test]
fn optimize_view() {
    insta::assert_snapshot!("optimize", render(&tiny(View::Optimize), View::Optimize));
}

#[test]
fn compile_view() {
    insta::assert_snapshot!("compile", render(&tiny(View::Compile), View::Compile));
}

#[test]
fn views_keep_netron_rules_and_are_deterministic() {
    for view in [View::Parse, View::Optimize, View::Compile] {
        let g = tiny(view);
        let text = render(&g, view);
        assert_eq!(
            text,
            render(&tiny(view), view),
            "{view:?} differs between runs"
        );
        let layers = check_netron_rules(&text).unwrap_or_else(|e| panic!("{view:?}: {e}"));
        assert_eq!(layers, g.layer_count(), "{view:?}");
    }
}

#[test]
fn awkward_names_and_values_stay_within_the_rules() {
    let mut g = Graph::new("odd \"name\" \\ (1/2)*3=?");
    let x = g.add_node(Node::new(
        "in put",
        Op::Input { index: 0 },
        vec![TensorInfo {
            name: "a\nb".into(),
            ty: TensorType::new(DType::F32, Shape(vec![temblor_ir::Dim::Symbol("N".into())])),
        }],
    ));
    g.inputs.push(x);
    let clip = Op::Clip {
        min: 0.0,
        max: f32::INFINITY,
    };
    let src = [("odd key=?", AttrValue::Floats(vec![f32::NAN, -1.5]))];
    let out = info("a\nb", &[1], Layout::Any);
    let y = layer(
        &mut g,
        ("clip (1)", "Clip"),
        clip,
        &[ValueRef::new(x, 0)],
        out,
        &src,
    );
    g.outputs.push(GraphOutput {
        name: "out\r".into(),
        value: y,
    });
    for view in [View::Parse, View::Optimize, View::Compile] {
        let text = render(&g, view);
        assert_eq!(check_netron_rules(&text), Ok(1), "{text}");
        assert!(text.contains("input_shape { dim: -1 }"), "{text}");
        assert!(
            text.contains("top: \"a\\nb_1\""),
            "duplicate names made unique: {text}"
        );
    }
}

#[test]
fn the_rules_check_rejects_what_netron_would() {
    let layer = |body: &str| format!("name: \"g\"\ninput: \"x\"\nlayer {{\n{body}\n}}\n");
    let ok = "name: \"a\" type: \"ReLU\" bottom: \"x\" top: \"y\" layer_param { k: [1, 2] }";
    assert_eq!(check_netron_rules(&layer(ok)), Ok(1));
    for bad in [
        ok.replace("[1, 2]", "(1, 2)"),
        ok.replace("k: [1, 2]", "k: a/b"),
        ok.replace("bottom: \"x\"", "bottom: \"z\""),
        ok.replace("top: \"y\"", "top: \"x\""),
        ok.replace(" layer_param { k: [1, 2] }", ""),
        ok.replace("layer_param", "ir_version: 3 layer_param"),
        ok.replace("\"ReLU\"", "ReLU"),
    ] {
        assert!(check_netron_rules(&layer(&bad)).is_err(), "accepted {bad}");
    }
    assert!(check_netron_rules("graph { }").is_err());
    assert!(check_netron_rules("name: \"a\nb\"").is_err());
}
