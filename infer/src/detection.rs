//! Rules of the detection and quantization ops. NonMaxSuppression's box count depends on the
//! data, so only its rank and last axis are known.

use super::{conv, dims, Ins};
use temblor_ir::{ConvAttrs, DType, DeformConvAttrs, Dim, Layout, Shape, TensorType};

pub(super) fn with_dtype(x: &TensorType, dtype: DType) -> TensorType {
    TensorType { dtype, ..x.clone() }
}

fn ranked<'a>(t: &'a TensorType, rank: usize, what: &str) -> Result<&'a [Dim], String> {
    if t.shape.rank() == rank {
        Ok(t.shape.dims())
    } else {
        Err(format!(
            "{what} has shape {}, expected rank {rank}",
            t.shape
        ))
    }
}

/// `[K, 3]` int64 (batch, class, box): how many boxes survive depends on the data.
pub(super) fn non_max_suppression(
    boxes: &TensorType,
    scores: &TensorType,
) -> Result<TensorType, String> {
    let b = ranked(boxes, 3, "boxes")?;
    let s = ranked(scores, 3, "scores")?;
    dims::unify(&b[2], &Dim::Known(4)).map_err(|e| format!("boxes' last axis: {e}"))?;
    dims::unify(&b[0], &s[0]).map_err(|e| format!("boxes and scores batches: {e}"))?;
    dims::unify(&b[1], &s[2]).map_err(|e| format!("boxes and scores box counts: {e}"))?;
    Ok(TensorType::new(
        DType::I64,
        Shape(vec![Dim::Unknown, Dim::Known(3)]),
    ))
}

pub(super) fn roi_align(
    x: &TensorType,
    rois: &TensorType,
    indices: &TensorType,
    oh: usize,
    ow: usize,
) -> Result<TensorType, String> {
    let xd = ranked(x, 4, "input")?;
    let rd = ranked(rois, 2, "rois")?;
    let id = ranked(indices, 1, "batch_indices")?;
    dims::unify(&rd[1], &Dim::Known(4)).map_err(|e| format!("rois' last axis: {e}"))?;
    let regions =
        dims::unify(&rd[0], &id[0]).map_err(|e| format!("rois and batch_indices: {e}"))?;
    Ok(TensorType {
        dtype: x.dtype,
        shape: Shape(vec![regions, xd[1].clone(), Dim::Known(oh), Dim::Known(ow)]),
        layout: Layout::NCHW,
    })
}

/// Conv's rule, with the output extent also taken from the offset's.
pub(super) fn deform_conv(a: &DeformConvAttrs, ins: &Ins) -> Result<TensorType, String> {
    let out = conv::conv(&window(a), ins.ty(0)?, ins.ty(1)?, ins.opt(3))?;
    with_offset_extents(out, ins.ty(2)?, ins.opt(4))
}

/// The window's output extent, as a one-group DeformConv of `C` output channels would have it,
/// with one channel per input channel and kernel tap.
pub(super) fn deform_sample(a: &DeformConvAttrs, ins: &Ins) -> Result<TensorType, String> {
    let x = ins.ty(0)?;
    let c = ranked(x, 4, "input")?[1].clone();
    let w = TensorType {
        dtype: x.dtype,
        shape: Shape(vec![
            c.clone(),
            c.clone(),
            Dim::Known(a.kernel[0]),
            Dim::Known(a.kernel[1]),
        ]),
        layout: Layout::OIHW,
    };
    let one_group = ConvAttrs {
        group: 1,
        ..window(a)
    };
    let mut out = conv::conv(&one_group, x, &w, None)?;
    let taps = a.kernel[0].saturating_mul(a.kernel[1]);
    out.shape.0[1] = match c {
        Dim::Known(c) => Dim::Known(c.saturating_mul(taps)),
        _ => Dim::Unknown,
    };
    with_offset_extents(out, ins.ty(1)?, ins.opt(2))
}

fn window(a: &DeformConvAttrs) -> ConvAttrs {
    ConvAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        kernel: a.kernel,
        strides: a.strides,
        dilations: a.dilations,
        pads: a.pads,
        group: a.group,
        activation: None,
        affine: None,
    }
}

/// Unifies the batch and output extents of `out` with the offset's, and checks the mask's.
fn with_offset_extents(
    mut out: TensorType,
    offset: &TensorType,
    mask: Option<&TensorType>,
) -> Result<TensorType, String> {
    let offset = ranked(offset, 4, "offset")?;
    let mut extents = out.shape.0.clone();
    extents[0] = dims::unify(&extents[0], &offset[0]).map_err(|e| format!("offset batch: {e}"))?;
    for i in 2..4 {
        extents[i] = dims::unify(&extents[i], &offset[i])
            .map_err(|e| format!("offset does not match the output size: {e}"))?;
    }
    if let Some(mask) = mask {
        let m = ranked(mask, 4, "mask")?;
        for i in [0, 2, 3] {
            dims::unify(&extents[i], &m[i])
                .map_err(|e| format!("mask does not match the offset: {e}"))?;
        }
    }
    out.shape = Shape(extents);
    Ok(out)
}

pub(super) fn grid_sample(x: &TensorType, grid: &TensorType) -> Result<TensorType, String> {
    let rank = x.shape.rank();
    if rank < 3 {
        return Err(format!(
            "input has shape {}, expected [N, C, spatial...]",
            x.shape
        ));
    }
    let gd = ranked(grid, rank, "grid")?;
    let xd = x.shape.dims();
    dims::unify(&gd[rank - 1], &Dim::Known(rank - 2))
        .map_err(|e| format!("grid's last axis must hold one coordinate per spatial axis: {e}"))?;
    let mut out = vec![
        dims::unify(&xd[0], &gd[0]).map_err(|e| format!("input and grid batches: {e}"))?,
        xd[1].clone(),
    ];
    out.extend_from_slice(&gd[1..rank - 1]);
    Ok(TensorType {
        dtype: x.dtype,
        shape: Shape(out),
        layout: if rank == 4 { Layout::NCHW } else { Layout::Any },
    })
}
