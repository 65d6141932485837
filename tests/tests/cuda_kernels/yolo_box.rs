//! yolo_box.cuh against ops_lib's yolo_box.

use super::data::{f32_data, uniform};
use super::harness::{assert_matches, push, Harness};
use temblor_ir::YoloBoxAttrs;
use temblor_ops_lib::{LibOp, LibSlice, LibView};
use temblor_tests::Rng;

fn yolo_attrs(iou_aware: bool) -> YoloBoxAttrs {
    YoloBoxAttrs {
        anchors: Some(vec![10, 13, 16, 30, 33, 23]),
        class_num: 4,
        conf_thresh: 0.3,
        downsample_ratio: 32,
        clip_bbox: !iou_aware,
        scale_x_y: if iou_aware { 1.0 } else { 1.05 },
        iou_aware,
        iou_aware_factor: 0.4,
    }
}

#[test]
fn yolo_box_matches_the_cpu_kernel() {
    let harness = Harness::shared();
    let (n, h, w) = (2, 5, 7);
    // Images of other sizes than the network input (5x7 cells of 32 pixels), so the boxes
    // are scaled, and clipping cuts some.
    let img_size = [608, 416, 150, 300];
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for iou_aware in [false, true] {
        let attrs = yolo_attrs(iou_aware);
        let anchors = attrs.anchors.clone().unwrap();
        let an = anchors.len() / 2;
        let channels = an * (5 + attrs.class_num + usize::from(iou_aware));
        // Logits in [-3, 3): objectness from 0.05 to 0.95 around the 0.3 threshold.
        let x = uniform(&mut rng, n * channels * h * w, -3.0, 3.0);
        let dims = [n, channels, h, w];
        let inputs = [
            Some(LibView {
                dims: &dims,
                data: LibSlice::F32(&x),
            }),
            Some(LibView {
                dims: &[n, 2],
                data: LibSlice::I32(&img_size),
            }),
        ];
        let out = temblor_ops_lib::run(&LibOp::YoloBox(attrs.clone()), &inputs).unwrap();
        let mut want = f32_data(&out[0].data).to_vec();
        let zero_rows = want.chunks_exact(4).filter(|b| b == &[0.0; 4]).count();
        assert!(
            zero_rows > 0 && zero_rows < n * an * h * w,
            "the case must have positions on both sides of the threshold"
        );
        want.extend_from_slice(f32_data(&out[1].data));

        let mut cmd = format!(
            "yolo_box {n} {h} {w} {an} {} {} {} {} {} {} {}",
            attrs.class_num,
            u8::from(iou_aware),
            attrs.iou_aware_factor,
            attrs.conf_thresh,
            attrs.downsample_ratio,
            u8::from(attrs.clip_bbox),
            attrs.scale_x_y
        );
        push(&mut cmd, &anchors);
        push(&mut cmd, &img_size);
        push(&mut cmd, &x);
        let got = harness.run(&cmd);
        assert_matches(&format!("yolo_box iou_aware={iou_aware}"), &got[0], &want);
    }
}
