//! Removing a node refuses while its value is read. Without the check, removing the producer of
//! an optional input left its reader with an unconnected port: the graph still validated and
//! computed something else (a Conv without its bias).

use temblor_ir::{
    validate, ConvAttrs, DType, Graph, GraphOutput, Node, NodeId, Op, RemoveNodeError, Shape,
    TensorInfo, TensorType, UnaryOp, ValueRef, Weight,
};

fn add(g: &mut Graph, name: &str, op: Op, dims: &[usize], inputs: &[ValueRef]) -> ValueRef {
    let ty = TensorType::new(DType::F32, Shape::from_known(dims));
    let id = g.add_node(Node::new(
        name,
        op,
        vec![TensorInfo {
            name: name.into(),
            ty,
        }],
    ));
    for (port, v) in inputs.iter().enumerate() {
        g.connect(*v, id, port);
    }
    ValueRef::new(id, 0)
}

fn constant(g: &mut Graph, name: &str, dims: &[usize]) -> ValueRef {
    let values = vec![0.5; dims.iter().product()];
    let weight = g.weights.add(Weight::from_f32(dims.to_vec(), &values));
    add(g, name, Op::Constant { weight }, dims, &[])
}

/// x -> conv(w, bias) -> relu -> y. Returns the graph, the bias producer, the conv and the relu.
fn conv_with_bias() -> (Graph, NodeId, NodeId, NodeId) {
    let mut g = Graph::new("conv");
    let x = add(&mut g, "x", Op::Input { index: 0 }, &[1, 2, 4, 4], &[]);
    g.inputs.push(x.node);
    let w = constant(&mut g, "w", &[3, 2, 1, 1]);
    let bias = constant(&mut g, "bias", &[3]);
    let attrs = ConvAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        kernel: [1, 1],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [0; 4],
        group: 1,
        activation: None,
        affine: None,
    };
    let conv = add(
        &mut g,
        "conv",
        Op::Conv(attrs),
        &[1, 3, 4, 4],
        &[x, w, bias],
    );
    let relu = add(
        &mut g,
        "relu",
        Op::Unary(UnaryOp::Relu),
        &[1, 3, 4, 4],
        &[conv],
    );
    g.outputs.push(GraphOutput {
        name: "y".into(),
        value: relu,
    });
    validate(&g).unwrap();
    (g, bias.node, conv.node, relu.node)
}

#[test]
fn removing_the_producer_of_a_conv_bias_is_refused() {
    let (mut g, bias, conv, _) = conv_with_bias();
    let err = g.remove_node(bias).unwrap_err();
    assert_eq!(
        err,
        RemoveNodeError::Read {
            node: "bias".into(),
            port: 0,
            reader: "conv".into(),
            input: 2,
        }
    );
    assert!(g.contains(bias));
    assert_eq!(g.inputs_of(conv).len(), 3, "the bias stays connected");
}

#[test]
fn removing_the_producer_of_a_graph_output_is_refused() {
    let (mut g, _, _, relu) = conv_with_bias();
    let err = g.remove_node(relu).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot remove node 'relu': its output 0 is graph output 'y'"
    );
}

#[test]
fn a_group_is_removed_once_nothing_outside_reads_it() {
    let (mut g, _, conv, relu) = conv_with_bias();
    let x = g.input(conv, 0).unwrap();
    assert!(g.remove_nodes(&[conv, relu]).is_err(), "y still reads relu");
    assert!(
        g.contains(conv) && g.contains(relu),
        "a refusal removes nothing"
    );
    g.replace_uses(ValueRef::new(relu, 0), x);
    g.remove_nodes(&[relu, conv]).unwrap();
    assert!(!g.contains(conv) && !g.contains(relu));
    validate(&g).unwrap();
}

#[test]
fn an_unread_node_is_removed() {
    let (mut g, _, _, relu) = conv_with_bias();
    let extra = add(
        &mut g,
        "extra",
        Op::Unary(UnaryOp::Relu),
        &[1, 3, 4, 4],
        &[ValueRef::new(relu, 0)],
    );
    g.remove_node(extra.node).unwrap();
    assert!(!g.contains(extra.node));
    validate(&g).unwrap();
}
