//! Detection ops: the ops_lib operators (yolo_box, the NMS variants, proposal generation), which
//! keep Paddle's semantics as `Op::Lib` with their attributes parsed here, once, and the ops with
//! a canonical equivalent (roi_align, grid_sampler, nms).

use super::ctx::{Ctx, Family, Res};
use temblor_ir::{DType, GridSampleMode, GridSamplePadding, LibOp, Op, RoiAlignAttrs, ValueRef};

pub(super) const FAMILY: Family = Family {
    ops: &["roi_align", "grid_sampler", "nms"],
    map,
};

fn map(c: &mut Ctx) -> Res {
    match c.op_type() {
        "roi_align" => roi_align(c),
        "nms" => nms(c),
        _ => grid_sampler(c),
    }
}

/// Paddle's class-agnostic `nms` keeps boxes `[N,4]` greedily in their given order, dropping
/// any whose IoU with a kept box is over the threshold, and answers the kept indices. That is
/// NonMaxSuppression of one class whose scores fall with the index (N, N-1, ..., 1), with no
/// cap on the count: its selected `(batch, class, box)` triples, column 2.
fn nms(c: &mut Ctx) -> Res {
    let boxes = c.input("Boxes")?;
    let threshold = c.attrs.float_or("iou_threshold", 0.3)?;
    let n = c.add(
        Op::Shape {
            start: 0,
            end: Some(1),
        },
        &[boxes],
    );
    let first = c.const_i64(vec![], &[0]);
    let count = c.add(Op::Gather { axis: 0 }, &[n, first]);
    let zero = c.const_i64(vec![], &[0]);
    let step = c.const_i64(vec![], &[-1]);
    let falling = c.add(Op::Range, &[count, zero, step]);
    let falling = c.add(Op::Cast { to: DType::F32 }, &[falling]);
    let lead = c.const_i64(vec![2], &[0, 1]);
    let scores = c.add(Op::Unsqueeze, &[falling, lead]);
    let batch = c.const_i64(vec![1], &[0]);
    let boxes = c.add(Op::Unsqueeze, &[boxes, batch]);
    let iou = c.scalar(DType::F32, threshold as f64)?;
    let picked = c.add(
        Op::NonMaxSuppression {
            center_point_box: false,
        },
        &[boxes, scores, n, iou],
    );
    let column = c.const_i64(vec![], &[2]);
    let keep = c.add(Op::Gather { axis: 1 }, &[picked, column]);
    c.bind("KeepBoxesIdxs", keep)
}

/// Paddle's roi_align gives per-image RoI counts where the IR (like ONNX) wants a batch index
/// per RoI; ops_lib's `rois_batch_index` converts.
fn roi_align(c: &mut Ctx) -> Res {
    let x = c.input("X")?;
    let rois = c.input("ROIs")?;
    let index = match c.opt_input("RoisNum")? {
        Some(num) => library(c, LibOp::RoisBatchIndex, &[Some(num)])[0],
        None => return Err("roi_align without RoisNum (LoD RoIs) is not supported".into()),
    };
    let size = |c: &Ctx, name: &str| -> Res<usize> {
        let v = c.attrs.int(name)?;
        usize::try_from(v)
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| format!("{name} {v} is not positive").into())
    };
    let ratio = c.attrs.int_or("sampling_ratio", -1)?;
    let attrs = RoiAlignAttrs {
        max: false,
        output_height: size(c, "pooled_height")?,
        output_width: size(c, "pooled_width")?,
        sampling_ratio: ratio.max(0) as usize,
        spatial_scale: c.attrs.float_or("spatial_scale", 1.0)?,
        half_pixel: c.attrs.bool_or("aligned", false)?,
    };
    let y = c.add(Op::RoiAlign(attrs), &[x, rois, index]);
    c.bind("Out", y)
}

fn grid_sampler(c: &mut Ctx) -> Res {
    let x = c.input("X")?;
    let grid = c.input("Grid")?;
    let mode = match c.attrs.string_or("mode", "bilinear")?.as_str() {
        "bilinear" => GridSampleMode::Linear,
        "nearest" => GridSampleMode::Nearest,
        other => return Err(format!("grid_sampler mode '{other}' is not supported").into()),
    };
    let padding = match c.attrs.string_or("padding_mode", "zeros")?.as_str() {
        "zeros" => GridSamplePadding::Zeros,
        "border" => GridSamplePadding::Border,
        "reflection" => GridSamplePadding::Reflection,
        other => {
            return Err(format!("grid_sampler padding_mode '{other}' is not supported").into())
        }
    };
    let y = c.add(
        Op::GridSample {
            mode,
            padding,
            align_corners: c.attrs.bool_or("align_corners", true)?,
        },
        &[x, grid],
    );
    c.bind("Output", y)
}

/// Adds an ops_lib node with the given inputs; returns its outputs.
fn library(c: &mut Ctx, op: LibOp, inputs: &[Option<ValueRef>]) -> Vec<ValueRef> {
    let outputs = op.output_count();
    let id = c.node(Op::Lib(op), inputs, outputs);
    (0..outputs).map(|p| ValueRef::new(id, p)).collect()
}

/// An ops_lib operator, connected in the order of its declared Paddle parameters.
pub(super) fn library_op(c: &mut Ctx) -> Res {
    let lib = LibOp::parse(c.op_type(), &c.attrs.source())?;
    let mut inputs = Vec::new();
    for &(param, optional) in lib.inputs() {
        let v = c.opt_input(param)?;
        if v.is_none() && !optional {
            return Err(format!("input '{param}' is missing").into());
        }
        inputs.push(v);
    }
    let params = lib.outputs();
    let values = library(c, lib, &inputs);
    let mut at = 0;
    for (param, n) in params {
        let bound = c.output_count(param);
        if bound > 0 {
            if bound != n {
                return Err(format!("output '{param}' has {bound} arguments, expected {n}").into());
            }
            c.bind_all(param, &values[at..at + n])?;
        }
        at += n;
    }
    Ok(())
}
