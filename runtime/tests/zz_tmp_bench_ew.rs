mod common;
use common::{Arg, Rng};
use std::time::Instant;
use temblor_ir::{BinaryOp, Op, UnaryOp};
use temblor_runtime::CpuPlan;

fn bench(name: &str, op: Op, args: Vec<Arg>) {
    let g = common::single_op_graph(op, &args, 1);
    let feeds: Vec<(String, temblor_runtime::Tensor)> = args.iter().enumerate().filter_map(|(i, a)| match a { Arg::Input(t) => Some((format!("in{i}"), t.clone())), _ => None }).collect();
    let plan = CpuPlan::new(&g).unwrap().with_threads(1).unwrap();
    plan.run(&feeds).unwrap();
    let n = 50;
    let t = Instant::now();
    for _ in 0..n { plan.run(&feeds).unwrap(); }
    println!("{name}: {:.3} ms", t.elapsed().as_secs_f64() * 1000.0 / n as f64);
}

#[test]
fn bench_elementwise() {
    let mut rng = Rng::new(1);
    let x = rng.tensor(&[1, 64, 80, 80]);
    let y = rng.tensor(&[1, 64, 80, 80]);
    let c = rng.tensor(&[1, 64, 1, 1]);
    bench("add same", Op::Binary(BinaryOp::Add), vec![Arg::Input(x.clone()), Arg::Input(y.clone())]);
    bench("mul chan", Op::Binary(BinaryOp::Mul), vec![Arg::Input(x.clone()), Arg::Input(c.clone())]);
    bench("relu", Op::Unary(UnaryOp::Relu), vec![Arg::Input(x.clone())]);
    bench("sigmoid", Op::Unary(UnaryOp::Sigmoid), vec![Arg::Input(x.clone())]);
    bench("hardswish", Op::Unary(UnaryOp::HardSwish), vec![Arg::Input(x.clone())]);
    bench("clip", Op::Clip { min: 0.0, max: 6.0 }, vec![Arg::Input(x.clone())]);
    bench("gelu", Op::Gelu { tanh: false }, vec![Arg::Input(x.clone())]);
    bench("identity", Op::Unary(UnaryOp::Identity), vec![Arg::Input(x.clone())]);
}
