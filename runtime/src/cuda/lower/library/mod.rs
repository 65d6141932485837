//! ops_lib and the detection ops on the GPU (the kernels of ops_lib/cuda), with the semantics of
//! their CPU kernels (ops_lib/src/detection, runtime/src/cpu/{deform_conv,grid_sample}.rs):
//! - yolo_box and RoiAlign (`detection.rs`): one thread per position or bin; yolo_box's image
//!   sizes int32 or int64 and its anchors, from the attribute or a known input, made int32 at
//!   prepare time; RoiAlign's batch indices int32 or int64, checked on the device.
//! - DeformSample, DeformConv, GridSample (`sample.rs`): the deformable im2col, then for
//!   DeformConv the grouped GEMMs with the known weight and the bias epilogue; bilinear
//!   GridSample with zeros padding.
//!
//! The other ops_lib ops (NMS, proposals, FPN distribution, batch indices) have outputs whose
//! shapes depend on the data: they are [`ragged`] and run on the host, with what follows them.

mod detection;
mod sample;

use super::params::{layout, Layout};
use super::{Cx, Lowering, Operand, Unsupported};
use temblor_ir::{DType, LibOp, Op};

pub(super) const LAYOUTS: &[Layout] = &[
    layout!(
        detection::YoloBoxParams,
        "YoloBoxParams",
        [
            n,
            h,
            w,
            anchors,
            classes,
            iou_aware,
            iou_aware_factor,
            conf_thresh,
            downsample_ratio,
            clip_bbox,
            scale_x_y
        ]
    ),
    layout!(
        detection::RoiAlignParams,
        "RoiAlignParams",
        [
            channels,
            height,
            width,
            output_height,
            output_width,
            sampling_ratio,
            spatial_scale,
            half_pixel,
            max_mode
        ]
    ),
    layout!(
        sample::DeformParams,
        "DeformParams",
        [
            channels,
            height,
            width,
            kernel_h,
            kernel_w,
            stride_h,
            stride_w,
            pad_top,
            pad_left,
            dilation_h,
            dilation_w,
            offset_groups,
            out_h,
            out_w
        ]
    ),
    layout!(
        sample::GridSampleParams,
        "GridSampleParams",
        [channels, height, width, out_h, out_w, align_corners]
    ),
];

/// Whether an op's output shapes can change between runs with the same input shapes: such a
/// node runs on the host, and everything after it.
pub(crate) fn ragged(op: &Op) -> bool {
    match op {
        Op::NonZero | Op::NonMaxSuppression { .. } | Op::Loop(_) | Op::If { .. } => true,
        // Their shape rules (ops_lib/src/detection) leave the box and RoI counts unknown.
        Op::Lib(lib) => match lib {
            LibOp::YoloBox(_) => false,
            LibOp::MulticlassNms(_)
            | LibOp::MatrixNms(_)
            | LibOp::GenerateProposals(_)
            | LibOp::DistributeFpnProposals(_)
            | LibOp::RoisBatchIndex => true,
        },
        _ => false,
    }
}

pub(super) fn lower(op: &Op, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    match op {
        Op::Lib(LibOp::YoloBox(a)) => detection::yolo_box(a, cx),
        Op::RoiAlign(a) => detection::roi_align(a, cx),
        Op::DeformSample(a) => sample::deform_sample(a, cx),
        Op::DeformConv(a) => sample::deform_conv(a, cx),
        Op::GridSample {
            mode,
            padding,
            align_corners,
        } => sample::grid_sample(*mode, *padding, *align_corners, cx),
        Op::Lib(lib) => Err(Unsupported::new(format!(
            "{} has data-dependent output shapes",
            lib.name()
        ))),
        other => Err(Unsupported::new(format!(
            "no CUDA kernel for {}",
            other.name()
        ))),
    }
}

/// `v` as a kernel's `int`.
fn int(v: usize) -> Result<i32, Unsupported> {
    i32::try_from(v).map_err(|_| Unsupported::new(format!("an extent of {v}, past i32")))
}

/// Input `port`, which must be f32 with `rank` dimensions.
fn f32_input<'a>(
    cx: &Cx<'a>,
    port: usize,
    rank: usize,
    what: &str,
) -> Result<Operand<'a>, Unsupported> {
    let x = cx.input(port)?;
    if x.dtype != DType::F32 || x.shape.len() != rank {
        return Err(Unsupported::new(format!(
            "{what} is {} {:?}, the kernel takes f32 of rank {rank}",
            x.dtype, x.shape
        )));
    }
    Ok(x)
}

/// Checks that output `port` is f32 of `shape`.
fn check_output(cx: &Cx, port: usize, shape: &[usize]) -> Result<(), Unsupported> {
    let out = cx.output(port);
    if out.dtype != DType::F32 || out.shape != shape {
        return Err(Unsupported::new(format!(
            "output {port} is {} {:?}, expected f32 {shape:?}",
            out.dtype, out.shape
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
