//! A builder for the small hand-made graphs the pass tests rewrite.

use crate::Rng;
use temblor_ir::{
    ConvAttrs, DType, Framework, Graph, Layout, Node, Op, Origin, Partition, Placement, Precision,
    Provenance, Shape, TensorInfo, TensorType, ValueRef, Weight,
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
            auto_pad: temblor_ir::AutoPad::NotSet,
            activation: None,
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [1, 1, 1, 1],
            group: 1,
            affine: None,
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

impl Builder {
    /// Graph input number `g.inputs.len()`, named `name`.
    pub fn input(&mut self, name: &str, ty: TensorType) -> ValueRef {
        let index = self.g.inputs.len();
        let x = self.node(name, Op::Input { index }, ty, &[]);
        self.g.inputs.push(x.node);
        x
    }

    /// A constant holding `weight` as given, of any dtype (f16 weights of an fp16 layer, int8
    /// weights and zero points of an int8 one).
    pub fn weight(&mut self, name: &str, weight: Weight, layout: Layout) -> ValueRef {
        let ty = TensorType {
            dtype: weight.dtype,
            shape: Shape::from_known(&weight.dims),
            layout,
        };
        let id = self.g.weights.add(weight);
        self.node(name, Op::Constant { weight: id }, ty, &[])
    }
}

/// An int8 weight.
pub fn int8_weight(dims: Vec<usize>, values: &[i8]) -> Weight {
    Weight {
        dtype: DType::I8,
        dims,
        data: values.iter().map(|&q| q as u8).collect::<Vec<u8>>().into(),
    }
}

impl Builder {
    /// `DequantizeLinear(QuantizeLinear(x))` of an 8x8 activation of `c` channels with uint8
    /// `zero` and `scale`, as onnxruntime's quantizer writes around a layer's output.
    pub fn qdq(&mut self, name: &str, x: ValueRef, c: usize, scale: f32, zero: u8) -> ValueRef {
        let s = self.constant(&format!("{name}.scale"), &[], vec![scale], Layout::Any);
        let z = Weight {
            dtype: DType::U8,
            dims: vec![],
            data: vec![zero].into(),
        };
        let z = self.weight(&format!("{name}.zero"), z, Layout::Any);
        let mut bytes = act(c);
        bytes.dtype = DType::U8;
        let q_op = Op::QuantizeLinear {
            axis: 1,
            saturate: true,
        };
        let q = self.node(&format!("{name}.q"), q_op, bytes, &[x, s, z]);
        let dq_op = Op::DequantizeLinear { axis: 1 };
        self.node(&format!("{name}.dq"), dq_op, act(c), &[q, s, z])
    }

    /// A 3x3 conv of `x` (`cin` channels, 8x8) in int8 as the precision contract writes one:
    /// input 0 through `{name}.input_q` / `{name}.input_dq` with the per-tensor `input_scale`,
    /// random int8 weights through `{name}.weight_dq` with `weight_scales` (one per output
    /// channel), zero points 0; every node placed int8 on the engine.
    pub fn int8_conv(
        &mut self,
        name: &str,
        x: ValueRef,
        cin: usize,
        input_scale: f32,
        weight_scales: &[f32],
    ) -> ValueRef {
        let cout = weight_scales.len();
        let s = self.constant(
            &format!("{name}.input_scale"),
            &[],
            vec![input_scale],
            Layout::Any,
        );
        let zp = self.weight(
            &format!("{name}.input_zero_point"),
            int8_weight(vec![], &[0]),
            Layout::Any,
        );
        let mut i8_act = act(cin);
        i8_act.dtype = DType::I8;
        let q_op = Op::QuantizeLinear {
            axis: 1,
            saturate: true,
        };
        let q = self.node(&format!("{name}.input_q"), q_op, i8_act, &[x, s, zp]);
        let dq_op = Op::DequantizeLinear { axis: 1 };
        let dq = self.node(&format!("{name}.input_dq"), dq_op, act(cin), &[q, s, zp]);
        let dims = vec![cout, cin, 3, 3];
        let values: Vec<i8> = self
            .rng
            .bytes(dims.iter().product())
            .into_iter()
            .map(|b| (b as i8).max(-127))
            .collect();
        let wq = self.weight(
            &format!("{name}.weight_q"),
            int8_weight(dims.clone(), &values),
            Layout::OIHW,
        );
        let ws = self.constant(
            &format!("{name}.weight_scale"),
            &[cout],
            weight_scales.to_vec(),
            Layout::C,
        );
        let wzp = self.weight(
            &format!("{name}.weight_zero_point"),
            int8_weight(vec![cout], &vec![0; cout]),
            Layout::C,
        );
        let w_ty = TensorType {
            dtype: DType::F32,
            shape: Shape::from_known(&dims),
            layout: Layout::OIHW,
        };
        let wdq_op = Op::DequantizeLinear { axis: 0 };
        let wdq = self.node(&format!("{name}.weight_dq"), wdq_op, w_ty, &[wq, ws, wzp]);
        let attrs = ConvAttrs {
            auto_pad: temblor_ir::AutoPad::NotSet,
            activation: None,
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [1, 1, 1, 1],
            group: 1,
            affine: None,
        };
        let conv = self.node(name, Op::Conv(attrs), act(cout), &[dq, wdq]);
        for v in [q, dq, wdq, conv] {
            self.g.node_mut(v.node).placement = Some(Placement {
                precision: Precision::Int8,
                partition: Partition::Engine,
            });
        }
        conv
    }
}
