//! The two-stage detector's proposal kernels against ops_lib's: generate_proposals.cuh's decode
//! (with the harness ranking the anchors and running nms.cuh, as the GPU path's host side
//! does) against generate_proposals_v2, and distribute_fpn.cuh's levels against
//! distribute_fpn_proposals.

use super::data::{f32_data, i32_data, tied_scores, uniform};
use super::harness::{assert_matches, push, Harness};
use std::fmt::Write as _;
use temblor_ir::{DistributeFpnAttrs, GenerateProposalsAttrs};
use temblor_ops_lib::{LibOp, LibSlice, LibView};
use temblor_tests::Rng;

/// Anchors `[h, w, a, 4]` of a stride-16 map: three sizes and aspect ratios per cell.
fn anchor_grid(h: usize, w: usize, a: usize) -> Vec<f32> {
    let mut anchors = Vec::with_capacity(h * w * a * 4);
    for y in 0..h {
        for x in 0..w {
            let (cx, cy) = ((x as f32 + 0.5) * 16.0, (y as f32 + 0.5) * 16.0);
            for k in 0..a {
                let side = 16.0 * (1 << k) as f32;
                let (half_w, half_h) = (side * [0.5, 0.7, 0.35][k % 3], side * 0.5);
                anchors.extend([cx - half_w, cy - half_h, cx + half_w, cy + half_h]);
            }
        }
    }
    anchors
}

#[test]
fn generate_proposals_matches_the_cpu_kernel() {
    let harness = Harness::shared();
    let (n, a, h, w) = (3, 3, 6, 8);
    let count = a * h * w;
    let mut rng = Rng(0xBB67_AE85_84CA_A73B);
    let anchors = anchor_grid(h, w, a);
    let variances = uniform(&mut rng, count * 4, 0.5, 1.5);
    // Images of (height, width): one about the 96x128 map, so that boxes are clipped; one
    // large enough that the far corners of boxes grown to the clamp of the log-sizes stay
    // inside it; a 4x4 one, whose boxes clipped to it are 4 wide (min_size exactly in the last
    // case, under it in the first, which leaves the image one zero proposal).
    let im_shape = vec![100.0, 120.0, 1200.0, 1500.0, 4.0, 4.0];
    // (pixel_offset, pre_nms_topN, post_nms_topN, nms_thresh, min_size): top-k before and
    // after NMS; every anchor and no cut on normalized boxes; NMS skipped.
    for (pixel_offset, pre_nms_top_n, post_nms_top_n, nms_thresh, min_size) in [
        (true, 100, 30, 0.5, 6.0),
        (false, 0, 0, 0.7, 10.0),
        (true, 50, 0, 0.0, 4.0),
    ] {
        let scores = tied_scores(&mut rng, n * count);
        // Deltas up to 8 on every 13th, so that some log-sizes hit the clamp at log(1000/16).
        let mut deltas = uniform(&mut rng, n * 4 * count, -1.5, 1.5);
        deltas.iter_mut().step_by(13).for_each(|d| *d *= 5.5);
        let attrs = GenerateProposalsAttrs {
            pre_nms_top_n,
            post_nms_top_n,
            nms_thresh,
            min_size,
            eta: 1.0,
            pixel_offset,
        };
        let inputs = [
            Some(LibView {
                dims: &[n, a, h, w],
                data: LibSlice::F32(&scores),
            }),
            Some(LibView {
                dims: &[n, 4 * a, h, w],
                data: LibSlice::F32(&deltas),
            }),
            Some(LibView {
                dims: &[n, 2],
                data: LibSlice::F32(&im_shape),
            }),
            Some(LibView {
                dims: &[h, w, a, 4],
                data: LibSlice::F32(&anchors),
            }),
            Some(LibView {
                dims: &[h, w, a, 4],
                data: LibSlice::F32(&variances),
            }),
        ];
        let out = temblor_ops_lib::run(&LibOp::GenerateProposals(attrs.clone()), &inputs).unwrap();
        let (rois, probs, nums) = (
            f32_data(&out[0].data),
            f32_data(&out[1].data),
            i32_data(&out[2].data),
        );

        let mut cmd = format!(
            "generate_proposals {n} {a} {h} {w} {pre_nms_top_n} {post_nms_top_n} {nms_thresh} \
             {min_size} {}",
            u8::from(pixel_offset)
        );
        for values in [&scores, &deltas, &im_shape, &anchors, &variances] {
            push(&mut cmd, values);
        }
        let got = harness.run(&cmd);
        assert_eq!(got.len(), n);
        let mut first = 0;
        for (image, (line, &num)) in got.iter().zip(nums).enumerate() {
            let num = num as usize;
            let want: Vec<f32> = (first..first + num)
                .flat_map(|r| {
                    let mut row = rois[r * 4..r * 4 + 4].to_vec();
                    row.push(probs[r]);
                    row
                })
                .collect();
            first += num;
            let what = format!("pixel_offset={pixel_offset} nms_thresh={nms_thresh} image {image}");
            assert_matches(&what, line, &want);
        }
        let pre = usize::try_from(pre_nms_top_n)
            .ok()
            .filter(|&k| k > 0)
            .unwrap_or(count);
        assert!(
            nums[0] > 1 && (nums[0] as usize) < pre,
            "pixel_offset={pixel_offset}: the case must both keep and drop proposals"
        );
    }
}

#[test]
fn distribute_fpn_matches_the_cpu_kernel() {
    let harness = Harness::shared();
    let mut rng = Rng(0x3C6E_F372_FE94_F82B);
    // Boundaries: squares of refer_scale (224, level 4) and a pixel under it, half and twice
    // that, an inverted box (no area: the lowest level), one far past the highest level.
    let mut rois = vec![
        10.0, 10.0, 234.0, 234.0, //
        0.0, 0.0, 223.0, 223.0, //
        5.0, 7.0, 117.0, 119.0, //
        0.0, 0.0, 448.0, 448.0, //
        50.0, 50.0, 20.0, 80.0, //
        0.0, 0.0, 3000.0, 2000.0, //
    ];
    // Scales from 4 to 1200 pixels, log-uniform, with aspect ratios from 1:3 to 3:1.
    for _ in 0..60 {
        let v = uniform(&mut rng, 4, 0.0, 1.0);
        let scale = 4.0 * 300f32.powf(v[0]);
        let aspect = 3f32.powf(2.0 * v[1] - 1.0);
        let (bw, bh) = (scale * aspect.sqrt(), scale / aspect.sqrt());
        let (x, y) = (v[2] * 500.0, v[3] * 500.0);
        rois.extend([x, y, x + bw, y + bh]);
    }
    let regions = rois.len() / 4;
    for pixel_offset in [false, true] {
        let attrs = DistributeFpnAttrs {
            min_level: 2,
            max_level: 5,
            refer_level: 4,
            refer_scale: 224,
            pixel_offset,
        };
        let levels = attrs.num_levels();
        let inputs = [Some(LibView {
            dims: &[regions, 4],
            data: LibSlice::F32(&rois),
        })];
        let out =
            temblor_ops_lib::run(&LibOp::DistributeFpnProposals(attrs.clone()), &inputs).unwrap();
        // RoI r lands at restore[r] of the levels' RoIs concatenated: its level is the one
        // whose span holds that position.
        let ends: Vec<usize> = out[..levels]
            .iter()
            .scan(0, |end, level| {
                *end += level.dims[0];
                Some(*end)
            })
            .collect();
        let want: Vec<usize> = i32_data(&out[2 * levels].data)
            .iter()
            .map(|&at| ends.iter().position(|&end| (at as usize) < end).unwrap())
            .collect();

        let mut cmd = String::new();
        write!(
            cmd,
            "distribute_fpn {} {} {} {} {} {regions}",
            attrs.min_level,
            attrs.max_level,
            attrs.refer_level,
            attrs.refer_scale,
            u8::from(pixel_offset)
        )
        .unwrap();
        push(&mut cmd, &rois);
        let got: Vec<usize> = harness.run(&cmd)[0].iter().map(|&l| l as usize).collect();
        assert_eq!(got, want, "pixel_offset={pixel_offset}");
        assert!(
            (0..levels).all(|l| want.contains(&l)),
            "pixel_offset={pixel_offset}: every level must be used"
        );
        // 224 pixels wide is level 4, and so is 223 with the pixel offset.
        let square = if pixel_offset { [2, 2] } else { [2, 1] };
        assert_eq!(
            want[..2],
            square,
            "pixel_offset={pixel_offset}: the refer_scale squares"
        );
    }
}
