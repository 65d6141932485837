//! A CPU plan end to end: a multi-node graph against the same ops run one at a time, inputs by
//! name, outputs by GraphOutput name, the errors for bad inputs and unsupported ops, and what
//! the seam promises (shared plans with states of their own, observers, options that change no
//! bits).

mod common;

use common::graph::{constant, info, input, known, layer, v};
use common::{assert_close, run_temblor, Arg, Rng};
use std::time::Duration;
use temblor_ir::{
    BinaryOp, ConvAttrs, DType, Dim, Graph, GraphOutput, Node, Op, ResizeAttrs, ResizeCoordinate,
    ResizeMode, ResizeNearest, SplitSizes, UnaryOp, ValueRef,
};
use temblor_runtime::{
    prepare, Device, ErrorKind, Observer, PrepareOptions, RuntimeError, StepInfo, Tensor, ValueView,
};

/// A stride-1 convolution with a square `kernel`, padded to keep its input's size.
fn same_conv(kernel: usize, group: usize) -> ConvAttrs {
    ConvAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        activation: None,
        kernel: [kernel; 2],
        strides: [1, 1],
        dilations: [1, 1],
        pads: [kernel / 2; 4],
        group,
        affine: None,
    }
}

/// x -> conv -> relu -> add(relu, x) -> split(2) ; outputs: split halves, relu (also read by
/// add), the input itself and the conv weight.
#[test]
fn graph_matches_ops_run_one_at_a_time() {
    let mut rng = Rng::new(20);
    let x = rng.tensor(&[1, 4, 6, 6]);
    let w = rng.tensor(&[4, 4, 3, 3]);
    let conv_attrs = same_conv(3, 1);

    let mut g = Graph::new("chain");
    let xi = input(
        &mut g,
        "x",
        DType::F32,
        vec![
            Dim::Symbol("N".into()),
            Dim::Known(4),
            Dim::Known(6),
            Dim::Known(6),
        ],
    );
    let wi = constant(&mut g, "w", &w);
    let conv = layer(
        &mut g,
        "conv",
        Op::Conv(conv_attrs.clone()),
        &[v(xi), v(wi)],
        1,
    );
    let relu = layer(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[v(conv)], 1);
    let add = layer(
        &mut g,
        "add",
        Op::Binary(BinaryOp::Add),
        &[v(relu), v(xi)],
        1,
    );
    let split = layer(
        &mut g,
        "split",
        Op::Split {
            axis: 1,
            sizes: SplitSizes::Explicit(vec![1, 3]),
        },
        &[v(add)],
        2,
    );
    for (name, value) in [
        ("second", ValueRef::new(split, 1)),
        ("first", ValueRef::new(split, 0)),
        ("relu_out", v(relu)),
        ("echo", v(xi)),
        ("weight", v(wi)),
    ] {
        g.outputs.push(GraphOutput {
            name: name.into(),
            value,
        });
    }
    temblor_ir::validate(&g).expect("test graph is valid");

    let plan = prepare(&g, &Device::Cpu, &PrepareOptions::default()).unwrap();
    let mut state = plan.new_state();
    let out = plan.run(&mut state, &[("x".into(), x.clone())]).unwrap();
    let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["second", "first", "relu_out", "echo", "weight"]);

    let c = run_temblor(
        Op::Conv(conv_attrs),
        &[Arg::Input(x.clone()), Arg::Const(w.clone())],
        1,
    )
    .remove(0);
    let r = run_temblor(Op::Unary(UnaryOp::Relu), &[Arg::Input(c)], 1).remove(0);
    let a = run_temblor(
        Op::Binary(BinaryOp::Add),
        &[Arg::Input(r.clone()), Arg::Input(x.clone())],
        1,
    )
    .remove(0);
    let s = run_temblor(
        Op::Split {
            axis: 1,
            sizes: SplitSizes::Explicit(vec![1, 3]),
        },
        &[Arg::Input(a)],
        2,
    );
    assert_close(&out[0].1, &s[1], "second");
    assert_close(&out[1].1, &s[0], "first");
    assert_close(&out[2].1, &r, "relu_out");
    assert_eq!(out[3].1, x);
    assert_eq!(out[4].1, w);

    // The plan and its state are reusable, and a symbolic batch takes any extent.
    let x2 = rng.tensor(&[3, 4, 6, 6]);
    let out2 = plan.run(&mut state, &[("x".into(), x2)]).unwrap();
    assert_eq!(out2[1].1.shape, vec![3, 1, 6, 6]);
}

/// Every buffer a run takes from its state comes back by the end of the run, so the next run
/// allocates (and faults in) nothing: a bilinear Resize's intermediate pass and a padded
/// convolution's scratch are the kinds that went missing (U^2-Net dropped 240 MB a run).
#[test]
fn a_run_gives_back_every_buffer_it_takes() {
    let mut rng = Rng::new(21);
    let x = rng.tensor(&[1, 8, 40, 40]);
    let w = rng.tensor(&[16, 8, 3, 3]);
    let mut g = Graph::new("upsample_conv");
    let xi = input(&mut g, "x", DType::F32, known(&x.shape));
    let scales = constant(
        &mut g,
        "scales",
        &Tensor::f32(vec![4], vec![1.0, 1.0, 2.0, 2.0]),
    );
    let attrs = ResizeAttrs::new(
        ResizeMode::Linear,
        ResizeCoordinate::HalfPixel,
        ResizeNearest::RoundPreferFloor,
    );
    let upsampled = info("resize:0", DType::F32, known(&[1, 8, 80, 80]));
    let resize = g.add_node(Node::new("resize", Op::Resize(attrs), vec![upsampled]));
    g.connect(v(xi), resize, 0);
    g.connect(v(scales), resize, 2);
    let wi = constant(&mut g, "w", &w);
    let conv = Op::Conv(same_conv(3, 1));
    let conv = layer(&mut g, "conv", conv, &[v(resize), v(wi)], 1);
    g.outputs.push(GraphOutput {
        name: "y".into(),
        value: v(conv),
    });
    temblor_ir::validate(&g).expect("test graph is valid");
    let plan = prepare(&g, &Device::Cpu, &PrepareOptions::default()).unwrap();
    let mut state = plan.new_state();
    for run in 0..3 {
        let out = plan.run(&mut state, &[("x".into(), x.clone())]).unwrap();
        assert_eq!(out[0].1.shape, vec![1, 16, 80, 80]);
        assert_eq!(
            state.lent_bytes(),
            0,
            "run {run} kept buffers from its state"
        );
    }
}

/// A Reshape whose target shape is a graph input, read at run time.
#[test]
fn reshape_reads_its_shape_at_run_time() {
    let mut g = Graph::new("reshape");
    let xi = input(&mut g, "x", DType::F32, known(&[2, 3, 4]));
    let si = input(&mut g, "shape", DType::I64, known(&[3]));
    let r = layer(
        &mut g,
        "r",
        Op::Reshape { allowzero: false },
        &[v(xi), v(si)],
        1,
    );
    g.outputs.push(GraphOutput {
        name: "y".into(),
        value: v(r),
    });
    let plan = prepare(&g, &Device::Cpu, &PrepareOptions::default()).unwrap();
    let x = Rng::new(21).tensor(&[2, 3, 4]);
    for (target, want) in [
        (vec![0, -1, 2], vec![2, 6, 2]),
        (vec![4, 3, 2], vec![4, 3, 2]),
    ] {
        let out = plan
            .run_once(&[
                ("shape".into(), Tensor::i64(vec![3], target)),
                ("x".into(), x.clone()),
            ])
            .unwrap();
        assert_eq!(out[0].1.shape, want);
        assert_eq!(out[0].1.as_f32(), x.as_f32());
    }
    let err = plan
        .run_once(&[
            ("shape".into(), Tensor::i64(vec![3], vec![5, -1, 1])),
            ("x".into(), x),
        ])
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadInput);
    assert!(
        err.message.contains("node 'r' (Reshape)"),
        "{}",
        err.message
    );
}

fn one_input_graph() -> Graph {
    let mut g = Graph::new("relu");
    let xi = input(
        &mut g,
        "x",
        DType::F32,
        vec![Dim::Symbol("N".into()), Dim::Known(3)],
    );
    let r = layer(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[v(xi)], 1);
    g.outputs.push(GraphOutput {
        name: "y".into(),
        value: v(r),
    });
    g
}

#[test]
fn bad_inputs_are_reported_as_such() {
    let plan = prepare(&one_input_graph(), &Device::Cpu, &PrepareOptions::default()).unwrap();
    let ok = Tensor::f32(vec![2, 3], vec![0.0; 6]);
    let cases: Vec<(Vec<(String, Tensor)>, &str)> = vec![
        (vec![], "missing input(s) [x]"),
        (vec![("y".into(), ok.clone())], "unknown input 'y'"),
        (
            vec![("x".into(), ok.clone()), ("x".into(), ok.clone())],
            "given twice",
        ),
        (
            vec![("x".into(), ok.clone()), ("z".into(), ok.clone())],
            "unknown input 'z'",
        ),
        (
            vec![("x".into(), Tensor::i64(vec![2, 3], vec![0; 6]))],
            "input 'x' is int64",
        ),
        (
            vec![("x".into(), Tensor::f32(vec![2, 4], vec![0.0; 8]))],
            "the graph expects float32 [N, 3]",
        ),
        (
            vec![("x".into(), Tensor::f32(vec![6], vec![0.0; 6]))],
            "the graph expects",
        ),
        (
            vec![("x".into(), Tensor::f32(vec![2, 3], vec![0.0; 5]))],
            "holds 5 elements",
        ),
    ];
    for (inputs, expected) in cases {
        let err = plan.run_once(&inputs).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadInput, "{}", err.message);
        assert!(
            err.message.contains(expected),
            "'{}' lacks '{expected}'",
            err.message
        );
    }
    let out = plan.run_once(&[("x".into(), ok)]).unwrap();
    assert_eq!(out[0].0, "y");
}

#[test]
fn every_unsupported_op_is_named_at_once() {
    let mut g = Graph::new("custom");
    let xi = input(&mut g, "x", DType::F32, known(&[4]));
    let custom = |name: &str| Op::Custom {
        domain: "temblor".into(),
        name: name.into(),
        attrs: vec![],
    };
    let a = layer(&mut g, "decode", custom("YoloBox"), &[v(xi)], 1);
    let b = layer(&mut g, "nms", custom("MulticlassNms"), &[v(a)], 1);
    g.outputs.push(GraphOutput {
        name: "y".into(),
        value: v(b),
    });
    let err = prepare(&g, &Device::Cpu, &PrepareOptions::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unsupported);
    for what in [
        "node 'decode' (YoloBox)",
        "node 'nms' (MulticlassNms)",
        "2 node(s)",
    ] {
        assert!(
            err.message.contains(what),
            "'{}' lacks '{what}'",
            err.message
        );
    }
}

#[test]
fn kernel_errors_name_the_node() {
    let mut g = Graph::new("add");
    let a = input(&mut g, "a", DType::F32, vec![Dim::Symbol("N".into())]);
    let b = input(&mut g, "b", DType::F32, vec![Dim::Symbol("M".into())]);
    let add = layer(&mut g, "sum", Op::Binary(BinaryOp::Add), &[v(a), v(b)], 1);
    g.outputs.push(GraphOutput {
        name: "y".into(),
        value: v(add),
    });
    let plan = prepare(&g, &Device::Cpu, &PrepareOptions::default()).unwrap();
    let err = plan
        .run_once(&[
            ("a".into(), Tensor::f32(vec![2], vec![1.0, 2.0])),
            ("b".into(), Tensor::f32(vec![3], vec![1.0, 2.0, 3.0])),
        ])
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadInput);
    assert!(
        err.message.starts_with("node 'sum' (Add): "),
        "{}",
        err.message
    );
    assert!(err.message.contains("do not broadcast"), "{}", err.message);
}

/// Outputs are carved from the buffers of freed values, including those of earlier runs: a
/// kernel that left an element unwritten (or summed into its output) would show another
/// value's contents. A chain through every convolution path (GEMM, depthwise, few outputs) and
/// the other pooled kernels, run on alternating inputs and compared bit for bit with its layers
/// run one at a time.
#[test]
fn reused_buffers_never_leak_values() {
    let mut rng = Rng::new(22);
    let conv = |kernel: usize, group: usize| Op::Conv(same_conv(kernel, group));
    let layers = [
        ("pointwise", conv(1, 1), rng.tensor(&[16, 8, 1, 1])),
        ("depthwise", conv(3, 16), rng.tensor(&[16, 1, 3, 3])),
        ("gemm", conv(3, 1), rng.tensor(&[12, 16, 3, 3])),
        ("few", conv(3, 1), rng.tensor(&[3, 12, 3, 3])),
    ];
    let mut g = Graph::new("reuse");
    let xi = input(&mut g, "x", DType::F32, known(&[1, 8, 12, 10]));
    let mut last = v(xi);
    for (name, op, weight) in &layers {
        let w = constant(&mut g, &format!("{name}.w"), weight);
        last = v(layer(&mut g, name, op.clone(), &[last, v(w)], 1));
    }
    // Then the other kernels that take pooled outputs: an activation, a binary op, Concat.
    let relu = layer(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[last], 1);
    let add = layer(
        &mut g,
        "add",
        Op::Binary(BinaryOp::Add),
        &[v(relu), last],
        1,
    );
    let cat = layer(&mut g, "cat", Op::Concat { axis: 1 }, &[v(add), v(relu)], 1);
    g.outputs.push(GraphOutput {
        name: "y".into(),
        value: v(cat),
    });

    let plan = prepare(&g, &Device::Cpu, &PrepareOptions::default()).unwrap();
    let inputs = [rng.tensor(&[1, 8, 12, 10]), rng.tensor(&[1, 8, 12, 10])];
    let one = |op: Op, ins: &[&Tensor]| {
        let args: Vec<Arg> = ins.iter().map(|&t| Arg::Input(t.clone())).collect();
        run_temblor(op, &args, 1).remove(0)
    };
    let mut state = plan.new_state();
    for x in inputs.iter().cycle().take(5) {
        let got = plan
            .run(&mut state, &[("x".to_string(), x.clone())])
            .unwrap();
        let convs = layers.iter().fold(x.clone(), |t, (_, op, w)| {
            let args = [Arg::Input(t), Arg::Const(w.clone())];
            run_temblor(op.clone(), &args, 1).remove(0)
        });
        let r = one(Op::Unary(UnaryOp::Relu), &[&convs]);
        let a = one(Op::Binary(BinaryOp::Add), &[&r, &convs]);
        assert_eq!(got[0].1, one(Op::Concat { axis: 1 }, &[&a, &r]));
    }
}

/// Input `x [N, 8, 12, 10]`, a 3x3 GEMM convolution, Relu, a depthwise convolution: kernels
/// that take pooled buffers and split their work over threads.
fn conv_chain(rng: &mut Rng) -> Graph {
    let conv = |group: usize| Op::Conv(same_conv(3, group));
    let mut g = Graph::new("chain");
    let dims = vec![
        Dim::Symbol("N".into()),
        Dim::Known(8),
        Dim::Known(12),
        Dim::Known(10),
    ];
    let xi = input(&mut g, "x", DType::F32, dims);
    let w1 = constant(&mut g, "w1", &rng.tensor(&[16, 8, 3, 3]));
    let w2 = constant(&mut g, "w2", &rng.tensor(&[16, 1, 3, 3]));
    let c1 = layer(&mut g, "gemm", conv(1), &[v(xi), v(w1)], 1);
    let r = layer(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[v(c1)], 1);
    let c2 = layer(&mut g, "depthwise", conv(16), &[v(r), v(w2)], 1);
    g.outputs.push(GraphOutput {
        name: "y".into(),
        value: v(c2),
    });
    g
}

#[test]
fn threads_share_one_plan_with_states_of_their_own() {
    let mut rng = Rng::new(31);
    let g = conv_chain(&mut rng);
    let plan = prepare(&g, &Device::Cpu, &PrepareOptions::default()).unwrap();
    assert_eq!(plan.device(), Device::Cpu);
    assert!(!plan.isa().is_empty());
    assert_eq!(plan.inputs()[0].name, "x");
    let xs: Vec<Tensor> = (0..4).map(|_| rng.tensor(&[2, 8, 12, 10])).collect();
    let want: Vec<Tensor> = xs
        .iter()
        .map(|x| {
            plan.run_once(&[("x".into(), x.clone())]).unwrap()[0]
                .1
                .clone()
        })
        .collect();
    std::thread::scope(|s| {
        for offset in 0..2 {
            let (plan, xs, want) = (&plan, &xs, &want);
            s.spawn(move || {
                let mut state = plan.new_state();
                for i in (0..12).map(|i| (i + offset) % xs.len()) {
                    let got = plan
                        .run(&mut state, &[("x".into(), xs[i].clone())])
                        .unwrap();
                    assert_eq!(got[0].1, want[i], "input {i}");
                }
            });
        }
    });
}

#[test]
fn spinning_workers_and_thread_counts_change_no_bits() {
    let mut rng = Rng::new(32);
    let g = conv_chain(&mut rng);
    let x = vec![("x".to_string(), rng.tensor(&[1, 8, 12, 10]))];
    let run = |threads: usize, spin: bool| {
        let plan = prepare(
            &g,
            &Device::Cpu,
            &PrepareOptions {
                threads,
                spin,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(plan.threads(), threads);
        let mut state = plan.new_state();
        plan.run(&mut state, &x).unwrap();
        plan.run(&mut state, &x).unwrap().remove(0).1
    };
    let want = run(1, false);
    for (threads, spin) in [(1, true), (2, false), (2, true), (3, true)] {
        assert_eq!(run(threads, spin), want, "{threads} threads, spin {spin}");
    }
}

/// Keeps what an observer is shown.
#[derive(Default)]
struct Seen {
    steps: Vec<(usize, String, Vec<Vec<usize>>)>,
    last: Option<Tensor>,
}

impl Observer for Seen {
    fn step(
        &mut self,
        index: usize,
        step: &StepInfo,
        inputs: &[Option<ValueView>],
        outputs: &[ValueView],
        _: Duration,
    ) -> Result<(), RuntimeError> {
        assert!(inputs.iter().flatten().all(|i| i.dtype() == DType::F32));
        let shapes = outputs.iter().map(|o| o.shape().to_vec()).collect();
        self.steps.push((index, step.node.clone(), shapes));
        self.last = Some(outputs[0].to_host()?.into_owned());
        Ok(())
    }
}

#[test]
fn observers_see_every_step_and_its_values() {
    let mut rng = Rng::new(33);
    let g = conv_chain(&mut rng);
    let plan = prepare(&g, &Device::Cpu, &PrepareOptions::default()).unwrap();
    let x = vec![("x".to_string(), rng.tensor(&[1, 8, 12, 10]))];
    let mut seen = Seen::default();
    let out = plan
        .run_observed(&mut plan.new_state(), &x, &mut seen)
        .unwrap();
    let names: Vec<&str> = plan.steps().iter().map(|s| s.node.as_str()).collect();
    assert_eq!(names, ["gemm", "relu", "depthwise"]);
    for (i, (index, node, shapes)) in seen.steps.iter().enumerate() {
        assert_eq!((*index, node.as_str()), (i, names[i]));
        assert_eq!(shapes, &[vec![1, 16, 12, 10]]);
    }
    assert_eq!(seen.last.as_ref(), Some(&out[0].1));
}

/// A pointwise expansion read only by a depthwise convolution, with an intermediate too large
/// to run whole (10.6 MB): the plan runs both in the depthwise step, which names the expansion
/// among its work, and gives the bits of the two steps that `every_value` keeps.
#[test]
fn an_expansion_runs_inside_its_depthwise_step_unless_every_value_is_kept() {
    let mut rng = Rng::new(34);
    let mut g = Graph::new("expand");
    let xi = input(&mut g, "x", DType::F32, known(&[1, 16, 130, 160]));
    let w1 = constant(&mut g, "w1", &rng.tensor(&[128, 16, 1, 1]));
    let w2 = constant(&mut g, "w2", &rng.tensor(&[128, 1, 3, 3]));
    let mut pointwise = same_conv(1, 1);
    pointwise.activation = Some(temblor_ir::Activation::Relu);
    let e = layer(&mut g, "expand", Op::Conv(pointwise), &[v(xi), v(w1)], 1);
    let d = layer(
        &mut g,
        "depthwise",
        Op::Conv(same_conv(3, 128)),
        &[v(e), v(w2)],
        1,
    );
    g.outputs.push(GraphOutput {
        name: "y".into(),
        value: v(d),
    });
    let x = vec![("x".to_string(), rng.tensor(&[1, 16, 130, 160]))];
    let run = |every_value: bool| {
        let options = PrepareOptions {
            every_value,
            ..Default::default()
        };
        let plan = prepare(&g, &Device::Cpu, &options).unwrap();
        let steps: Vec<(String, Vec<String>)> = plan
            .steps()
            .iter()
            .map(|s| (s.node.clone(), s.fused.clone()))
            .collect();
        let out = plan.run(&mut plan.new_state(), &x).unwrap().remove(0).1;
        (steps, out)
    };
    let (fused, got) = run(false);
    let (apart, want) = run(true);
    assert_eq!(
        fused,
        [("depthwise".to_string(), vec!["expand".to_string()])]
    );
    assert_eq!(
        apart,
        [
            ("expand".to_string(), vec![]),
            ("depthwise".to_string(), vec![])
        ]
    );
    assert_eq!(got, want);
}
