//! distribute_fpn_proposals: assigns each RoI to an FPN level by its scale,
//! `floor(refer_level + log2(sqrt(area) / refer_scale))` clamped to `[min_level, max_level]`,
//! and splits the RoIs per level (keeping their order, so images stay contiguous).
//! `RestoreIndex[r]` is where RoI `r` lands in the concatenation of all levels.

use super::boxes::area;
use super::{counts_data, counts_dims, float_data, float_dims, offsets_from_counts, ty, Args};
use crate::LibTensor;
use crate::LibView;
use temblor_ir::{DType, Dim, DistributeFpnAttrs, TensorType};

pub(super) fn infer(
    attrs: &DistributeFpnAttrs,
    args: &Args<'_, TensorType>,
) -> Result<Vec<TensorType>, String> {
    let (rois, what) = args.get(0)?;
    let total = float_dims(rois, &what, 2)?[0].clone();
    let images = match args.opt(1) {
        Some((t, what)) => counts_dims(t, &what)?,
        None => Dim::Known(1),
    };
    let levels = attrs.num_levels();
    let mut out = Vec::with_capacity(2 * levels + 1);
    out.extend((0..levels).map(|_| ty(DType::F32, vec![Dim::Unknown, Dim::Known(4)])));
    out.extend((0..levels).map(|_| ty(DType::I32, vec![images.clone()])));
    out.push(ty(DType::I32, vec![total, Dim::Known(1)]));
    Ok(out)
}

pub(super) fn run(
    attrs: &DistributeFpnAttrs,
    args: &Args<'_, LibView<'_>>,
) -> Result<Vec<LibTensor>, String> {
    let (rv, what) = args.get(0)?;
    let rois = float_data(rv, &what, 2)?;
    if rv.dims[1] != 4 {
        return Err(format!("{what} must be [R, 4], got {:?}", rv.dims));
    }
    let total = rv.dims[0];
    let offsets = match args.opt(1) {
        Some((v, nwhat)) => offsets_from_counts(&counts_data(v, &nwhat)?, total, &nwhat)?,
        None => vec![0, total],
    };
    let images = offsets.len() - 1;
    let levels = attrs.num_levels();
    let target: Vec<usize> = rois.chunks_exact(4).map(|b| level_of(attrs, b)).collect();

    let mut per_level = vec![0usize; levels];
    target.iter().for_each(|&l| per_level[l] += 1);
    let mut start = vec![0usize; levels];
    for l in 1..levels {
        start[l] = start[l - 1] + per_level[l - 1];
    }
    let mut level_rois: Vec<Vec<f32>> = per_level
        .iter()
        .map(|&c| Vec::with_capacity(c * 4))
        .collect();
    let mut level_counts = vec![vec![0i32; images]; levels];
    let mut restore = vec![0i32; total];
    let mut placed = vec![0usize; levels];
    for (image, w) in offsets.windows(2).enumerate() {
        for r in w[0]..w[1] {
            let l = target[r];
            level_rois[l].extend_from_slice(&rois[r * 4..r * 4 + 4]);
            level_counts[l][image] += 1;
            restore[r] = i32::try_from(start[l] + placed[l])
                .map_err(|_| "RoI count does not fit int32".to_string())?;
            placed[l] += 1;
        }
    }
    let mut out: Vec<LibTensor> = level_rois
        .into_iter()
        .map(|v| LibTensor::f32(vec![v.len() / 4, 4], v))
        .collect();
    out.extend(
        level_counts
            .into_iter()
            .map(|c| LibTensor::i32(vec![images], c)),
    );
    out.push(LibTensor::i32(vec![total, 1], restore));
    Ok(out)
}

/// The level of one RoI, as an offset from `min_level`.
fn level_of(attrs: &DistributeFpnAttrs, b: &[f32]) -> usize {
    fpn_level(attrs, area(b, !attrs.pixel_offset).sqrt())
}

/// The level of a RoI of scale `sqrt(area)`, as an offset from `min_level`, in Paddle's float
/// arithmetic; public so that the ONNX export can find where each level begins.
pub fn fpn_level(attrs: &DistributeFpnAttrs, scale: f32) -> usize {
    let lvl =
        ((scale / attrs.refer_scale as f32 + 1e-6f32).log2() + attrs.refer_level as f32).floor();
    let lvl = (lvl as i32).clamp(attrs.min_level, attrs.max_level);
    (lvl - attrs.min_level) as usize
}
