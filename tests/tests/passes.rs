//! The optimizer on a small hand-built graph: the BatchNorm fold and dead-node removal, pinned as
//! parse/optimize views (insta), checked numerically against the unoptimized graph on the CPU
//! runtime, and the driver's records of what each pass changed.

use temblor_ir::{validate, Graph, GraphOutput, NodeId, Op, UnaryOp};
use temblor_passes::{optimize_passes, DeadNodes, Driver, FoldBatchNorm};
use temblor_runtime::{prepare, Device, PrepareOptions, Tensor};
use temblor_tests::builder::{act, count, Builder};
use temblor_tests::{rel_l2, Rng};
use temblor_visualize::{render, View};

/// x -> conv+bn (bias) -> relu -> conv+bn (no bias) -> add(relu) -> y; plus a conv whose output
/// is also a graph output, which must not be folded.
fn sample_graph() -> Graph {
    let mut b = Builder::new("sample", 0x9E3779B97F4A7C15);
    let x = b.node("x", Op::Input { index: 0 }, act(3), &[]);
    b.g.inputs.push(x.node);
    let bn1 = b.conv_bn("block1", x, 3, 4, true);
    let relu = b.node("relu", Op::Unary(UnaryOp::Relu), act(4), &[bn1]);
    let bn2 = b.conv_bn("block2", relu, 4, 4, false);
    let y = b.node(
        "add",
        Op::Binary(temblor_ir::BinaryOp::Add),
        act(4),
        &[bn2, relu],
    );
    let bn3 = b.conv_bn("side", relu, 4, 2, true);
    let side_conv = b.g.input(bn3.node, 0).unwrap();
    b.g.outputs = vec![
        GraphOutput {
            name: "y".into(),
            value: y,
        },
        GraphOutput {
            name: "side".into(),
            value: bn3,
        },
        GraphOutput {
            name: "side_conv".into(),
            value: side_conv,
        },
    ];
    validate(&b.g).expect("sample graph is valid");
    b.g
}

fn run(g: &Graph, x: &[f32]) -> Vec<(String, Tensor)> {
    let plan = prepare(g, &Device::Cpu, &PrepareOptions::default()).expect("plan");
    plan.run_once(&[("x".into(), Tensor::f32(vec![1, 3, 8, 8], x.to_vec()))])
        .expect("run")
}

#[test]
fn views_before_and_after_the_batchnorm_fold() {
    let parse = sample_graph();
    let mut optimized = parse.clone();
    Driver::new(optimize_passes()).run(&mut optimized).unwrap();
    insta::assert_snapshot!("sample_parse", render(&parse, View::Parse));
    insta::assert_snapshot!("sample_optimize", render(&optimized, View::Optimize));
}

/// The fold and the sweep without the later fusions, which would absorb the folded convs.
fn fold_only() -> Driver {
    Driver::new(vec![Box::new(FoldBatchNorm), Box::new(DeadNodes)])
}

#[test]
fn fold_keeps_every_output_and_skips_shared_convs() {
    let parse = sample_graph();
    let mut optimized = parse.clone();
    fold_only().run(&mut optimized).unwrap();
    assert_eq!(count(&parse, "BatchNorm"), 3);
    // block1 and block2 fold; side's conv output is also a graph output, so its BN stays.
    assert_eq!(count(&optimized, "BatchNorm"), 1);
    assert_eq!(optimized.layer_count(), parse.layer_count() - 2);

    let x = Rng(7).values(3 * 8 * 8);
    let (before, after) = (run(&parse, &x), run(&optimized, &x));
    assert_eq!(before.len(), after.len());
    for ((name_a, a), (name_b, b)) in after.iter().zip(&before) {
        assert_eq!(name_a, name_b);
        assert_eq!(a.shape, b.shape);
        let err = rel_l2(a.as_f32().unwrap(), b.as_f32().unwrap());
        assert!(err < 1e-6, "{name_a}: relative L2 {err:e}");
    }
}

#[test]
fn folded_conv_records_its_provenance() {
    let mut g = sample_graph();
    fold_only().run(&mut g).unwrap();
    let folded: Vec<NodeId> = g
        .node_ids()
        .filter(|&id| g.node(id).provenance.made_by.as_deref() == Some("fold_batchnorm"))
        .filter(|&id| matches!(g.node(id).op, Op::Conv(_)))
        .collect();
    assert_eq!(folded.len(), 2);
    for id in folded {
        let names: Vec<&str> = g
            .node(id)
            .provenance
            .origins
            .iter()
            .map(|&o| g.origin(o).unwrap().node_name.as_str())
            .collect();
        let prefix = names[0].split('.').next().unwrap();
        assert_eq!(names, [format!("{prefix}.conv"), format!("{prefix}.bn")]);
    }
}

#[test]
fn driver_runs_to_a_fixed_point_and_records_each_pass() {
    let mut g = sample_graph();
    let records = fold_only().run(&mut g).unwrap();
    let summary: Vec<(&str, usize, usize)> = records
        .iter()
        .map(|r| (r.pass, r.round, r.applied))
        .collect();
    // Round 1: two folds, then the two convs' and BNs' now-unused constants (block1: w, b and
    // four BN params; block2: w and four) are swept. Round 2 changes nothing: the fixed point.
    assert_eq!(
        summary,
        [
            ("fold_batchnorm", 1, 2),
            ("dead_nodes", 1, 11),
            ("fold_batchnorm", 2, 0),
            ("dead_nodes", 2, 0)
        ]
    );
    let last = records.last().unwrap();
    assert_eq!(last.nodes_before, last.nodes_after);
}

#[test]
fn step_limit_stops_after_one_rewrite_in_the_middle_of_a_pass() {
    let mut g = sample_graph();
    let records = Driver::new(optimize_passes())
        .with_step_limit(Some(1))
        .run(&mut g)
        .unwrap();
    // The canonicalization passes before the fold find nothing here and apply nothing; the
    // fold, which would apply twice, stops after its first rewrite and is the last to run.
    assert_eq!(records.iter().map(|r| r.applied).sum::<usize>(), 1);
    assert_eq!(records.last().unwrap().pass, "fold_batchnorm");
    assert_eq!(count(&g, "BatchNorm"), 2);
    // One conv+bn became a conv and two new constants; the old constants are still there,
    // unswept.
    assert_eq!(g.node_count(), sample_graph().node_count() + 1);
}

#[test]
fn step_limits_count_rewrites_across_passes() {
    let all = Driver::new(optimize_passes())
        .run(&mut sample_graph())
        .unwrap();
    let total: usize = all.iter().map(|r| r.applied).sum();
    for limit in [2, 5, total - 1] {
        let records = Driver::new(optimize_passes())
            .with_step_limit(Some(limit))
            .run(&mut sample_graph())
            .unwrap();
        assert_eq!(records.iter().map(|r| r.applied).sum::<usize>(), limit);
    }
}
