//! yolo_box (ops_lib_yolo_box, yolo_box.cu) and RoiAlign (ops_lib_roi_align_*, roi_align.cu).

use super::super::params::{self, Pod};
use super::super::{grid_stride, Arg, Buf, Cx, Lowering, Unsupported, Work};
use super::{check_output, f32_input, int};
use crate::{Tensor, TensorData};
use temblor_ir::{DType, RoiAlignAttrs, YoloBoxAttrs};

/// yolo_box.cuh's `YoloBoxParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct YoloBoxParams {
    pub n: i32,
    pub h: i32,
    pub w: i32,
    pub anchors: i32,
    pub classes: i32,
    pub iou_aware: i32,
    pub iou_aware_factor: f32,
    pub conf_thresh: f32,
    pub downsample_ratio: i32,
    pub clip_bbox: i32,
    pub scale_x_y: f32,
}

/// roi_align.cuh's `RoiAlignParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct RoiAlignParams {
    pub channels: i32,
    pub height: i32,
    pub width: i32,
    pub output_height: i32,
    pub output_width: i32,
    pub sampling_ratio: i32,
    pub spatial_scale: f32,
    pub half_pixel: i32,
    pub max_mode: i32,
}

// SAFETY: repr(C), eleven 4-byte fields.
unsafe impl Pod for YoloBoxParams {}
// SAFETY: repr(C), nine 4-byte fields.
unsafe impl Pod for RoiAlignParams {}

/// The anchors as the kernel reads them, `[A, 2]` int32: from the attribute, or input 2 when
/// it is known (made int32 here) or already int32 on the device.
fn anchors(a: &YoloBoxAttrs, cx: &mut Cx) -> Result<(usize, Arg), Unsupported> {
    let values = match (&a.anchors, cx.optional(2)) {
        (Some(v), None) => v.clone(),
        (None, Some(t)) if t.shape.len() != 2 || t.shape[1] != 2 => {
            return Err(Unsupported::new(format!("anchors of shape {:?}", t.shape)))
        }
        (None, Some(t)) if t.known.is_none() && t.dtype == DType::I32 => {
            return Ok((t.shape[0], Arg::Ptr(Buf::Input(2).at())));
        }
        (None, Some(_)) => cx.known_ints(2)?,
        _ => return Err(Unsupported::new("anchors given twice or not at all")),
    };
    let narrow: Result<Vec<i32>, _> = values.iter().map(|&v| i32::try_from(v)).collect();
    let narrow = narrow.map_err(|_| Unsupported::new("anchors past i32"))?;
    if narrow.is_empty() || narrow.len() % 2 != 0 {
        return Err(Unsupported::new(format!("{} anchor values", narrow.len())));
    }
    let count = narrow.len() / 2;
    let table = cx.derive(Tensor {
        shape: vec![count, 2],
        data: TensorData::I32(narrow),
    });
    Ok((count, Arg::Ptr(table.at())))
}

/// yolo_box: x `[N, A*(5+C) (+A when IoU-aware), H, W]` f32, image sizes `[N, 2]` (height,
/// width) int32 or int64, optional anchors; boxes `[N, A*H*W, 4]`, scores `[N, A*H*W, C]`.
pub(super) fn yolo_box(a: &YoloBoxAttrs, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let x = f32_input(cx, 0, 4, "the head")?;
    let &[n, c, h, w] = x.shape else {
        unreachable!("f32_input checked the rank")
    };
    let (an, anchor_arg) = anchors(a, cx)?;
    let per_anchor = 5 + a.class_num + usize::from(a.iou_aware);
    if c != an * per_anchor {
        return Err(Unsupported::new(format!(
            "{c} channels for {an} anchors of {per_anchor}"
        )));
    }
    let img = cx.input(1)?;
    let function = match img.dtype {
        DType::I32 => "ops_lib_yolo_box",
        DType::I64 => "ops_lib_yolo_box_i64",
        other => return Err(Unsupported::new(format!("{other} image sizes"))),
    };
    if img.shape != [n, 2] {
        return Err(Unsupported::new(format!("image sizes {:?}", img.shape)));
    }
    let boxes = an * h * w;
    check_output(cx, 0, &[n, boxes, 4])?;
    check_output(cx, 1, &[n, boxes, a.class_num])?;
    let p = YoloBoxParams {
        n: int(n)?,
        h: int(h)?,
        w: int(w)?,
        anchors: int(an)?,
        classes: int(a.class_num)?,
        iou_aware: i32::from(a.iou_aware),
        iou_aware_factor: a.iou_aware_factor,
        conf_thresh: a.conf_thresh,
        downsample_ratio: i32::try_from(a.downsample_ratio)
            .map_err(|_| Unsupported::new("a downsample ratio past i32"))?,
        clip_bbox: i32::from(a.clip_bbox),
        scale_x_y: a.scale_x_y,
    };
    let positions = n * boxes;
    if positions == 0 {
        return Ok(Lowering::Work(Vec::new()));
    }
    let args = vec![
        Arg::Ptr(Buf::Input(0).at()),
        Arg::Ptr(Buf::Input(1).at()),
        anchor_arg,
        Arg::Pod(params::bytes(&p)),
        Arg::Ptr(Buf::Output(0).at()),
        Arg::Ptr(Buf::Output(1).at()),
    ];
    let launch = grid_stride(function, positions, args);
    Ok(Lowering::Work(vec![Work::Launch(launch)]))
}

/// ONNX RoiAlign: x `[N, C, H, W]`, rois `[R, 4]`, batch indices `[R]` int32 or int64; output
/// `[R, C, output_height, output_width]`.
pub(super) fn roi_align(a: &RoiAlignAttrs, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let x = f32_input(cx, 0, 4, "the input")?;
    let &[n, c, h, w] = x.shape else {
        unreachable!("f32_input checked the rank")
    };
    let rois = f32_input(cx, 1, 2, "rois")?;
    let r = rois.shape[0];
    if rois.shape[1] != 4 {
        return Err(Unsupported::new(format!("rois {:?}", rois.shape)));
    }
    let batch = cx.input(2)?;
    let function = match batch.dtype {
        DType::I32 => "ops_lib_roi_align_i32",
        DType::I64 => "ops_lib_roi_align_i64",
        other => return Err(Unsupported::new(format!("{other} batch indices"))),
    };
    if batch.shape != [r] {
        return Err(Unsupported::new(format!(
            "batch indices {:?} for {r} regions",
            batch.shape
        )));
    }
    let (oh, ow) = (a.output_height, a.output_width);
    check_output(cx, 0, &[r, c, oh, ow])?;
    let total = r * c * oh * ow;
    if total == 0 {
        return Ok(Lowering::Work(Vec::new()));
    }
    if h == 0 || w == 0 {
        // The CPU kernel writes zeros without sampling; the bins here would sample nothing
        // valid.
        return Err(Unsupported::new("an empty input plane"));
    }
    int(h * w)?;
    let p = RoiAlignParams {
        channels: int(c)?,
        height: int(h)?,
        width: int(w)?,
        output_height: int(oh)?,
        output_width: int(ow)?,
        sampling_ratio: int(a.sampling_ratio)?,
        spatial_scale: a.spatial_scale,
        half_pixel: i32::from(a.half_pixel),
        max_mode: i32::from(a.max),
    };
    let args = vec![
        Arg::Ptr(Buf::Input(0).at()),
        Arg::Ptr(Buf::Input(1).at()),
        Arg::Ptr(Buf::Input(2).at()),
        Arg::I32(int(n)?),
        Arg::I32(int(r)?),
        Arg::Pod(params::bytes(&p)),
        Arg::Ptr(Buf::Output(0).at()),
    ];
    Ok(Lowering::Work(vec![Work::Launch(grid_stride(
        function, total, args,
    ))]))
}
