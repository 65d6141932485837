//! Views (Reshape, Flatten, Squeeze, Unsqueeze) in a CPU plan's run, which take their input's
//! buffer where they are its last reader.

mod common;

use common::graph::{info, input, known, layer, v};
use common::{run_temblor, Arg, Rng};
use std::time::Duration;
use temblor_ir::{DType, Graph, GraphOutput, Node, Op, UnaryOp};
use temblor_runtime::{
    prepare, Device, Observer, PrepareOptions, RuntimeError, StepInfo, Tensor, ValueView,
};

/// Views (Reshape, Flatten, Squeeze, Unsqueeze) take their input's buffer where no later step
/// reads it. Here `r` is read by a Reshape and then by a Neg, and `s` by a Flatten only; every
/// output must be what the ops give one at a time, run after run, unobserved and timed.
#[test]
fn views_take_their_input_only_from_its_last_reader() {
    let mut rng = Rng::new(23);
    let x = rng.tensor(&[1, 4, 6, 6]);
    let mut g = Graph::new("views");
    let xi = input(&mut g, "x", DType::F32, known(&x.shape));
    let target = g
        .weights
        .add(temblor_ir::Weight::from_i64(vec![3], &[1, 4, 36]));
    let ti = g.add_node(Node::new(
        "target",
        Op::Constant { weight: target },
        vec![info("target", DType::I64, known(&[3]))],
    ));
    let r = layer(&mut g, "r", Op::Unary(UnaryOp::Relu), &[v(xi)], 1);
    let reshaped = Op::Reshape { allowzero: false };
    let a = layer(&mut g, "a", reshaped, &[v(r), v(ti)], 1);
    let b = layer(&mut g, "b", Op::Unary(UnaryOp::Neg), &[v(r)], 1);
    let s = layer(&mut g, "s", Op::Unary(UnaryOp::Abs), &[v(xi)], 1);
    let f = layer(&mut g, "f", Op::Flatten { axis: 2 }, &[v(s)], 1);
    for (name, node) in [("a", a), ("b", b), ("f", f)] {
        g.outputs.push(GraphOutput {
            name: name.into(),
            value: v(node),
        });
    }
    temblor_ir::validate(&g).expect("test graph is valid");
    let plan = prepare(&g, &Device::Cpu, &PrepareOptions::default()).unwrap();
    let names: Vec<&str> = plan.steps().iter().map(|s| s.node.as_str()).collect();
    let reshape_first = names.iter().position(|&n| n == "a") < names.iter().position(|&n| n == "b");
    assert!(
        reshape_first,
        "the Reshape must run before the Neg: {names:?}"
    );
    let relu = &run_temblor(Op::Unary(UnaryOp::Relu), &[Arg::Input(x.clone())], 1)[0];
    let abs = &run_temblor(Op::Unary(UnaryOp::Abs), &[Arg::Input(x.clone())], 1)[0];
    let want = [
        Tensor::f32(vec![1, 4, 36], relu.as_f32().unwrap().to_vec()),
        run_temblor(Op::Unary(UnaryOp::Neg), &[Arg::Input(relu.clone())], 1).remove(0),
        Tensor::f32(vec![4, 36], abs.as_f32().unwrap().to_vec()),
    ];
    let inputs = [("x".to_string(), x)];
    let mut state = plan.new_state();
    for _ in 0..3 {
        let out = plan.run(&mut state, &inputs).unwrap();
        let mut timer = Timer(0);
        let seen = plan.run_observed(&mut state, &inputs, &mut timer).unwrap();
        assert_eq!(timer.0, names.len());
        for ((got, observed), want) in out.iter().zip(&seen).zip(&want) {
            assert_eq!(&got.1, want, "output {}", got.0);
            assert_eq!(&observed.1, want, "output {}, observed", got.0);
        }
    }
}

/// Counts steps and reads no values, as `temblor profile`'s timer.
struct Timer(usize);

impl Observer for Timer {
    fn step(
        &mut self,
        _: usize,
        _: &StepInfo,
        _: &[Option<ValueView>],
        _: &[ValueView],
        _: Duration,
    ) -> Result<(), RuntimeError> {
        self.0 += 1;
        Ok(())
    }

    fn reads_values(&self) -> bool {
        false
    }
}
