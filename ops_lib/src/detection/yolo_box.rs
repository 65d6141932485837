//! yolo_box: decodes a YOLOv3 head `[N, A*(5+C), H, W]` into image-space boxes
//! `[N, A*H*W, 4]` and per-class scores `[N, A*H*W, C]`. Positions whose objectness is below
//! `conf_thresh` get all-zero boxes and scores, as in Paddle.
//!
//! The anchors are Paddle's `anchors` attribute, or, once the `explicit_anchors` pass has run,
//! an `[A, 2]` integer constant on input 2 (`Anchors`), as a TensorRT plugin takes them.

use super::{float_data, float_dims, int_data, int_dims, ty, Args};
use crate::LibTensor;
use crate::LibView;
use temblor_ir::{DType, Dim, TensorType, YoloBoxAttrs};

/// Channels X must have for `an` anchors.
fn channels(attrs: &YoloBoxAttrs, an: usize) -> usize {
    let per_anchor = 5 + attrs.class_num + usize::from(attrs.iou_aware);
    an * per_anchor
}

/// The anchor count: from the attribute, or the `[A, 2]` type of input 2.
fn anchor_count(attrs: &YoloBoxAttrs, args: &Args<'_, TensorType>) -> Result<usize, String> {
    match (&attrs.anchors, args.opt(2)) {
        (Some(a), None) => Ok(a.len() / 2),
        (None, Some((t, what))) => match int_dims(t, &what, 2)? {
            [a, two] if two.known() == Some(2) => a
                .known()
                .ok_or_else(|| format!("{what} has no static anchor count")),
            _ => Err(format!("{what} must be [A, 2]")),
        },
        (Some(_), Some(_)) => Err("anchors given both as an attribute and as input 2".into()),
        (None, None) => Err("anchors are missing (no attribute, no input 2)".into()),
    }
}

/// The anchor values: the attribute, or input 2.
fn anchor_values(attrs: &YoloBoxAttrs, args: &Args<'_, LibView<'_>>) -> Result<Vec<i64>, String> {
    match (&attrs.anchors, args.opt(2)) {
        (Some(a), _) => Ok(a.clone()),
        (None, Some((v, what))) => {
            let values = int_data(v, &what, 2)?;
            if v.dims.get(1) != Some(&2) || values.is_empty() {
                return Err(format!("{what} must be [A, 2], got {:?}", v.dims));
            }
            Ok(values)
        }
        (None, None) => Err("anchors are missing (no attribute, no input 2)".into()),
    }
}

pub(super) fn infer(
    attrs: &YoloBoxAttrs,
    args: &Args<'_, TensorType>,
) -> Result<Vec<TensorType>, String> {
    let (x, what) = args.get(0)?;
    let dims = float_dims(x, &what, 4)?;
    let an = anchor_count(attrs, args)?;
    if let Some(c) = dims[1].known() {
        if c != channels(attrs, an) {
            return Err(format!(
                "{what} has {c} channels; {an} anchors and {} classes need {}",
                attrs.class_num,
                channels(attrs, an)
            ));
        }
    }
    let (img, what) = args.get(1)?;
    int_dims(img, &what, 2)?;
    let boxes = match (dims[2].known(), dims[3].known()) {
        (Some(h), Some(w)) => Dim::Known(an * h * w),
        _ => Dim::Unknown,
    };
    let n = dims[0].clone();
    Ok(vec![
        ty(DType::F32, vec![n.clone(), boxes.clone(), Dim::Known(4)]),
        ty(DType::F32, vec![n, boxes, Dim::Known(attrs.class_num)]),
    ])
}

pub(super) fn run(
    attrs: &YoloBoxAttrs,
    args: &Args<'_, LibView<'_>>,
) -> Result<Vec<LibTensor>, String> {
    let (xv, what) = args.get(0)?;
    let x = float_data(xv, &what, 4)?;
    let [n, c, h, w] = [xv.dims[0], xv.dims[1], xv.dims[2], xv.dims[3]];
    let anchors = anchor_values(attrs, args)?;
    let an = anchors.len() / 2;
    if c != channels(attrs, an) {
        return Err(format!(
            "{what} has {c} channels, expected {}",
            channels(attrs, an)
        ));
    }
    let (iv, iwhat) = args.get(1)?;
    let img = int_data(iv, &iwhat, 2)?;
    if iv.dims != [n, 2] {
        return Err(format!("{iwhat} must be [{n}, 2], got {:?}", iv.dims));
    }
    let classes = attrs.class_num;
    let stride = h * w;
    let box_num = an * stride;
    // Offsets of one image and one anchor's block of 5 + C channels; IoU-aware heads put
    // all A IoU channels ahead of the anchor blocks.
    let image_stride = c * stride;
    let iou_channels = if attrs.iou_aware { an * stride } else { 0 };
    let anchor_stride = (5 + classes) * stride;
    let bias = -0.5 * (attrs.scale_x_y - 1.0);
    let input_h = (attrs.downsample_ratio as usize * h) as f32;
    let input_w = (attrs.downsample_ratio as usize * w) as f32;
    let mut boxes = vec![0f32; n * box_num * 4];
    let mut scores = vec![0f32; n * box_num * classes];
    for i in 0..n {
        let img_h = img[2 * i];
        let img_w = img[2 * i + 1];
        for j in 0..an {
            let block = i * image_stride + iou_channels + j * anchor_stride;
            for k in 0..h {
                for l in 0..w {
                    let hw = k * w + l;
                    let entry = |e: usize| x[block + e * stride + hw];
                    let mut conf = sigmoid(entry(4));
                    if attrs.iou_aware {
                        let iou = sigmoid(x[i * image_stride + j * stride + hw]);
                        let f = attrs.iou_aware_factor;
                        conf = conf.powf((1.0 - f64::from(f)) as f32) * iou.powf(f);
                    }
                    if conf < attrs.conf_thresh {
                        continue;
                    }
                    let (iw, ih) = (img_w as f32, img_h as f32);
                    let cx =
                        (l as f32 + sigmoid(entry(0)) * attrs.scale_x_y + bias) * iw / w as f32;
                    let cy =
                        (k as f32 + sigmoid(entry(1)) * attrs.scale_x_y + bias) * ih / h as f32;
                    let bw = entry(2).exp() * anchors[2 * j] as f32 * iw / input_w;
                    let bh = entry(3).exp() * anchors[2 * j + 1] as f32 * ih / input_h;
                    let mut b = [cx - bw / 2.0, cy - bh / 2.0, cx + bw / 2.0, cy + bh / 2.0];
                    if attrs.clip_bbox {
                        b[0] = if b[0] > 0.0 { b[0] } else { 0.0 };
                        b[1] = if b[1] > 0.0 { b[1] } else { 0.0 };
                        let (xmax, ymax) = ((img_w - 1) as f32, (img_h - 1) as f32);
                        b[2] = if b[2] < xmax { b[2] } else { xmax };
                        b[3] = if b[3] < ymax { b[3] } else { ymax };
                    }
                    let row = i * box_num + j * stride + hw;
                    boxes[row * 4..row * 4 + 4].copy_from_slice(&b);
                    for (cls, s) in scores[row * classes..(row + 1) * classes]
                        .iter_mut()
                        .enumerate()
                    {
                        *s = conf * sigmoid(entry(5 + cls));
                    }
                }
            }
        }
    }
    Ok(vec![
        LibTensor::f32(vec![n, box_num, 4], boxes),
        LibTensor::f32(vec![n, box_num, classes], scores),
    ])
}

/// Paddle's sigmoid: `expf`, then the division in double, rounded once to f32.
fn sigmoid(x: f32) -> f32 {
    (1.0 / (1.0 + f64::from((-x).exp()))) as f32
}
