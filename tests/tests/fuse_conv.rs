//! The conv epilogue fusion: every activation it absorbs, a residual Add followed by an activation,
//! and the layers it must leave alone, on a small hand-built graph pinned as an optimize view
//! (insta) and checked numerically against the unoptimized graph; then PP-OCRv4 det, whose
//! optimized graph must compute what the imported one does.

use temblor_ir::{
    validate, Activation, BinaryOp, ConvAttrs, ConvTransposeAttrs, DType, Framework, Graph,
    GraphOutput, Layout, Node, Op, Origin, Provenance, Shape, TensorInfo, TensorType, UnaryOp,
    ValueRef, Weight,
};
use temblor_passes::{CommuteConstants, DeadNodes, Driver, FuseConvEpilogue, Pass};
use temblor_pipeline::Options;
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor};
use temblor_tests::{read_f32, real_model, rel_l2, shared, Rng};
use temblor_visualize::{render, View};

const C: usize = 4;

struct Builder {
    g: Graph,
    rng: Rng,
}

impl Builder {
    fn node(
        &mut self,
        name: &str,
        op: Op,
        dims: &[usize],
        layout: Layout,
        inputs: &[ValueRef],
    ) -> ValueRef {
        let origin = self.g.add_origin(Origin {
            framework: Framework::Temblor,
            node_name: name.into(),
            op_type: op.name().into(),
            file: "hand-built".into(),
        });
        let ty = TensorType {
            dtype: DType::F32,
            shape: Shape::from_known(dims),
            layout,
        };
        let mut node = Node::new(
            name,
            op,
            vec![TensorInfo {
                name: name.into(),
                ty,
            }],
        );
        node.provenance = Provenance::imported(origin);
        let id = self.g.add_node(node);
        for (port, v) in inputs.iter().enumerate() {
            self.g.connect(*v, id, port);
        }
        ValueRef::new(id, 0)
    }

    fn constant(&mut self, name: &str, dims: &[usize], layout: Layout) -> ValueRef {
        let values = self.rng.values(dims.iter().product());
        let weight = self.g.weights.add(Weight::from_f32(dims.to_vec(), &values));
        self.node(name, Op::Constant { weight }, dims, layout, &[])
    }

    /// A 3x3 same-size conv with bias, `C` channels in and out.
    fn conv(&mut self, name: &str, x: ValueRef) -> ValueRef {
        let w = self.constant(&format!("{name}.w"), &[C, C, 3, 3], Layout::OIHW);
        let b = self.constant(&format!("{name}.b"), &[C], Layout::C);
        let attrs = ConvAttrs {
            auto_pad: temblor_ir::AutoPad::NotSet,
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [1, 1, 1, 1],
            group: 1,
            activation: None,
            affine: None,
        };
        self.node(name, Op::Conv(attrs), &ACT, Layout::NCHW, &[x, w, b])
    }

    fn apply(&mut self, name: &str, op: Op, inputs: &[ValueRef]) -> ValueRef {
        self.node(name, op, &ACT, Layout::NCHW, inputs)
    }
}

const ACT: [usize; 4] = [1, C, 8, 8];
const UP: [usize; 4] = [1, C, 16, 16];

/// A chain of convs, each followed by one kind of epilogue (a scalar Mul and Add after an
/// activation among them, and an Add then a Mul, of which only the Add fuses), a ConvTranspose
/// with a Relu (an output of its own), then three convs
/// that must stay as they are: one whose output is also a graph output, one whose Add
/// broadcasts, and one whose Add of a tensor comes after its activation.
fn sample_graph() -> Graph {
    let mut b = Builder {
        g: Graph::new("fuse_conv"),
        rng: Rng(0x2545F4914F6CDD1D),
    };
    let x = b.node("x", Op::Input { index: 0 }, &ACT, Layout::NCHW, &[]);
    b.g.inputs.push(x.node);

    let c = b.conv("relu_conv", x);
    let h = b.apply("relu", Op::Unary(UnaryOp::Relu), &[c]);
    let c = b.conv("res_conv", h);
    let sum = b.apply("res_add", Op::Binary(BinaryOp::Add), &[c, h]);
    let h = b.apply("res_relu", Op::Unary(UnaryOp::Relu), &[sum]);
    let c = b.conv("silu_conv", h);
    let gate = b.apply("silu_sigmoid", Op::Unary(UnaryOp::Sigmoid), &[c]);
    let h = b.apply("silu_mul", Op::Binary(BinaryOp::Mul), &[gate, c]);
    let c = b.conv("hswish_conv", h);
    let h = b.apply("hswish", Op::Unary(UnaryOp::HardSwish), &[c]);
    let c = b.conv("leaky_conv", h);
    let h = b.apply("leaky", Op::LeakyRelu { alpha: 0.1 }, &[c]);
    let c = b.conv("clip_conv", h);
    let h = b.apply("clip", Op::Clip { min: 0.0, max: 6.0 }, &[c]);
    let c = b.conv("affine_conv", h);
    let h = b.apply("affine_hswish", Op::Unary(UnaryOp::HardSwish), &[c]);
    let scale = b.constant("affine.scale", &[1], Layout::Any);
    let h = b.apply("affine_mul", Op::Binary(BinaryOp::Mul), &[scale, h]);
    let shift = b.constant("affine.shift", &[1], Layout::Any);
    let h = b.apply("affine_add", Op::Binary(BinaryOp::Add), &[h, shift]);
    let c = b.conv("shift_conv", h);
    let h = b.apply("shift_relu", Op::Unary(UnaryOp::Relu), &[c]);
    let shift = b.constant("shift.shift", &[1], Layout::Any);
    let h = b.apply("shift_add", Op::Binary(BinaryOp::Add), &[h, shift]);
    let scale = b.constant("shift.scale", &[1], Layout::Any);
    let h = b.apply("shift_mul", Op::Binary(BinaryOp::Mul), &[h, scale]);
    let w = b.constant("up.w", &[C, C, 2, 2], Layout::IOHW);
    let up_attrs = ConvTransposeAttrs {
        kernel: [2, 2],
        strides: [2, 2],
        dilations: [1, 1],
        pads: [0; 4],
        output_padding: [0, 0],
        group: 1,
        activation: None,
    };
    let up = b.node(
        "up",
        Op::ConvTranspose(up_attrs),
        &UP,
        Layout::NCHW,
        &[h, w],
    );
    let up = b.node(
        "up_relu",
        Op::Unary(UnaryOp::Relu),
        &UP,
        Layout::NCHW,
        &[up],
    );

    let c = b.conv("hsig_conv", h);
    let alpha_beta = Op::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    };
    let y = b.apply("hsig", alpha_beta, &[c]);

    let shared = b.conv("shared_conv", x);
    let shared_relu = b.apply("shared_relu", Op::Unary(UnaryOp::Relu), &[shared]);
    let c = b.conv("bcast_conv", x);
    let per_channel = b.constant("bcast.shift", &[1, C, 1, 1], Layout::NCHW);
    let bcast = b.apply("bcast_add", Op::Binary(BinaryOp::Add), &[c, per_channel]);
    let c = b.conv("late_conv", x);
    let h = b.apply("late_relu", Op::Unary(UnaryOp::Relu), &[c]);
    let late = b.apply("late_add", Op::Binary(BinaryOp::Add), &[h, x]);

    b.g.outputs = [
        ("y", y),
        ("shared", shared),
        ("shared_relu", shared_relu),
        ("bcast", bcast),
        ("late", late),
        ("up", up),
    ]
    .into_iter()
    .map(|(name, value)| GraphOutput {
        name: name.into(),
        value,
    })
    .collect();
    validate(&b.g).expect("sample graph is valid");
    b.g
}

/// The epilogue fusion alone (after the operand order it relies on, and with dead-node
/// removal), so each case shows what it fuses and the broadcasting Add is left for
/// `fold_conv_affine` to take in the full pipeline.
fn optimized(g: &Graph) -> Graph {
    let mut g = g.clone();
    let passes: Vec<Box<dyn Pass>> = vec![
        Box::new(CommuteConstants),
        Box::new(FuseConvEpilogue),
        Box::new(DeadNodes),
    ];
    Driver::new(passes).run(&mut g).expect("optimize");
    g
}

fn count(g: &Graph, op: &str) -> usize {
    g.op_counts()
        .into_iter()
        .find(|(name, _)| name == op)
        .map_or(0, |(_, n)| n)
}

/// Each conv by name with its activation and whether it reads a residual.
fn convs(g: &Graph) -> Vec<(String, Option<Activation>, bool)> {
    let mut convs: Vec<_> = g
        .node_ids()
        .filter_map(|id| match &g.node(id).op {
            Op::Conv(a) => Some((
                g.node(id).name.clone(),
                a.activation,
                g.input(id, 3).is_some(),
            )),
            _ => None,
        })
        .collect();
    convs.sort_by(|a, b| a.0.cmp(&b.0));
    convs
}

#[test]
fn optimize_view_of_the_fused_convs() {
    insta::assert_snapshot!(
        "fuse_conv_optimize",
        render(&optimized(&sample_graph()), View::Optimize)
    );
}

#[test]
fn each_epilogue_fuses_and_the_rest_stays() {
    let parse = sample_graph();
    let g = optimized(&parse);
    let expected = [
        ("affine_conv", Some(Activation::HardSwish), false),
        ("bcast_conv", None, false),
        (
            "clip_conv",
            Some(Activation::Clip { min: 0.0, max: 6.0 }),
            false,
        ),
        (
            "hsig_conv",
            Some(Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            }),
            false,
        ),
        ("hswish_conv", Some(Activation::HardSwish), false),
        ("late_conv", Some(Activation::Relu), false),
        (
            "leaky_conv",
            Some(Activation::LeakyRelu { alpha: 0.1 }),
            false,
        ),
        ("relu_conv", Some(Activation::Relu), false),
        ("res_conv", Some(Activation::Relu), true),
        ("shared_conv", None, false),
        ("shift_conv", Some(Activation::Relu), false),
        ("silu_conv", Some(Activation::Silu), false),
    ]
    .map(|(name, act, residual)| (name.to_string(), act, residual));
    assert_eq!(convs(&g), expected);
    let affine = |conv: &str| {
        let id = g.node_ids().find(|&id| g.node(id).name == conv).unwrap();
        let Op::Conv(a) = &g.node(id).op else {
            unreachable!("{conv} is a conv")
        };
        a.affine.map(|a| (a.scale.to_bits(), a.shift.to_bits()))
    };
    let constant = |name: &str| {
        let id = parse.node_ids().find(|&id| parse.node(id).name == name);
        let value = parse.constant(ValueRef::new(id.unwrap(), 0)).unwrap();
        value.to_f32().unwrap()[0].to_bits()
    };
    let (scale, shift) = (constant("affine.scale"), constant("affine.shift"));
    assert_eq!(affine("affine_conv"), Some((scale, shift)));
    // The Add fuses as a shift after the identity scale; the Mul after it cannot follow.
    let shift = constant("shift.shift");
    assert_eq!(affine("shift_conv"), Some((1f32.to_bits(), shift)));
    assert_eq!(affine("relu_conv"), None);
    // The shared conv's Relu, the broadcasting Add, the Add after an activation, and the Mul
    // after a shift remain.
    assert_eq!(count(&g, "Relu"), 1);
    assert_eq!(count(&g, "Add"), 2);
    assert_eq!(count(&g, "Mul"), 1);
    assert_eq!(count(&g, "Sigmoid"), 0);
    assert_eq!(g.layer_count(), parse.layer_count() - 16);
    let names: Vec<&str> = g.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["y", "shared", "shared_relu", "bcast", "late", "up"]);
    let up = g.node_ids().find(|&id| g.node(id).name == "up").unwrap();
    let Op::ConvTranspose(a) = &g.node(up).op else {
        unreachable!("up is a ConvTranspose")
    };
    assert_eq!(a.activation, Some(Activation::Relu));
}

#[test]
fn fused_conv_records_every_absorbed_layer() {
    let g = optimized(&sample_graph());
    let origins = |conv: &str| -> Vec<String> {
        let id = g
            .node_ids()
            .find(|&id| g.node(id).name == conv)
            .expect("conv kept");
        let prov = &g.node(id).provenance;
        assert_eq!(prov.made_by.as_deref(), Some("fuse_conv_epilogue"));
        prov.origins
            .iter()
            .map(|&o| g.origin(o).unwrap().node_name.clone())
            .collect()
    };
    assert_eq!(origins("res_conv"), ["res_conv", "res_add", "res_relu"]);
    assert_eq!(
        origins("silu_conv"),
        ["silu_conv", "silu_sigmoid", "silu_mul"]
    );
}

#[test]
fn fused_graph_computes_what_the_parsed_one_does() {
    let parse = sample_graph();
    let g = optimized(&parse);
    let x = Tensor::f32(ACT.to_vec(), Rng(11).values(ACT.iter().product()));
    let run = |g: &Graph| {
        prepare(g, &Device::Cpu, &PrepareOptions::default())
            .and_then(|p| p.run_once(&[("x".into(), x.clone())]))
            .expect("run")
    };
    for ((name, a), (_, b)) in run(&g).iter().zip(&run(&parse)) {
        let err = rel_l2(a.as_f32().unwrap(), b.as_f32().unwrap());
        assert!(err < 1e-6, "{name}: relative L2 {err:e}");
    }
}

/// On the real page image: random noise drives the detector's sigmoid into a range where even
/// the BatchNorm fold's reassociation moves the output by about 1e-5.
#[test]
fn ppocrv4_det_fused_matches_unfused() {
    let model = real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx");
    let (dims, values) = read_f32(&shared().join("models/real/ppocrv4_det_onnx/page/input_x.npy"));
    let options = Options {
        input_dims: vec![("x".into(), dims.clone())],
        ..Options::default()
    };
    let compiled = temblor_pipeline::compile(&model, &options).expect("compile");
    let fused = convs(&compiled.optimize)
        .iter()
        .filter(|(_, act, residual)| act.is_some() || *residual)
        .count();
    assert!(fused > 0, "no conv of PP-OCRv4 det was fused");

    let x = Tensor::f32(dims, values);
    let run = |g: &Graph| {
        prepare(g, &Device::Cpu, &PrepareOptions::default())
            .and_then(|p| p.run_once(&[("x".into(), x.clone())]))
            .expect("run")
    };
    let (before, after) = (run(&compiled.parse), run(&compiled.optimize));
    assert_eq!(before.len(), after.len());
    for ((name, a), (_, b)) in after.iter().zip(&before) {
        assert_eq!(a.shape, b.shape, "{name}");
        let err = rel_l2(a.as_f32().unwrap(), b.as_f32().unwrap());
        assert!(err < 1e-5, "{name}: relative L2 {err:e}");
    }
}
