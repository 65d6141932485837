//! generate_proposals_v2: the RPN's proposal stage. Per image: take the `pre_nms_topN`
//! best-scored anchors, decode their deltas, clip to the image, drop boxes smaller than
//! `min_size` (or whose centre lies outside the image), NMS, keep `post_nms_topN`.
//! An image left with nothing gets one all-zero box with score 0, as in Paddle.
//!
//! Paddle picks the top `pre_nms_topN` with `std::nth_element`, leaving them in no defined
//! order; that order only matters among equal scores, or when `nms_thresh <= 0` skips NMS.
//! This kernel keeps them in descending score, ties in anchor order.

use super::boxes::greedy_nms;
use super::{float_data, float_dims, ty, Args};
use crate::LibTensor;
use crate::LibView;
use temblor_ir::{DType, Dim, GenerateProposalsAttrs, TensorType};

pub(super) fn infer(args: &Args<'_, TensorType>) -> Result<Vec<TensorType>, String> {
    let (scores, what) = args.get(0)?;
    let images = float_dims(scores, &what, 4)?[0].clone();
    let (deltas, what) = args.get(1)?;
    float_dims(deltas, &what, 4)?;
    let (im_shape, what) = args.get(2)?;
    float_dims(im_shape, &what, 2)?;
    for i in [3, 4] {
        let (t, what) = args.get(i)?;
        float_dims(t, &what, t.shape.rank())?;
    }
    Ok(vec![
        ty(DType::F32, vec![Dim::Unknown, Dim::Known(4)]),
        ty(DType::F32, vec![Dim::Unknown, Dim::Known(1)]),
        ty(DType::I32, vec![images]),
    ])
}

pub(super) fn run(
    attrs: &GenerateProposalsAttrs,
    args: &Args<'_, LibView<'_>>,
) -> Result<Vec<LibTensor>, String> {
    let (sv, swhat) = args.get(0)?;
    let scores = float_data(sv, &swhat, 4)?;
    let [n, a, h, w] = [sv.dims[0], sv.dims[1], sv.dims[2], sv.dims[3]];
    let (dv, dwhat) = args.get(1)?;
    let deltas = float_data(dv, &dwhat, 4)?;
    if dv.dims != [n, 4 * a, h, w] {
        return Err(format!(
            "{dwhat} must be [{n}, {}, {h}, {w}], got {:?}",
            4 * a,
            dv.dims
        ));
    }
    let (iv, iwhat) = args.get(2)?;
    let im_shape = float_data(iv, &iwhat, 2)?;
    if iv.dims != [n, 2] {
        return Err(format!("{iwhat} must be [{n}, 2], got {:?}", iv.dims));
    }
    let count = h * w * a;
    let mut per_anchor = Vec::with_capacity(2);
    for i in [3, 4] {
        let (v, what) = args.get(i)?;
        let data = v.f32(&what)?;
        if data.len() != count * 4 || v.dims.iter().product::<usize>() != data.len() {
            return Err(format!(
                "{what} must hold {count} boxes ([{h}, {w}, {a}, 4]), got dims {:?}",
                v.dims
            ));
        }
        per_anchor.push(data);
    }
    let (anchors, variances) = (per_anchor[0], per_anchor[1]);

    let mut rois = Vec::new();
    let mut probs = Vec::new();
    let mut nums = Vec::with_capacity(n);
    for img in 0..n {
        // Paddle transposes [A, H, W] to [H, W, A], so candidate k is (y, x, anchor).
        let score_of = |k: usize| {
            let (hw, an) = (k / a, k % a);
            scores[(img * a + an) * h * w + hw]
        };
        let delta_of = |k: usize, j: usize| {
            let (hw, an) = (k / a, k % a);
            deltas[((img * a + an) * 4 + j) * h * w + hw]
        };
        let (ph, pw) = (im_shape[2 * img], im_shape[2 * img + 1]);
        let (boxes, box_scores) = one_image(
            attrs, count, &score_of, &delta_of, anchors, variances, ph, pw,
        );
        nums.push(
            i32::try_from(box_scores.len())
                .map_err(|_| "proposal count does not fit int32".to_string())?,
        );
        rois.extend(boxes);
        probs.extend(box_scores);
    }
    let total = probs.len();
    Ok(vec![
        LibTensor::f32(vec![total, 4], rois),
        LibTensor::f32(vec![total, 1], probs),
        LibTensor::i32(vec![n], nums),
    ])
}

/// Proposals and their scores for one image of height `ih` and width `iw`.
#[allow(clippy::too_many_arguments)]
fn one_image(
    attrs: &GenerateProposalsAttrs,
    count: usize,
    score_of: &dyn Fn(usize) -> f32,
    delta_of: &dyn Fn(usize, usize) -> f32,
    anchors: &[f32],
    variances: &[f32],
    ih: f32,
    iw: f32,
) -> (Vec<f32>, Vec<f32>) {
    let mut order: Vec<(f32, usize)> = (0..count).map(|k| (score_of(k), k)).collect();
    // Descending score, ties by anchor: a total order, so selecting the top candidates
    // first (linear, like Paddle's nth_element) and sorting only those gives what a full
    // stable sort would.
    let by_score = |a: &(f32, usize), b: &(f32, usize)| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.1.cmp(&b.1))
    };
    if attrs.pre_nms_top_n > 0 && (attrs.pre_nms_top_n as usize) < count {
        let top = attrs.pre_nms_top_n as usize;
        order.select_nth_unstable_by(top, by_score);
        order.truncate(top);
    }
    order.sort_unstable_by(by_score);
    let offset = if attrs.pixel_offset { 1.0f32 } else { 0.0 };
    let min_size = attrs.min_size.max(1.0);
    let mut boxes: Vec<[f32; 4]> = Vec::new();
    let mut box_scores: Vec<f32> = Vec::new();
    for &(s, k) in &order {
        let an = &anchors[k * 4..k * 4 + 4];
        let var = &variances[k * 4..k * 4 + 4];
        let d = [0, 1, 2, 3].map(|j| delta_of(k, j));
        let b = decode(an, var, &d, offset);
        let b = [
            clip(b[0], iw - offset),
            clip(b[1], ih - offset),
            clip(b[2], iw - offset),
            clip(b[3], ih - offset),
        ];
        let ws = b[2] - b[0] + offset;
        let hs = b[3] - b[1] + offset;
        let keep = if attrs.pixel_offset {
            let x_ctr = b[0] + ws / 2.0;
            let y_ctr = b[1] + hs / 2.0;
            ws >= min_size && hs >= min_size && x_ctr <= iw && y_ctr <= ih
        } else {
            ws >= min_size && hs >= min_size
        };
        if keep {
            boxes.push(b);
            box_scores.push(s);
        }
    }
    if boxes.is_empty() {
        return (vec![0.0; 4], vec![0.0]);
    }
    let kept: Vec<usize> = if attrs.nms_thresh <= 0.0 {
        (0..boxes.len()).collect()
    } else {
        // Paddle sorts ascending (stable) and takes from the back, so among equal scores
        // the later candidate goes first.
        let mut asc: Vec<usize> = (0..boxes.len()).collect();
        asc.sort_by(|&x, &y| {
            box_scores[x]
                .partial_cmp(&box_scores[y])
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut kept = greedy_nms(
            asc.into_iter().rev(),
            |i| &boxes[i][..],
            attrs.nms_thresh,
            attrs.eta,
            !attrs.pixel_offset,
        );
        if attrs.post_nms_top_n > 0 {
            kept.truncate(attrs.post_nms_top_n as usize);
        }
        kept
    };
    let out_boxes = kept.iter().flat_map(|&i| boxes[i]).collect();
    let out_scores = kept.iter().map(|&i| box_scores[i]).collect();
    (out_boxes, out_scores)
}

/// Paddle's box coder: centre-size deltas scaled by per-anchor variances, log-sizes clamped at
/// log(1000/16).
fn decode(an: &[f32], var: &[f32], d: &[f32; 4], offset: f32) -> [f32; 4] {
    let clip_log = (1000.0f64 / 16.0).ln() as f32;
    let aw = an[2] - an[0] + offset;
    let ah = an[3] - an[1] + offset;
    let acx = an[0] + 0.5 * aw;
    let acy = an[1] + 0.5 * ah;
    let cx = var[0] * d[0] * aw + acx;
    let cy = var[1] * d[1] * ah + acy;
    let bw = (var[2] * d[2]).min(clip_log).exp() * aw;
    let bh = (var[3] * d[3]).min(clip_log).exp() * ah;
    [
        cx - bw / 2.0,
        cy - bh / 2.0,
        cx + bw / 2.0 - offset,
        cy + bh / 2.0 - offset,
    ]
}

/// `max(min(v, hi), 0)` with `std::min`/`std::max`'s handling of equal values.
fn clip(v: f32, hi: f32) -> f32 {
    let m = if hi < v { hi } else { v };
    if m < 0.0 {
        0.0
    } else {
        m
    }
}
