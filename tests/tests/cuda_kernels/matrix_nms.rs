//! matrix_nms.cuh against ops_lib's matrix_nms: the harness ranks each class and decays it with
//! the kernels' functions; the merge of the classes by decayed score and the keep_top_k cut,
//! which the GPU path leaves to the host, are done here as the CPU kernel does them.

use super::data::{clustered_boxes, f32_data, i32_data, tied_scores};
use super::harness::{assert_matches, push, Harness};
use temblor_ir::MatrixNmsAttrs;
use temblor_ops_lib::{LibOp, LibSlice, LibView};
use temblor_tests::Rng;

/// The rows `[label, decayed score, box]` and indices (image * m + box) of one image from the
/// harness's per-class answers (box index, decayed score pairs, classes in label order):
/// merged by descending decayed score (a stable sort, as ops_lib's), cut to keep_top_k.
fn merge_classes(
    attrs: &MatrixNmsAttrs,
    answers: &[Vec<f32>],
    labels: &[usize],
    boxes: &[f32],
    image: usize,
    m: usize,
) -> (Vec<f32>, Vec<i32>) {
    let mut dets: Vec<(f32, usize, usize)> = answers
        .iter()
        .zip(labels)
        .flat_map(|(pairs, &label)| {
            pairs
                .chunks_exact(2)
                .map(move |p| (p[1], label, p[0] as usize))
        })
        .collect();
    dets.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    if let Ok(k) = usize::try_from(attrs.keep_top_k) {
        dets.truncate(k);
    }
    let mut rows = Vec::new();
    let mut index = Vec::new();
    for (score, label, idx) in dets {
        rows.extend([label as f32, score]);
        rows.extend_from_slice(&boxes[(image * m + idx) * 4..][..4]);
        index.push((image * m + idx) as i32);
    }
    (rows, index)
}

#[test]
fn matrix_nms_matches_the_cpu_kernel() {
    let harness = Harness::shared();
    let (n, classes, m) = (2, 4, 100);
    let mut rng = Rng(0x6A09_E667_F3BC_C909);
    // Linear decay on pixel boxes with every detection kept, Gaussian decay on normalized boxes
    // cut by keep_top_k.
    for (use_gaussian, normalized, keep_top_k) in [(false, false, -1), (true, true, 40)] {
        let size = if normalized { 1.0 } else { 200.0 };
        let boxes: Vec<f32> = (0..n)
            .flat_map(|_| clustered_boxes(&mut rng, m, size))
            .collect();
        let scores = tied_scores(&mut rng, n * classes * m);
        let attrs = MatrixNmsAttrs {
            background_label: 0,
            score_threshold: 0.1,
            post_threshold: 0.15,
            nms_top_k: 60,
            keep_top_k,
            normalized,
            use_gaussian,
            gaussian_sigma: 2.0,
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
        let out = temblor_ops_lib::run(&LibOp::MatrixNms(attrs.clone()), &inputs).unwrap();
        let (want_rows, want_index, want_counts) = (
            f32_data(&out[0].data),
            i32_data(&out[1].data),
            i32_data(&out[2].data),
        );

        let labels: Vec<usize> = (1..classes).collect();
        let mut commands = String::new();
        for image in 0..n {
            for &class in &labels {
                commands += &format!(
                    "matrix_nms {} {} {} {} {} {} {m}",
                    u8::from(normalized),
                    u8::from(use_gaussian),
                    attrs.gaussian_sigma,
                    attrs.score_threshold,
                    attrs.post_threshold,
                    attrs.nms_top_k
                );
                push(&mut commands, &boxes[image * m * 4..(image + 1) * m * 4]);
                push(&mut commands, &scores[(image * classes + class) * m..][..m]);
                commands.push('\n');
            }
        }
        let answers = harness.run(&commands);
        let (mut rows, mut index, mut counts) = (Vec::new(), Vec::new(), Vec::new());
        for (image, per_class) in answers.chunks_exact(labels.len()).enumerate() {
            let (r, i) = merge_classes(&attrs, per_class, &labels, &boxes, image, m);
            counts.push(i.len() as i32);
            rows.extend(r);
            index.extend(i);
        }
        let what = format!("use_gaussian={use_gaussian} normalized={normalized}");
        assert_eq!(index, want_index, "{what}: index");
        assert_eq!(counts, want_counts, "{what}: counts");
        assert_matches(&what, &rows, want_rows);
        // The case must decay scores, and drop candidates at post_threshold.
        let decayed = want_rows
            .chunks_exact(6)
            .zip(want_index)
            .filter(|(row, &i)| {
                let (image, idx) = (i as usize / m, i as usize % m);
                row[1] < scores[(image * classes + row[0] as usize) * m + idx]
            })
            .count();
        let ranked: usize = answers.iter().map(|a| a.len() / 2).sum();
        let candidates: usize = scores
            .chunks_exact(m)
            .enumerate()
            .filter(|(row, _)| row % classes != 0)
            .map(|(_, s)| {
                let above = s.iter().filter(|&&v| v > attrs.score_threshold).count();
                above.min(attrs.nms_top_k as usize)
            })
            .sum();
        assert!(
            decayed > 0 && ranked < candidates,
            "{what}: {decayed} decayed, {ranked} of {candidates} candidates above post_threshold"
        );
    }
}
