//! Transformer fully connected layers in one plan step: a MatMul with a constant weight, its
//! bias Add, then GELU, a per-column scale and a residual Add, against the same layers run as
//! steps of their own (`every_value`).

mod common;

use common::graph::{constant, info, input, known, v};
use common::Rng;
use temblor_ir::{BinaryOp, DType, Graph, GraphOutput, Node, NodeId, Op, ValueRef};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor};

/// A node whose one output has the static shape `dims`, as shape inference leaves it.
fn layer(g: &mut Graph, name: &str, op: Op, ins: &[ValueRef], dims: &[usize]) -> NodeId {
    let id = g.add_node(Node::new(
        name,
        op,
        vec![info(&format!("{name}:0"), DType::F32, known(dims))],
    ));
    for (port, v) in ins.iter().enumerate() {
        g.connect(*v, id, port);
    }
    id
}

/// Three chains over 70 tokens (not a multiple of the kernel's 8 rows), widths that end in a
/// ragged panel, on every thread the machine has:
/// - `fc1`: bias and exact GELU, read by `fc2`;
/// - `fc2`: bias, a layer scale and the residual `x` (added on the left);
/// - `q`: bias and a scalar scale; `g`: bias, tanh GELU and a residual `r` added on the
///   right;
/// - `up`: a bias of rank 3 on a product of rank 2, which stays two steps.
///
/// The fused plan runs each chain in its last node's step, which names the others, and
/// every output has the bits of the unfused plan.
#[test]
fn fully_connected_chains_give_the_bits_of_their_layers() {
    let (t, d, h) = (70, 40, 100);
    let mut rng = Rng::new(41);
    let mut g = Graph::new("fully_connected");
    let x = input(&mut g, "x", DType::F32, known(&[1, t, d]));
    let r = input(&mut g, "r", DType::F32, known(&[1, t, 64]));
    let mut weight = |g: &mut Graph, name: &str, dims: &[usize]| {
        let values = rng.tensor(dims);
        constant(g, name, &values)
    };
    let (w1, b1) = (weight(&mut g, "w1", &[d, h]), weight(&mut g, "b1", &[h]));
    let (w2, b2) = (weight(&mut g, "w2", &[h, d]), weight(&mut g, "b2", &[d]));
    let gamma = weight(&mut g, "gamma", &[d]);
    let (wq, bq) = (weight(&mut g, "wq", &[d, 24]), weight(&mut g, "bq", &[24]));
    let (wg, bg) = (weight(&mut g, "wg", &[d, 64]), weight(&mut g, "bg", &[64]));
    let eighth = constant(&mut g, "eighth", &Tensor::f32(vec![], vec![0.125]));
    let add = Op::Binary(BinaryOp::Add);
    let mul = Op::Binary(BinaryOp::Mul);

    let m1 = layer(&mut g, "fc1", Op::MatMul, &[v(x), v(w1)], &[1, t, h]);
    let a1 = layer(&mut g, "fc1/add", add.clone(), &[v(m1), v(b1)], &[1, t, h]);
    let gelu = Op::Gelu { tanh: false };
    let g1 = layer(&mut g, "fc1/gelu", gelu, &[v(a1)], &[1, t, h]);
    let m2 = layer(&mut g, "fc2", Op::MatMul, &[v(g1), v(w2)], &[1, t, d]);
    let a2 = layer(&mut g, "fc2/add", add.clone(), &[v(m2), v(b2)], &[1, t, d]);
    let s2 = layer(
        &mut g,
        "fc2/scale",
        mul.clone(),
        &[v(a2), v(gamma)],
        &[1, t, d],
    );
    let y2 = layer(
        &mut g,
        "fc2/residual",
        add.clone(),
        &[v(x), v(s2)],
        &[1, t, d],
    );
    let mq = layer(&mut g, "q", Op::MatMul, &[v(x), v(wq)], &[1, t, 24]);
    let aq = layer(&mut g, "q/add", add.clone(), &[v(mq), v(bq)], &[1, t, 24]);
    let yq = layer(&mut g, "q/scale", mul, &[v(aq), v(eighth)], &[1, t, 24]);
    let mg = layer(&mut g, "g", Op::MatMul, &[v(x), v(wg)], &[1, t, 64]);
    let ag = layer(&mut g, "g/add", add.clone(), &[v(mg), v(bg)], &[1, t, 64]);
    let tanh = Op::Gelu { tanh: true };
    let gg = layer(&mut g, "g/gelu", tanh, &[v(ag)], &[1, t, 64]);
    let yg = layer(
        &mut g,
        "g/residual",
        add.clone(),
        &[v(gg), v(r)],
        &[1, t, 64],
    );
    // A bias of higher rank than its product broadcasts the sum up a rank: left as it is.
    let x2 = input(&mut g, "x2", DType::F32, known(&[t, d]));
    let w3 = weight(&mut g, "w3", &[d, 24]);
    let b3 = weight(&mut g, "b3", &[1, 1, 24]);
    let m3 = layer(&mut g, "up", Op::MatMul, &[v(x2), v(w3)], &[t, 24]);
    let y3 = layer(&mut g, "up/add", add, &[v(m3), v(b3)], &[1, t, 24]);
    for (name, node) in [("y2", y2), ("yq", yq), ("yg", yg), ("y3", y3)] {
        g.outputs.push(GraphOutput {
            name: name.into(),
            value: v(node),
        });
    }

    let inputs = vec![
        ("x".to_string(), rng.tensor(&[1, t, d])),
        ("r".to_string(), rng.tensor(&[1, t, 64])),
        ("x2".to_string(), rng.tensor(&[t, d])),
    ];
    let run = |every_value: bool| {
        let options = PrepareOptions {
            every_value,
            ..Default::default()
        };
        let plan = prepare(&g, &Device::Cpu, &options).unwrap();
        let fused: Vec<(String, Vec<String>)> = plan
            .steps()
            .iter()
            .filter(|s| !s.fused.is_empty())
            .map(|s| (s.node.clone(), s.fused.clone()))
            .collect();
        let out = plan.run(&mut plan.new_state(), &inputs).unwrap();
        (fused, out)
    };
    let (fused, got) = run(false);
    let (apart, want) = run(true);
    assert!(apart.is_empty());
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let expected = vec![
        ("fc1/gelu".to_string(), names(&["fc1", "fc1/add"])),
        (
            "fc2/residual".to_string(),
            names(&["fc2", "fc2/add", "fc2/scale"]),
        ),
        ("q/scale".to_string(), names(&["q", "q/add"])),
        ("g/residual".to_string(), names(&["g", "g/add", "g/gelu"])),
    ];
    if packed_kernel() {
        assert_eq!(fused, expected);
    } else {
        eprintln!("no fusion to check: this machine has no AVX-512, which the packed kernel needs");
    }
    assert_eq!(got.len(), 4);
    for ((name, got), (_, want)) in got.iter().zip(&want) {
        let (a, b) = (got.as_f32().unwrap(), want.as_f32().unwrap());
        assert_eq!(got.shape, want.shape, "{name}");
        let differ = a
            .iter()
            .zip(b)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(differ, 0, "{name}: {differ} of {} elements differ", a.len());
    }
}

fn packed_kernel() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    false
}
