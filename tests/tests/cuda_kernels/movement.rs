//! movement.cuh's index math against the runtime's Transpose, Slice and Concat: each input
//! element is its own index, so any misplaced element shows, and the moves are compared exactly
//! (see `Cases::assert_bits`).

use super::data::run_runtime;
use super::harness::{push, Cases, Harness};
use temblor_ir::Op;
use temblor_runtime::Tensor;

/// A tensor of `shape` whose elements count up from 0.
fn counting(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::f32(shape.to_vec(), (0..n).map(|i| i as f32).collect())
}

#[test]
fn transpose_matches_the_runtime() {
    let harness = Harness::shared();
    // (shape, perm): NCHW to NHWC and back, the reversal an empty perm means, a swap of the
    // leading axes, and six axes (a space-to-depth's) with a unit axis among them.
    let cases: [(&[usize], &[usize]); 5] = [
        (&[2, 3, 4, 5], &[0, 2, 3, 1]),
        (&[2, 4, 5, 3], &[0, 3, 1, 2]),
        (&[2, 3, 4, 5], &[]),
        (&[3, 2, 4], &[1, 0, 2]),
        (&[2, 1, 3, 2, 2, 3], &[5, 3, 1, 0, 2, 4]),
    ];
    let mut checks = Cases::default();
    for (shape, perm) in cases {
        let x = counting(shape);
        let (_, want) = run_runtime(
            &Op::Transpose {
                perm: perm.to_vec(),
            },
            &[Some(&x)],
        );
        // The launcher resolves an empty perm as shape inference does.
        let resolved: Vec<usize> = match perm {
            [] => (0..shape.len()).rev().collect(),
            p => p.to_vec(),
        };
        let mut command = format!("transpose {}", shape.len());
        push(&mut command, shape);
        push(&mut command, &resolved);
        push(&mut command, x.as_f32().unwrap());
        checks.add(format!("{shape:?} by {perm:?}"), &command, want);
    }
    checks.assert_bits(&harness);
}

/// One of a Slice's integer operands.
type Ints = &'static [i64];

#[test]
fn slice_matches_the_runtime() {
    let harness = Harness::shared();
    let shape = [4usize, 5, 6, 7];
    let x = counting(&shape);
    // (starts, ends, axes, steps): plain ranges, negative indices, bounds past both ends and
    // ONNX's i64 sentinels, negative steps (a reversal), steps past the extent, empty
    // selections (an end before the start, a start past the end), and axes in any order.
    let cases: [(Ints, Ints, Ints, Ints); 8] = [
        (&[1, 0], &[3, 4], &[0, 1], &[1, 1]),
        (&[-3, 2], &[-1, 100], &[2, 3], &[1, 2]),
        (&[i64::MAX, -1], &[i64::MIN, -100], &[1, 3], &[-1, -2]),
        (&[0, 1, 2, 3], &[4, 5, 6, 7], &[0, 1, 2, 3], &[3, 4, 10, 2]),
        (&[3], &[1], &[2], &[1]),
        (&[10], &[i64::MAX], &[1], &[1]),
        (&[-100, 6], &[i64::MAX, 0], &[3, 2], &[3, -4]),
        (&[2, 0], &[0, i64::MAX], &[-4, -1], &[-1, 3]),
    ];
    let mut checks = Cases::default();
    for (starts, ends, axes, steps) in cases {
        let list = |v: &[i64]| Tensor::i64(vec![v.len()], v.to_vec());
        let inputs = [list(starts), list(ends), list(axes), list(steps)];
        let mut args = vec![Some(&x)];
        args.extend(inputs.iter().map(Some));
        let (_, want) = run_runtime(&Op::Slice, &args);
        // The launcher gives every axis its bounds: the whole axis where none are given.
        let rank = shape.len() as i64;
        let mut full: [Vec<i64>; 3] = [vec![0; 4], vec![i64::MAX; 4], vec![1; 4]];
        for (i, &a) in axes.iter().enumerate() {
            let k = a.rem_euclid(rank) as usize;
            full[0][k] = starts[i];
            full[1][k] = ends[i];
            full[2][k] = steps[i];
        }
        let mut command = format!("slice {rank}");
        push(&mut command, &shape);
        for list in &full {
            push(&mut command, list);
        }
        push(&mut command, x.as_f32().unwrap());
        let what = format!("starts {starts:?} ends {ends:?} axes {axes:?} steps {steps:?}");
        checks.add(what, &command, want);
    }
    checks.assert_bits(&harness);
}

#[test]
fn concat_matches_the_runtime() {
    let harness = Harness::shared();
    // (axis, the parts' shapes): YOLO's channel concatenations, the leading axis, the last
    // axis (as -1), and a part of extent 1.
    let cases: [(i64, &[&[usize]]); 4] = [
        (1, &[&[2, 3, 4, 5], &[2, 1, 4, 5], &[2, 6, 4, 5]]),
        (0, &[&[1, 3, 4], &[2, 3, 4]]),
        (-1, &[&[2, 3, 5], &[2, 3, 2], &[2, 3, 1]]),
        (2, &[&[3, 2, 1, 4], &[3, 2, 3, 4]]),
    ];
    let mut checks = Cases::default();
    for (axis, shapes) in cases {
        // Each part counts on from where the one before stopped.
        let mut start = 0.0;
        let parts: Vec<Tensor> = shapes
            .iter()
            .map(|s| {
                let n: usize = s.iter().product();
                let t = Tensor::f32(s.to_vec(), (0..n).map(|i| start + i as f32).collect());
                start += n as f32;
                t
            })
            .collect();
        let args: Vec<_> = parts.iter().map(Some).collect();
        let (_, want) = run_runtime(&Op::Concat { axis }, &args);
        let rank = shapes[0].len();
        let mut command = format!(
            "concat {} {rank} {}",
            axis.rem_euclid(rank as i64),
            shapes.len()
        );
        for s in shapes {
            push(&mut command, s);
        }
        for p in &parts {
            push(&mut command, p.as_f32().unwrap());
        }
        checks.add(format!("axis {axis} of {shapes:?}"), &command, want);
    }
    checks.assert_bits(&harness);
}
