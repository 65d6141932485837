//! ONNX node -> canonical op, for every op but Constant (which the importer turns into a weight)
//! and the convolution family (conv.rs). Operands the IR keeps as attributes (Clip bounds, Resize
//! scales or sizes, Split sizes) must be constants here; the importer then connects only the
//! ports the op's arity allows, leaving those Constant nodes unused.

use super::attrs::Attrs;
use super::conv;
use temblor_ir::{
    BinaryOp, DType, Graph, Op, ResizeAttrs, ResizeCoordinate, ResizeMode, ResizeNearest,
    SplitSizes, UnaryOp, ValueRef, Weight,
};

/// What an op mapping may look at: the node's attributes and inputs, and the graph built so far.
pub(super) struct NodeCtx<'a> {
    pub op_type: &'a str,
    /// The model's default-domain opset.
    pub opset: i64,
    pub attrs: Attrs<'a>,
    /// Inputs by ONNX position; `None` for an omitted optional input.
    pub inputs: &'a [Option<ValueRef>],
    /// ONNX outputs, trailing omitted ones left out.
    pub n_outputs: usize,
    pub g: &'a Graph,
    /// Static extents of input 0, when known at import.
    pub x_dims: Option<Vec<usize>>,
}

impl NodeCtx<'_> {
    pub fn present(&self, i: usize) -> bool {
        self.inputs.get(i).copied().flatten().is_some()
    }

    pub fn constant(&self, i: usize) -> Option<&Weight> {
        self.inputs
            .get(i)
            .copied()
            .flatten()
            .and_then(|v| self.g.constant(v))
    }
}

pub(super) fn map(ctx: &NodeCtx) -> Result<Op, String> {
    let a = &ctx.attrs;
    Ok(match ctx.op_type {
        "Conv" => conv::conv(ctx)?,
        "ConvTranspose" => conv::conv_transpose(ctx)?,
        "BatchNormalization" => conv::batch_norm(ctx)?,
        "Add" => Op::Binary(BinaryOp::Add),
        "Sub" => Op::Binary(BinaryOp::Sub),
        "Mul" => Op::Binary(BinaryOp::Mul),
        "Div" => Op::Binary(BinaryOp::Div),
        "Relu" => Op::Unary(UnaryOp::Relu),
        "Sigmoid" => Op::Unary(UnaryOp::Sigmoid),
        "Identity" => Op::Unary(UnaryOp::Identity),
        "HardSigmoid" => Op::HardSigmoid {
            alpha: a.float("alpha", 0.2)?,
            beta: a.float("beta", 0.5)?,
        },
        "Clip" => Op::Clip {
            min: bound(ctx, 1, "min", f32::NEG_INFINITY)?,
            max: bound(ctx, 2, "max", f32::INFINITY)?,
        },
        "GlobalAveragePool" => Op::GlobalAveragePool,
        "Resize" => Op::Resize(resize(ctx)?),
        "Concat" => Op::Concat {
            axis: a.get("axis").ok_or("attribute 'axis' is missing")?.i,
        },
        "Reshape" => Op::Reshape {
            allowzero: a.int("allowzero", 0)? != 0,
        },
        // An empty perm means "reverse the axes", resolved by shape inference once the rank is
        // known (for a rank-0 tensor both readings agree).
        "Transpose" => Op::Transpose {
            perm: match a.ints("perm")? {
                Some(p) => non_negative(&p, "perm")?,
                None => Vec::new(),
            },
        },
        "Split" => split(ctx)?,
        other => return Err(format!("op {other} has no mapping")),
    })
}

fn non_negative(v: &[i64], what: &str) -> Result<Vec<usize>, String> {
    v.iter()
        .map(|&x| usize::try_from(x).map_err(|_| format!("{what} holds {x}, expected >= 0")))
        .collect()
}

/// A Clip bound: absent means unbounded; present must be a constant scalar.
fn bound(ctx: &NodeCtx, i: usize, what: &str, absent: f32) -> Result<f32, String> {
    if !ctx.present(i) {
        return Ok(absent);
    }
    let w = ctx.constant(i).ok_or_else(|| {
        format!("input {i} ('{what}') is computed at run time; only a constant is supported")
    })?;
    match floats(w)?[..] {
        [v] => Ok(v),
        _ => Err(format!(
            "input {i} ('{what}') has shape {:?}, expected a scalar",
            w.dims
        )),
    }
}

fn floats(w: &Weight) -> Result<Vec<f32>, String> {
    if let Some(v) = w.to_f32() {
        return Ok(v);
    }
    if let Some(v) = w.to_i64() {
        return Ok(v.into_iter().map(|x| x as f32).collect());
    }
    if w.dtype == DType::F64 {
        return Ok(w
            .data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect());
    }
    Err(format!(
        "a {} constant cannot be read as numbers here",
        w.dtype
    ))
}

/// Resize 11 to 13: inputs X, roi, scales, sizes; one of scales and sizes is a non-empty
/// constant.
fn resize(ctx: &NodeCtx) -> Result<ResizeAttrs, String> {
    let a = &ctx.attrs;
    let mode = match a.string("mode", "nearest")?.as_str() {
        "nearest" => ResizeMode::Nearest,
        "linear" => ResizeMode::Linear,
        m => return Err(format!("mode '{m}' is not supported (nearest, linear)")),
    };
    let coordinate = match a
        .string("coordinate_transformation_mode", "half_pixel")?
        .as_str()
    {
        "half_pixel" => ResizeCoordinate::HalfPixel,
        "pytorch_half_pixel" => ResizeCoordinate::PytorchHalfPixel,
        "align_corners" => ResizeCoordinate::AlignCorners,
        "asymmetric" => ResizeCoordinate::Asymmetric,
        m => {
            return Err(format!(
                "coordinate_transformation_mode '{m}' is not supported"
            ))
        }
    };
    let nearest = match a.string("nearest_mode", "round_prefer_floor")?.as_str() {
        "round_prefer_floor" => ResizeNearest::RoundPreferFloor,
        "round_prefer_ceil" => ResizeNearest::RoundPreferCeil,
        "floor" => ResizeNearest::Floor,
        "ceil" => ResizeNearest::Ceil,
        m => return Err(format!("nearest_mode '{m}' is not supported")),
    };
    let nonempty = |i: usize| ctx.constant(i).filter(|w| w.element_count() > 0);
    let (scales, sizes) = if let Some(w) = nonempty(3) {
        let v = w
            .to_i64()
            .ok_or("input 3 ('sizes') is not an integer tensor")?;
        (None, Some(non_negative(&v, "sizes")?))
    } else if let Some(w) = nonempty(2) {
        (Some(floats(w)?), None)
    } else {
        return Err("scales or sizes must be a non-empty constant input".into());
    };
    Ok(ResizeAttrs {
        mode,
        coordinate,
        nearest,
        scales,
        sizes,
    })
}

/// Split sizes come from input 1 (opset 13+) or the `split` attribute (before); absent means an
/// equal split, stored as all zeros until shape inference knows the axis extent.
fn split(ctx: &NodeCtx) -> Result<Op, String> {
    let axis = ctx.attrs.int("axis", 0)?;
    let sizes = if ctx.opset >= 13 {
        match ctx.present(1) {
            true => {
                let w = ctx.constant(1).ok_or(
                    "input 1 ('split') is computed at run time; only a constant is supported",
                )?;
                Some(
                    w.to_i64()
                        .ok_or("input 1 ('split') is not an integer tensor")?,
                )
            }
            false => None,
        }
    } else {
        ctx.attrs.ints("split")?
    };
    let sizes = match sizes {
        Some(v) => SplitSizes::Explicit(non_negative(&v, "split")?),
        None => SplitSizes::Equal(ctx.n_outputs),
    };
    if sizes.count() != ctx.n_outputs || ctx.n_outputs == 0 {
        return Err(format!(
            "{} split sizes for {} outputs",
            sizes.count(),
            ctx.n_outputs
        ));
    }
    Ok(Op::Split { axis, sizes })
}
