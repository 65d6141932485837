//! yolo_box as elementwise ONNX: the head `[N, A*(5+C), H, W]` viewed as `[N, A, 5+C, H*W]`,
//! decoded with the grid and anchors as constants, in the order of operations of ops_lib's
//! kernel, and positions under `conf_thresh` zeroed with a Where.

use super::super::lower::Lower;
use super::Sub;
use temblor_ir::{DType, YoloBoxAttrs};

pub(super) fn lower(s: &mut Sub, cx: &Lower, a: &YoloBoxAttrs) -> Result<(), String> {
    let x = cx.in_type(0)?;
    if x.dtype != DType::F32 {
        return Err(format!("its input is {}, not float32", x.dtype));
    }
    let dims = x.shape.dims();
    let (Some(h), Some(w)) = (
        dims.get(2).and_then(|d| d.known()),
        dims.get(3).and_then(|d| d.known()),
    ) else {
        return Err("the head's height and width are not known at compile time".into());
    };
    let anchors = anchors(s, cx, a)?;
    let an = anchors.count;
    let (hw, classes, per) = (h * w, a.class_num, 5 + a.class_num as i64);
    let (an_i, hw_i) = (an as i64, hw as i64);

    let head = if a.iou_aware {
        s.slice("head", &cx.ins[0], 1, an_i, an_i + an_i * per)
    } else {
        cx.ins[0].clone()
    };
    let head = s.reshape("entries", &head, &[0, an_i, per, hw_i]);
    let entry = |s: &mut Sub, what: &str, e: i64| s.slice(what, &head, 2, e, e + 1);
    let (tx, ty, tw, th) = (
        entry(s, "tx", 0),
        entry(s, "ty", 1),
        entry(s, "tw", 2),
        entry(s, "th", 3),
    );
    let objectness = entry(s, "objectness", 4);
    let mut conf = s.op("Sigmoid", "conf", &[&objectness], vec![]);
    if a.iou_aware {
        let iou = s.slice("iou_logit", &cx.ins[0], 1, 0, an_i);
        let iou = s.reshape("iou_entries", &iou, &[0, an_i, 1, hw_i]);
        let iou = s.op("Sigmoid", "iou", &[&iou], vec![]);
        let f = a.iou_aware_factor;
        let conf_power = s.f32("conf_power", (1.0 - f64::from(f)) as f32);
        let iou_power = s.f32("iou_power", f);
        let c = s.binary("Pow", "conf_weighted", &conf, &conf_power);
        let i = s.binary("Pow", "iou_weighted", &iou, &iou_power);
        conf = s.binary("Mul", "conf_iou", &c, &i);
    }

    let img = s.cast("img_size", &cx.ins[1], DType::F32);
    let img_h = s.slice("img_h_column", &img, 1, 0, 1);
    let img_h = s.reshape("img_h", &img_h, &[-1, 1, 1, 1]);
    let img_w = s.slice("img_w_column", &img, 1, 1, 2);
    let img_w = s.reshape("img_w", &img_w, &[-1, 1, 1, 1]);
    let grid_x: Vec<f32> = (0..hw).map(|i| (i % w) as f32).collect();
    let grid_y: Vec<f32> = (0..hw).map(|i| (i / w) as f32).collect();
    let grid_x = s.f32s("grid_x", &[1, 1, 1, hw], &grid_x);
    let grid_y = s.f32s("grid_y", &[1, 1, 1, hw], &grid_y);
    let scale = s.f32("scale_x_y", a.scale_x_y);
    let bias = s.f32("bias", -0.5 * (a.scale_x_y - 1.0));
    let ratio = a.downsample_ratio as usize;
    let center = |s: &mut Sub, axis: &str, t: &str, grid: &str, img: &str, cells: usize| {
        let sig = s.op("Sigmoid", &format!("{axis}_sigmoid"), &[t], vec![]);
        let scaled = s.binary("Mul", &format!("{axis}_scaled"), &sig, &scale);
        let at = s.binary("Add", &format!("{axis}_cell"), grid, &scaled);
        let at = s.binary("Add", &format!("{axis}_biased"), &at, &bias);
        let at = s.binary("Mul", &format!("{axis}_image"), &at, img);
        let cells = s.f32(&format!("{axis}_cells"), cells as f32);
        s.binary("Div", &format!("c{axis}"), &at, &cells)
    };
    let cx_ = center(s, "x", &tx, &grid_x, &img_w, w);
    let cy_ = center(s, "y", &ty, &grid_y, &img_h, h);
    let extent = |s: &mut Sub, what: &str, t: &str, anchor: &str, img: &str, input: usize| {
        let e = s.op("Exp", &format!("{what}_exp"), &[t], vec![]);
        let e = s.binary("Mul", &format!("{what}_anchor"), &e, anchor);
        let e = s.binary("Mul", &format!("{what}_image"), &e, img);
        let input = s.f32(&format!("{what}_input"), input as f32);
        let e = s.binary("Div", what, &e, &input);
        let two = s.f32(&format!("{what}_two"), 2.0);
        s.binary("Div", &format!("{what}_half"), &e, &two)
    };
    let half_w = extent(s, "bw", &tw, &anchors.w, &img_w, ratio * w);
    let half_h = extent(s, "bh", &th, &anchors.h, &img_h, ratio * h);
    let mut x1 = s.binary("Sub", "x1", &cx_, &half_w);
    let mut y1 = s.binary("Sub", "y1", &cy_, &half_h);
    let mut x2 = s.binary("Add", "x2", &cx_, &half_w);
    let mut y2 = s.binary("Add", "y2", &cy_, &half_h);
    if a.clip_bbox {
        let zero = s.f32("clip_low", 0.0);
        let one = s.f32("one", 1.0);
        let x_max = s.binary("Sub", "x_max", &img_w, &one);
        let y_max = s.binary("Sub", "y_max", &img_h, &one);
        x1 = s.binary("Max", "x1_clipped", &x1, &zero);
        y1 = s.binary("Max", "y1_clipped", &y1, &zero);
        x2 = s.binary("Min", "x2_clipped", &x2, &x_max);
        y2 = s.binary("Min", "y2_clipped", &y2, &y_max);
    }

    let thresh = s.f32("conf_thresh", a.conf_thresh);
    let low = s.binary("Less", "below_thresh", &conf, &thresh);
    let zero = s.f32("zero", 0.0);
    let boxes = s.concat("corners", &[&x1, &y1, &x2, &y2], 2);
    let boxes = s.op("Where", "boxes_kept", &[&low, &zero, &boxes], vec![]);
    let boxes = s.transpose("boxes_last", &boxes, &[0, 1, 3, 2]);
    let shape = s.i64s("boxes_shape", &[0, -1, 4]);
    s.op_into(
        "Reshape",
        "boxes",
        &[&boxes, &shape],
        &[&cx.outs[0]],
        vec![],
    );

    let logits = s.slice("class_logits", &head, 2, 5, per);
    let probs = s.op("Sigmoid", "class_probs", &[&logits], vec![]);
    let scores = s.binary("Mul", "class_scores", &conf, &probs);
    let scores = s.op("Where", "scores_kept", &[&low, &zero, &scores], vec![]);
    let scores = s.transpose("scores_last", &scores, &[0, 1, 3, 2]);
    let shape = s.i64s("scores_shape", &[0, -1, classes as i64]);
    s.op_into(
        "Reshape",
        "scores",
        &[&scores, &shape],
        &[&cx.outs[1]],
        vec![],
    );
    Ok(())
}

/// Anchor widths and heights as `[1, A, 1, 1]` float values.
struct Anchors {
    count: usize,
    w: String,
    h: String,
}

fn anchors(s: &mut Sub, cx: &Lower, a: &YoloBoxAttrs) -> Result<Anchors, String> {
    if let Some(v) = &a.anchors {
        let count = v.len() / 2;
        let pick = |k: usize| -> Vec<f32> { v.chunks(2).map(|p| p[k] as f32).collect() };
        let (w, h) = (pick(0), pick(1));
        return Ok(Anchors {
            count,
            w: s.f32s("anchor_w", &[1, count, 1, 1], &w),
            h: s.f32s("anchor_h", &[1, count, 1, 1], &h),
        });
    }
    let t = cx.in_type(2)?;
    let count = t
        .shape
        .dims()
        .first()
        .and_then(|d| d.known())
        .ok_or("the anchor count is not known at compile time")?;
    let all = s.cast("anchors", &cx.ins[2], DType::F32);
    let w = s.slice("anchor_w_column", &all, 1, 0, 1);
    let h = s.slice("anchor_h_column", &all, 1, 1, 2);
    let shape = [1, count as i64, 1, 1];
    Ok(Anchors {
        count,
        w: s.reshape("anchor_w", &w, &shape),
        h: s.reshape("anchor_h", &h, &shape),
    })
}
