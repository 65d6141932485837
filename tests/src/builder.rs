//! A builder for the small hand-made graphs the pass tests rewrite.

use crate::Rng;
use temblor_ir::{
    ConvAttrs, DType, Framework, Graph, Layout, Node, Op, Origin, Provenance, Shape, TensorInfo,
    TensorType, ValueRef, Weight,
};

/// Builds small graphs by hand: nodes with their types, each its own origin.
pub struct Builder {
    pub g: Graph,
    pub rng: Rng,
}

impl Builder {
    pub fn new(name: &str, seed: u64) -> Builder {
        Builder {
            g: Graph::new(name),
            rng: Rng(seed),
        }
    }

    pub fn origin(&mut self, name: &str, op_type: &str) -> Provenance {
        Provenance::imported(self.g.add_origin(Origin {
            framework: Framework::Temblor,
            node_name: name.into(),
            op_type: op_type.into(),
            file: "hand-built".into(),
        }))
    }

    pub fn node(&mut self, name: &str, op: Op, ty: TensorType, inputs: &[ValueRef]) -> ValueRef {
        let op_type = op.name().to_string();
        let mut node = Node::new(
            name,
            op,
            vec![TensorInfo {
                name: name.into(),
                ty,
            }],
        );
        node.provenance = self.origin(name, &op_type);
        let id = self.g.add_node(node);
        for (port, v) in inputs.iter().enumerate() {
            self.g.connect(*v, id, port);
        }
        ValueRef::new(id, 0)
    }

    pub fn constant(
        &mut self,
        name: &str,
        dims: &[usize],
        values: Vec<f32>,
        layout: Layout,
    ) -> ValueRef {
        let weight = self.g.weights.add(Weight::from_f32(dims.to_vec(), &values));
        let ty = TensorType {
            dtype: DType::F32,
            shape: Shape::from_known(dims),
            layout,
        };
        self.node(name, Op::Constant { weight }, ty, &[])
    }

    /// A 1-D int64 constant.
    pub fn ints(&mut self, name: &str, values: &[i64]) -> ValueRef {
        let w = self
            .g
            .weights
            .add(Weight::from_i64(vec![values.len()], values));
        let ty = TensorType::new(DType::I64, Shape::from_known(&[values.len()]));
        self.node(name, Op::Constant { weight: w }, ty, &[])
    }

    pub fn random(&mut self, name: &str, dims: &[usize], layout: Layout) -> ValueRef {
        let values = self.rng.values(dims.iter().product());
        self.constant(name, dims, values, layout)
    }

    pub fn conv_bn(
        &mut self,
        prefix: &str,
        x: ValueRef,
        cin: usize,
        cout: usize,
        bias: bool,
    ) -> ValueRef {
        let w = self.random(&format!("{prefix}.w"), &[cout, cin, 3, 3], Layout::OIHW);
        let mut ins = vec![x, w];
        if bias {
            ins.push(self.random(&format!("{prefix}.b"), &[cout], Layout::C));
        }
        let attrs = ConvAttrs {
            activation: None,
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [1, 1, 1, 1],
            group: 1,
        };
        let conv = self.node(&format!("{prefix}.conv"), Op::Conv(attrs), act(cout), &ins);
        let mut bn_ins = vec![conv];
        for p in ["gamma", "beta", "mean"] {
            bn_ins.push(self.random(&format!("{prefix}.{p}"), &[cout], Layout::C));
        }
        let var: Vec<f32> = self
            .rng
            .values(cout)
            .iter()
            .map(|v| v.abs() + 0.5)
            .collect();
        bn_ins.push(self.constant(&format!("{prefix}.var"), &[cout], var, Layout::C));
        self.node(
            &format!("{prefix}.bn"),
            Op::BatchNorm { epsilon: 1e-5 },
            act(cout),
            &bn_ins,
        )
    }
}

/// An NCHW float activation of `c` channels at 8x8, batch 1.
pub fn act(c: usize) -> TensorType {
    TensorType {
        dtype: DType::F32,
        shape: Shape::from_known(&[1, c, 8, 8]),
        layout: Layout::NCHW,
    }
}

/// How many layers of `op` the graph has.
pub fn count(g: &Graph, op: &str) -> usize {
    g.op_counts()
        .into_iter()
        .find(|(name, _)| name == op)
        .map_or(0, |(_, n)| n)
}

/// `g` with every weight known by dtype and shape alone, as a model given without its
/// parameter file is imported.
pub fn shape_only(g: &Graph) -> Graph {
    let mut g = g.clone();
    let constants: Vec<_> = g
        .node_ids()
        .filter(|&id| matches!(g.node(id).op, Op::Constant { .. }))
        .collect();
    for id in constants {
        let Op::Constant { weight } = g.node(id).op else {
            continue;
        };
        let w = g.weights.get(weight).expect("weight of a constant");
        let stripped = g.weights.add(Weight::shape_only(w.dtype, w.dims.clone()));
        g.node_mut(id).op = Op::Constant { weight: stripped };
    }
    g
}
