//! pool.cuh against the runtime's MaxPool, AveragePool and GlobalAveragePool, bit for bit (see
//! `Cases::assert_bits`): windows with strides, dilations, uneven pads, ceil mode, padding
//! counted and not, a width axis the CPU copies rather than pools, and planes whose size is and
//! is not a multiple of the 8-lane sum's group.

use super::data::{run_runtime, uniform};
use super::harness::{push, Cases, Harness};
use temblor_ir::{AutoPad, Op, PoolAttrs};
use temblor_runtime::Tensor;
use temblor_tests::Rng;

/// (kernel, strides, dilations, pads [top, left, bottom, right], ceil mode)
type Window = ([usize; 2], [usize; 2], [usize; 2], [usize; 4], bool);

/// The usual 2x2 downsampling (the CPU's one-pass path), a "same" 3x3, a dilated strided
/// window with uneven pads, ceil mode's partial windows, a window wider than the padded input's
/// first columns, a unit width window (copied, not pooled), and YOLO's SPPF 5x5.
const WINDOWS: [Window; 7] = [
    ([2, 2], [2, 2], [1, 1], [0, 0, 0, 0], false),
    ([3, 3], [1, 1], [1, 1], [1, 1, 1, 1], false),
    ([3, 5], [2, 3], [2, 1], [2, 0, 1, 3], false),
    ([3, 3], [2, 2], [1, 1], [1, 1, 1, 1], true),
    ([2, 6], [1, 1], [1, 1], [0, 3, 1, 2], false),
    ([3, 1], [2, 1], [1, 1], [1, 0, 1, 0], true),
    ([5, 5], [1, 1], [1, 1], [2, 2, 2, 2], false),
];

#[test]
fn pooling_matches_the_runtime_bit_for_bit() {
    let harness = Harness::shared();
    let (n, c, h, w) = (2, 3, 13, 17);
    let mut x = uniform(&mut Rng(0xBB67_AE85_84CA_A73B), n * c * h * w, -3.0, 3.0);
    // Rows 4 to 7 of the first plane -0, so that sums of -0 tell adding to 0 (+0) from copying
    // (-0); no +0 anywhere, since between +0 and -0 a maximum may pick either.
    x[4 * w..8 * w].fill(-0.0);
    assert!(!x.iter().any(|v| v.to_bits() == 0));
    let xt = Tensor::f32(vec![n, c, h, w], x.clone());
    let mut cases = Cases::default();
    for (kernel, strides, dilations, pads, ceil_mode) in WINDOWS {
        let kinds = [
            ("max_pool", false),
            ("average_pool", false),
            ("average_pool", true),
        ];
        for (name, count_include_pad) in kinds {
            let attrs = PoolAttrs {
                kernel: kernel.to_vec(),
                strides: strides.to_vec(),
                dilations: dilations.to_vec(),
                pads: pads.to_vec(),
                auto_pad: AutoPad::NotSet,
                ceil_mode,
                count_include_pad,
            };
            let op = match name {
                "max_pool" => Op::MaxPool(attrs),
                _ => Op::AveragePool(attrs),
            };
            let (shape, want) = run_runtime(&op, &[Some(&xt)]);
            let mut command = format!("{name} {}", n * c);
            for (axis, input) in [h, w].into_iter().enumerate() {
                command += &format!(
                    " {input} {} {} {} {} {} {}",
                    shape[2 + axis],
                    kernel[axis],
                    strides[axis],
                    dilations[axis],
                    pads[axis],
                    pads[2 + axis]
                );
            }
            command += &format!(" {}", u8::from(count_include_pad));
            push(&mut command, &x);
            let what = format!(
                "{name} kernel {kernel:?} strides {strides:?} dilations {dilations:?} pads \
                 {pads:?} ceil={ceil_mode} count_include_pad={count_include_pad}"
            );
            cases.add(what, &command, want);
        }
    }
    // Planes of 221 values (27 groups of 8 and a rest), 24 (no rest) and 5 (only a rest).
    for shape in [vec![n, c, h, w], vec![1, 4, 4, 6], vec![2, 2, 5, 1]] {
        let (planes, size) = (shape[0] * shape[1], shape[2] * shape[3]);
        let values = uniform(
            &mut Rng(size as u64 * 0x9E37_79B9),
            planes * size,
            -3.0,
            5.0,
        );
        let t = Tensor::f32(shape.clone(), values.clone());
        let (_, want) = run_runtime(&Op::GlobalAveragePool, &[Some(&t)]);
        let mut command = format!("global_average_pool {planes} {size}");
        push(&mut command, &values);
        cases.add(format!("GlobalAveragePool of {shape:?}"), &command, want);
    }
    // A plane whose f64 sum depends on its order: 1 and -1 cancel within lane 0 (elements 0 and
    // 8), so the eight lanes keep the seven 2^-60s that a sum front to back loses to 1.
    let mut plane = vec![0.0f32; 16];
    plane[0] = 1.0;
    plane[8] = -1.0;
    plane[1..8].fill(2f32.powi(-60));
    let t = Tensor::f32(vec![1, 1, 4, 4], plane.clone());
    let (_, want) = run_runtime(&Op::GlobalAveragePool, &[Some(&t)]);
    assert!(want[0] > 0.0, "the CPU's lanes keep the small values");
    let mut command = "global_average_pool 1 16".to_string();
    push(&mut command, &plane);
    cases.add("GlobalAveragePool in lane order".into(), &command, want);
    cases.assert_bits(&harness);
}
