//! Test inputs shared by the families (seeded, so a failure reproduces), and ops_lib's and the
//! CPU runtime's outputs as slices.

use temblor_ir::Op;
use temblor_ops_lib::LibData;
use temblor_runtime::{run_op, Tensor};
use temblor_tests::Rng;

/// The CPU runtime's first output of `op` (float32): its shape and values.
pub(super) fn run_runtime(op: &Op, inputs: &[Option<&Tensor>]) -> (Vec<usize>, Vec<f32>) {
    let out = run_op(op, inputs, 1).expect("the op runs on the CPU runtime");
    let values = out[0].as_f32().expect("a float32 output").to_vec();
    (out[0].shape.clone(), values)
}

/// Values uniform in [lo, hi).
pub(super) fn uniform(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    rng.values(n)
        .into_iter()
        .map(|v| lo + (v + 1.0) / 2.0 * (hi - lo))
        .collect()
}

pub(super) fn f32_data(data: &LibData) -> &[f32] {
    match data {
        LibData::F32(v) => v,
        other => panic!("expected float32, got {other:?}"),
    }
}

pub(super) fn i32_data(data: &LibData) -> &[i32] {
    match data {
        LibData::I32(v) => v,
        other => panic!("expected int32, got {other:?}"),
    }
}

/// `m` boxes `[x1, y1, x2, y2]` in a few overlapping clusters (so NMS suppresses), over a
/// `size`-wide field, with exact duplicates and zero-width boxes among them.
pub(super) fn clustered_boxes(rng: &mut Rng, m: usize, size: f32) -> Vec<f32> {
    let centres = uniform(rng, 12, 0.2 * size, 0.8 * size);
    let mut boxes = Vec::with_capacity(m * 4);
    for i in 0..m {
        if i % 17 == 16 {
            let prev = boxes[boxes.len() - 4..].to_vec();
            boxes.extend(prev);
            continue;
        }
        let k = 2 * (rng.next_u64() % 6) as usize;
        let jitter = uniform(rng, 4, -0.04 * size, 0.04 * size);
        let half = uniform(rng, 2, 0.03 * size, 0.15 * size);
        let (cx, cy) = (centres[k] + jitter[0], centres[k + 1] + jitter[1]);
        let half_w = if i % 23 == 22 { 0.0 } else { half[0] };
        boxes.extend([
            cx - half_w,
            cy - half[1],
            cx + half_w + jitter[2],
            cy + half[1],
        ]);
    }
    boxes
}

/// Scores in [0, 1) on a grid of 1/64, so that equal scores occur and their order is tested.
pub(super) fn tied_scores(rng: &mut Rng, n: usize) -> Vec<f32> {
    uniform(rng, n, 0.0, 1.0)
        .into_iter()
        .map(|s| (s * 64.0).floor() / 64.0)
        .collect()
}
