//! Graphs built node by node, for the tests of whole plans.

use temblor_ir::{
    DType, Dim, Graph, Node, NodeId, Op, Shape, TensorInfo, TensorType, ValueRef, Weight,
};
use temblor_runtime::Tensor;

pub fn info(name: &str, dtype: DType, dims: Vec<Dim>) -> TensorInfo {
    TensorInfo {
        name: name.to_string(),
        ty: TensorType::new(dtype, Shape(dims)),
    }
}

pub fn known(dims: &[usize]) -> Vec<Dim> {
    dims.iter().map(|&d| Dim::Known(d)).collect()
}

pub fn input(g: &mut Graph, name: &str, dtype: DType, dims: Vec<Dim>) -> NodeId {
    let index = g.inputs.len();
    let id = g.add_node(Node::new(
        name,
        Op::Input { index },
        vec![info(name, dtype, dims)],
    ));
    g.inputs.push(id);
    id
}

pub fn constant(g: &mut Graph, name: &str, t: &Tensor) -> NodeId {
    let weight = g
        .weights
        .add(Weight::from_f32(t.shape.clone(), t.as_f32().unwrap()));
    g.add_node(Node::new(
        name,
        Op::Constant { weight },
        vec![info(name, DType::F32, known(&t.shape))],
    ))
}

pub fn layer(g: &mut Graph, name: &str, op: Op, ins: &[ValueRef], outputs: usize) -> NodeId {
    let outs = (0..outputs)
        .map(|i| info(&format!("{name}:{i}"), DType::F32, vec![]))
        .collect();
    let id = g.add_node(Node::new(name, op, outs));
    for (port, v) in ins.iter().enumerate() {
        g.connect(*v, id, port);
    }
    id
}

pub fn v(id: NodeId) -> ValueRef {
    ValueRef::new(id, 0)
}
