//! The validator catches each kind of broken graph a pass could leave behind.

use temblor_ir::{
    validate, BinaryOp, DType, Graph, GraphOutput, Node, Op, Shape, TensorInfo, TensorType,
    UnaryOp, ValueRef, Weight,
};

fn ty(dtype: DType, dims: &[usize]) -> TensorType {
    TensorType::new(dtype, Shape::from_known(dims))
}

fn add(g: &mut Graph, name: &str, op: Op, t: TensorType, inputs: &[ValueRef]) -> ValueRef {
    let id = g.add_node(Node::new(
        name,
        op,
        vec![TensorInfo {
            name: name.into(),
            ty: t,
        }],
    ));
    for (port, v) in inputs.iter().enumerate() {
        g.connect(*v, id, port);
    }
    ValueRef::new(id, 0)
}

/// x -> relu -> add(relu, const) -> y
fn valid() -> (Graph, ValueRef, ValueRef) {
    let mut g = Graph::new("t");
    let x = add(
        &mut g,
        "x",
        Op::Input { index: 0 },
        ty(DType::F32, &[1, 4]),
        &[],
    );
    g.inputs.push(x.node);
    let relu = add(
        &mut g,
        "relu",
        Op::Unary(UnaryOp::Relu),
        ty(DType::F32, &[1, 4]),
        &[x],
    );
    let w = g
        .weights
        .add(Weight::from_f32(vec![4], &[1.0, 2.0, 3.0, 4.0]));
    let c = add(
        &mut g,
        "c",
        Op::Constant { weight: w },
        ty(DType::F32, &[4]),
        &[],
    );
    let y = add(
        &mut g,
        "y",
        Op::Binary(BinaryOp::Add),
        ty(DType::F32, &[1, 4]),
        &[relu, c],
    );
    g.outputs.push(GraphOutput {
        name: "y".into(),
        value: y,
    });
    (g, relu, y)
}

fn error(g: &Graph) -> String {
    validate(g).expect_err("graph must be rejected").to_string()
}

#[test]
fn a_valid_graph_passes() {
    validate(&valid().0).unwrap();
}

#[test]
fn cycle() {
    let (mut g, relu, y) = valid();
    g.disconnect_input(relu.node, 0);
    g.connect(y, relu.node, 0);
    assert!(error(&g).contains("cycle"));
}

#[test]
fn missing_required_input() {
    let (mut g, _, y) = valid();
    g.disconnect_input(y.node, 1);
    assert!(error(&g).contains("required input 1"));
}

#[test]
fn two_producers_for_one_port() {
    let (mut g, relu, y) = valid();
    g.connect(relu, y.node, 1);
    assert!(error(&g).contains("two producers"));
}

#[test]
fn output_port_out_of_range() {
    let (mut g, relu, y) = valid();
    g.disconnect_input(y.node, 0);
    g.connect(ValueRef::new(relu.node, 3), y.node, 0);
    assert!(error(&g).contains("reads output 3"));
}

#[test]
fn constant_disagrees_with_its_weight() {
    let (mut g, _, y) = valid();
    let c = g.input(y.node, 1).unwrap();
    g.node_mut(c.node).outputs[0].ty = ty(DType::F32, &[5]);
    assert!(error(&g).contains("declares float32 5"));
}

#[test]
fn dtype_mismatch_in_a_binary_op() {
    let (mut g, relu, _) = valid();
    g.node_mut(relu.node).outputs[0].ty = ty(DType::I64, &[1, 4]);
    assert!(error(&g).contains("dtypes differ"));
}

#[test]
fn shapes_that_do_not_broadcast() {
    let (mut g, relu, _) = valid();
    g.node_mut(relu.node).outputs[0].ty = ty(DType::F32, &[1, 3]);
    assert!(error(&g).contains("do not broadcast"));
}

#[test]
fn graph_output_of_a_removed_node() {
    let (mut g, _, y) = valid();
    let output = g.outputs.pop().unwrap();
    g.remove_node(y.node).unwrap();
    g.outputs.push(output);
    assert!(error(&g).contains("graph output 'y'"));
}
