//! The sampling kernels of the ONNX ops the CPU runtime runs, against its kernels through
//! `temblor_runtime::run_op`: deform_sample.cuh against DeformSample (DeformConv's
//! deformable im2col) and grid_sample.cuh against GridSample.

use super::data::{run_runtime, uniform};
use super::harness::{assert_matches, push, Harness};
use temblor_ir::{DeformConvAttrs, GridSampleMode, GridSamplePadding, Op};
use temblor_runtime::Tensor;
use temblor_tests::Rng;

/// Offsets in [-2.5, 2.5), every third on a half-pixel grid so that samples land exactly on
/// pixels and on the map's edges, and every eleventh 4x as far, so that whole samples fall
/// outside.
fn deform_offsets(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut offsets = uniform(rng, n, -2.5, 2.5);
    for (i, v) in offsets.iter_mut().enumerate() {
        if i % 3 == 0 {
            *v = (*v * 2.0).round() / 2.0;
        }
        if i % 11 == 0 {
            *v *= 4.0;
        }
    }
    offsets
}

#[test]
fn deform_sample_matches_the_runtime() {
    let harness = Harness::shared();
    let (n, c, h, w) = (2, 4, 7, 9);
    let mut rng = Rng(0xA54F_F53A_5F1D_36F1);
    let x = uniform(&mut rng, n * c * h * w, -2.0, 2.0);
    // (strides, dilations, pads [top, left, bottom, right], offset groups, mask): a 3x3 "same"
    // convolution with a mask; strided, dilated and unevenly padded in two offset groups.
    for (stride, dilation, pads, offset_group, with_mask) in [
        (1, 1, [1, 1, 1, 1], 1, true),
        (2, 2, [2, 1, 0, 2], 2, false),
    ] {
        let attrs = DeformConvAttrs {
            kernel: [3, 3],
            strides: [stride; 2],
            dilations: [dilation; 2],
            pads,
            group: 1,
            offset_group,
        };
        let extent =
            |len: usize, p0: usize, p1: usize| (len + p0 + p1 - 2 * dilation - 1) / stride + 1;
        let (oh, ow) = (extent(h, pads[0], pads[2]), extent(w, pads[1], pads[3]));
        let taps = n * offset_group * 9 * oh * ow;
        let offset = deform_offsets(&mut rng, 2 * taps);
        let mask = uniform(&mut rng, taps, 0.0, 1.0);
        let x_t = Tensor::f32(vec![n, c, h, w], x.clone());
        let offset_t = Tensor::f32(vec![n, offset_group * 18, oh, ow], offset.clone());
        let mask_t = Tensor::f32(vec![n, offset_group * 9, oh, ow], mask.clone());
        let (_, want) = run_runtime(
            &Op::DeformSample(attrs),
            &[Some(&x_t), Some(&offset_t), with_mask.then_some(&mask_t)],
        );

        let mut cmd = format!(
            "deform_sample {n} {c} {h} {w} 3 3 {stride} {stride} {} {} {dilation} {dilation} \
             {offset_group} {oh} {ow} {}",
            pads[0],
            pads[1],
            u8::from(with_mask)
        );
        push(&mut cmd, &x);
        push(&mut cmd, &offset);
        if with_mask {
            push(&mut cmd, &mask);
        }
        let got = harness.run(&cmd);
        let what = format!("stride={stride} offset_group={offset_group} mask={with_mask}");
        assert_matches(&what, &got[0], &want);
        let zeros = want.iter().filter(|&&v| v == 0.0).count();
        assert!(
            zeros > 0 && zeros < want.len() / 2,
            "{what}: the case must sample both inside and outside the map"
        );
    }
}

#[test]
fn grid_sample_matches_the_runtime() {
    let harness = Harness::shared();
    let (n, c, h, w, oh, ow) = (2, 3, 5, 7, 4, 6);
    let mut rng = Rng(0x510E_527F_ADE6_82D1);
    let x = uniform(&mut rng, n * c * h * w, -2.0, 2.0);
    // Grid points in [-1.6, 1.6), partly and wholly past the edges on every side (wholly is a
    // pixel past the edge pixels' centres: past 1 + 2 / (size - 1) with align_corners, 1.5 on
    // the 5-pixel axis), with the edges and the centre exactly among them.
    let mut grid = uniform(&mut rng, n * oh * ow * 2, -1.6, 1.6);
    for (i, v) in grid.iter_mut().enumerate().step_by(7) {
        *v = [-1.0, 1.0, 0.0][i % 3];
    }
    let x_t = Tensor::f32(vec![n, c, h, w], x.clone());
    let grid_t = Tensor::f32(vec![n, oh, ow, 2], grid.clone());
    for align_corners in [false, true] {
        let op = Op::GridSample {
            mode: GridSampleMode::Linear,
            padding: GridSamplePadding::Zeros,
            align_corners,
        };
        let (_, want) = run_runtime(&op, &[Some(&x_t), Some(&grid_t)]);
        let mut cmd = format!(
            "grid_sample {n} {c} {h} {w} {oh} {ow} {}",
            u8::from(align_corners)
        );
        push(&mut cmd, &x);
        push(&mut cmd, &grid);
        let got = harness.run(&cmd);
        assert_matches(&format!("align_corners={align_corners}"), &got[0], &want);
        assert!(
            want.contains(&0.0),
            "align_corners={align_corners}: the case must sample outside the map"
        );
    }
}
