//! nms.cuh's mask and walk against ops_lib's ONNX NonMaxSuppression and Paddle
//! multiclass_nms3.

use super::data::{clustered_boxes, i32_data, tied_scores};
use super::harness::{push, Harness};
use temblor_ir::MulticlassNmsAttrs;
use temblor_ops_lib::detection::non_max_suppression;
use temblor_ops_lib::{LibOp, LibSlice, LibView};
use temblor_tests::Rng;

/// A harness NMS command for one class (`params`: RULE THRESHOLD SCORE_THRESHOLD TOP_K LIMIT);
/// the harness answers with the kept box indices, best first.
fn nms_command(params: &str, boxes: &[f32], scores: &[f32]) -> String {
    let mut cmd = format!("nms {params} {}", scores.len());
    push(&mut cmd, boxes);
    push(&mut cmd, scores);
    cmd.push('\n');
    cmd
}

#[test]
fn nms_matches_onnx_non_max_suppression() {
    let harness = Harness::shared();
    let (n, classes, b) = (2, 3, 150);
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for center_point in [false, true] {
        let mut boxes = Vec::with_capacity(n * b * 4);
        for _ in 0..n {
            for (i, c) in clustered_boxes(&mut rng, b, 100.0)
                .chunks_exact(4)
                .enumerate()
            {
                boxes.extend(match (center_point, i % 5) {
                    (true, _) => [
                        (c[0] + c[2]) / 2.0,
                        (c[1] + c[3]) / 2.0,
                        c[2] - c[0],
                        c[3] - c[1],
                    ],
                    // ONNX takes [y1, x1, y2, x2], any diagonal pair: some flipped.
                    (false, 0) => [c[3], c[2], c[1], c[0]],
                    (false, _) => [c[1], c[0], c[3], c[2]],
                });
            }
        }
        let scores = tied_scores(&mut rng, n * classes * b);
        for (limit, iou, score) in [(1000, 0.5, 0.2), (7, 0.3, 0.0)] {
            let want = non_max_suppression(
                &boxes,
                &scores,
                [n, classes, b],
                center_point,
                limit,
                iou,
                Some(score),
            );
            let rule = if center_point { 3 } else { 2 };
            let mut commands = String::new();
            for batch in 0..n {
                for class in 0..classes {
                    commands += &nms_command(
                        &format!("{rule} {iou} {score} -1 {limit}"),
                        &boxes[batch * b * 4..(batch + 1) * b * 4],
                        &scores[(batch * classes + class) * b..][..b],
                    );
                }
            }
            let kept = harness.run(&commands);
            let got: Vec<i64> = kept
                .iter()
                .enumerate()
                .flat_map(|(i, k)| {
                    let (batch, class) = (i / classes, i % classes);
                    k.iter()
                        .flat_map(move |&idx| [batch as i64, class as i64, idx as i64])
                })
                .collect();
            let what = format!("center_point={center_point} limit={limit} iou={iou}");
            assert_eq!(got, want, "{what}");
            let candidates = scores.iter().filter(|&&s| s > score).count();
            assert!(
                want.len() / 3 < candidates && want.len() / 3 > n * classes,
                "{what}: the case must both keep and suppress boxes"
            );
        }
    }
}

#[test]
fn nms_matches_multiclass_nms3() {
    let harness = Harness::shared();
    let (n, classes, m) = (2, 4, 120);
    let mut rng = Rng(0x94D0_49BB_1331_11EB);
    for normalized in [false, true] {
        // Pixel boxes count both end pixels: a field of 200 pixels; normalized ones span [0, 1].
        let size = if normalized { 1.0 } else { 200.0 };
        let boxes: Vec<f32> = (0..n)
            .flat_map(|_| clustered_boxes(&mut rng, m, size))
            .collect();
        let scores = tied_scores(&mut rng, n * classes * m);
        let attrs = MulticlassNmsAttrs {
            background_label: 0,
            score_threshold: 0.1,
            nms_top_k: 60,
            nms_threshold: 0.45,
            nms_eta: 1.0,
            keep_top_k: -1,
            normalized,
        };
        let inputs = [
            Some(LibView {
                dims: &[n, m, 4],
                data: LibSlice::F32(&boxes),
            }),
            Some(LibView {
                dims: &[n, classes, m],
                data: LibSlice::F32(&scores),
            }),
        ];
        let out = temblor_ops_lib::run(&LibOp::MulticlassNms(attrs.clone()), &inputs).unwrap();
        // Index holds image * m + box, per image by ascending label, best first in a label.
        let want_index = i32_data(&out[1].data);
        let want_counts = i32_data(&out[2].data);

        let params = format!(
            "{} {} {} {} -1",
            u8::from(normalized),
            attrs.nms_threshold,
            attrs.score_threshold,
            attrs.nms_top_k
        );
        let mut commands = String::new();
        for image in 0..n {
            for class in 1..classes {
                commands += &nms_command(
                    &params,
                    &boxes[image * m * 4..(image + 1) * m * 4],
                    &scores[(image * classes + class) * m..][..m],
                );
            }
        }
        let kept = harness.run(&commands);
        let per_image = kept.chunks_exact(classes - 1);
        let got_counts: Vec<i32> = per_image
            .clone()
            .map(|c| c.iter().map(Vec::len).sum::<usize>() as i32)
            .collect();
        let got_index: Vec<i32> = per_image
            .enumerate()
            .flat_map(|(image, c)| {
                c.iter()
                    .flatten()
                    .map(move |&idx| (image * m) as i32 + idx as i32)
            })
            .collect();
        let what = format!("normalized={normalized}");
        assert_eq!(got_index, want_index, "{what}");
        assert_eq!(got_counts, want_counts, "{what}");
        let candidates: usize = scores
            .chunks_exact(m)
            .enumerate()
            .filter(|(row, _)| row % classes != 0)
            .map(|(_, class)| {
                let above = class.iter().filter(|&&s| s > attrs.score_threshold).count();
                above.min(attrs.nms_top_k as usize)
            })
            .sum();
        assert!(
            want_index.len() < candidates && want_index.len() > n * (classes - 1),
            "{what}: the case must both keep and suppress boxes"
        );
    }
}
