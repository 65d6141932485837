//! roi_align.cuh against ops_lib's RoIAlign.

use super::data::uniform;
use super::harness::{assert_matches, push, Harness};
use temblor_ir::RoiAlignAttrs;
use temblor_ops_lib::detection::roi_align;
use temblor_tests::Rng;

#[test]
fn roi_align_matches_the_cpu_kernel() {
    let harness = Harness::shared();
    let (n, c, h, w) = (2, 3, 9, 11);
    let mut rng = Rng(0xBF58_476D_1CE4_E5B9);
    let x = uniform(&mut rng, n * c * h * w, -2.0, 2.0);
    // Regions in input coordinates (spatial_scale maps them onto the 9x11 map): inside, partly
    // outside on every side, flipped, and smaller than a cell.
    let mut rois = vec![
        4.0, 4.0, 30.0, 20.0, //
        -10.0, -6.0, 12.0, 14.0, //
        30.0, 20.0, 60.0, 50.0, //
        25.0, 18.0, 5.0, 3.0, //
        8.3, 9.1, 9.0, 9.5, //
    ];
    for _ in 0..6 {
        let corner = uniform(&mut rng, 2, -8.0, 40.0);
        let size = uniform(&mut rng, 2, 1.0, 30.0);
        rois.extend([
            corner[0],
            corner[1],
            corner[0] + size[0],
            corner[1] + size[1],
        ]);
    }
    let regions = rois.len() / 4;
    let batch: Vec<usize> = (0..regions).map(|r| r % n).collect();
    let batch_i32: Vec<i32> = batch.iter().map(|&b| b as i32).collect();
    for (max, sampling_ratio, spatial_scale, half_pixel) in [
        (false, 0, 0.25, true),
        (true, 2, 0.25, false),
        (false, 2, 0.5, false),
        (true, 0, 0.5, true),
    ] {
        let attrs = RoiAlignAttrs {
            max,
            output_height: 3,
            output_width: 4,
            sampling_ratio,
            spatial_scale,
            half_pixel,
        };
        let want = roi_align(&attrs, &x, [n, c, h, w], &rois, &batch).unwrap();
        assert!(want.iter().any(|&v| v != 0.0));
        let mut cmd = format!(
            "roi_align {n} {c} {h} {w} {} {} {sampling_ratio} {spatial_scale} {} {} {regions}",
            attrs.output_height,
            attrs.output_width,
            u8::from(half_pixel),
            u8::from(max)
        );
        push(&mut cmd, &x);
        push(&mut cmd, &rois);
        push(&mut cmd, &batch_i32);
        let got = harness.run(&cmd);
        let what = format!("max={max} sampling_ratio={sampling_ratio} half_pixel={half_pixel}");
        assert_matches(&what, &got[0], &want);
    }
}
