//! QuantizeLinear and DequantizeLinear, per tensor or per axis. QuantizeLinear's
//! `output_dtype` (opset 21) becomes a zero zero-point operand of that dtype, since the IR
//! reads the output dtype from the zero point. Blocked quantization (opset 21 `block_size`: one
//! scale per `block_size` consecutive elements along `axis`) expands to elementwise arithmetic
//! over scales repeated to the input's shape ([`blocked`]).

use super::ctx::{unlisted, Family, Mapped, NodeCtx};
use super::expand::{Builder, Expansion, Src};
use super::tensor::{dtype, dtype_name};
use bytes::Bytes;
use temblor_ir::{BinaryOp, DType, Op, UnaryOp, Weight};

pub(super) const FAMILY: Family = Family {
    constant_inputs: &[],
    ops: &["QuantizeLinear", "DequantizeLinear"],
    map,
};

fn map(ctx: &NodeCtx) -> Result<Mapped, String> {
    let axis = ctx.attrs.int("axis", 1)?;
    match ctx.op_type {
        "QuantizeLinear" => quantize(ctx, axis),
        "DequantizeLinear" => dequantize(ctx, axis),
        _ => Err(unlisted(ctx)),
    }
}

/// The dtype an `output_dtype` attribute names, if it is set.
fn output_dtype(ctx: &NodeCtx) -> Result<Option<DType>, String> {
    match ctx.attrs.int("output_dtype", 0)? {
        0 => Ok(None),
        code => dtype(code as i32)
            .map(Some)
            .ok_or_else(|| format!("output_dtype {} is not supported", dtype_name(code as i32))),
    }
}

fn quantize(ctx: &NodeCtx, axis: i64) -> Result<Mapped, String> {
    if ctx.attrs.int("precision", 0)? != 0 {
        return Err("attribute 'precision' is not supported".into());
    }
    let op = Op::QuantizeLinear {
        axis,
        saturate: ctx.attrs.int("saturate", 1)? != 0,
    };
    let Some(want) = output_dtype(ctx)? else {
        return Ok(op.into());
    };
    // A zero point given alongside has that dtype already (the spec requires it).
    if ctx.present(2) {
        return Ok(op.into());
    }
    let zero = Weight {
        dtype: want,
        dims: Vec::new(),
        data: Bytes::from(vec![0u8; want.size_bytes()]),
    };
    Ok(Mapped {
        op,
        operands: vec![(2, zero)],
    })
}

fn dequantize(ctx: &NodeCtx, axis: i64) -> Result<Mapped, String> {
    if let Some(want) = output_dtype(ctx)? {
        let scale = ctx.constant(1).map(|w| w.dtype);
        if scale != Some(want) {
            return Err(format!(
                "output_dtype {want} is supported only as the dtype of a constant scale"
            ));
        }
    }
    Ok(Op::DequantizeLinear { axis }.into())
}

/// Whether the node quantizes blockwise (its expansion is [`blocked`]).
pub(super) fn is_blocked(ctx: &NodeCtx) -> Result<bool, String> {
    Ok(ctx.attrs.int("block_size", 0)? != 0)
}

/// Blocked QuantizeLinear or DequantizeLinear, as the spec's arithmetic over scales (and zero
/// points) repeated `block_size` times along the axis and cut to the input's extent:
/// `saturate(round(x / s) + z)` and `(x - z) * s`. Needs the input's and the scale's extents.
pub(super) fn blocked(ctx: &NodeCtx) -> Result<Expansion, String> {
    let block = ctx.attrs.usize("block_size", 0)?;
    let x_dims = ctx
        .dims(0)
        .ok_or("blocked quantization needs the input's extents, which are not known at import")?;
    let s_dims = ctx
        .dims(1)
        .ok_or("blocked quantization needs the scale's extents, which are not known at import")?;
    let rank = x_dims.len() as i64;
    let axis = ctx.attrs.int("axis", 1)?;
    let axis = usize::try_from(if axis < 0 { axis + rank } else { axis })
        .ok()
        .filter(|&a| a < x_dims.len() && s_dims.len() == x_dims.len())
        .ok_or_else(|| format!("axis {axis} does not fit an input of rank {rank}"))?;
    if s_dims[axis].saturating_mul(block) < x_dims[axis] {
        return Err(format!(
            "{} blocks of {block} do not cover the axis extent {}",
            s_dims[axis], x_dims[axis]
        ));
    }
    let mut b = Builder::default();
    let repeat = |b: &mut Builder, v: Src| {
        let inner = b.i64s(&[axis as i64 + 1]);
        let v = b.op(Op::Unsqueeze, &[v, inner]);
        let mut wide: Vec<i64> = s_dims.iter().map(|&d| d as i64).collect();
        wide.insert(axis + 1, block as i64);
        let wide = b.i64s(&wide);
        let v = b.op(Op::Expand, &[v, wide]);
        let mut flat: Vec<i64> = s_dims.iter().map(|&d| d as i64).collect();
        flat[axis] *= block as i64;
        let flat = b.i64s(&flat);
        let v = b.op(Op::Reshape { allowzero: false }, &[v, flat]);
        let (start, end, axes) = (
            b.i64s(&[0]),
            b.i64s(&[x_dims[axis] as i64]),
            b.i64s(&[axis as i64]),
        );
        b.op(Op::Slice, &[v, start, end, axes])
    };
    let (x, scale) = (Src::Input(0), repeat(&mut b, Src::Input(1)));
    let zero = ctx.present(2).then(|| repeat(&mut b, Src::Input(2)));
    let out = if ctx.op_type == "DequantizeLinear" {
        let mut v = b.op(Op::CastLike, &[x, scale]);
        if let Some(z) = zero {
            let z = b.op(Op::CastLike, &[z, scale]);
            v = b.op(Op::Binary(BinaryOp::Sub), &[v, z]);
        }
        b.op(Op::Binary(BinaryOp::Mul), &[v, scale])
    } else {
        let to = match (output_dtype(ctx)?, ctx.inputs.get(2).copied().flatten()) {
            (Some(to), _) => to,
            (None, Some(z)) => match ctx.g.node(z.node).op {
                Op::Input { .. } | Op::Constant { .. } => ctx.g.value_type(z).dtype,
                _ => return Err("a computed zero point's dtype is not known at import".into()),
            },
            (None, None) => DType::U8,
        };
        let (lo, hi) = match to {
            DType::U8 => (0.0, 255.0),
            DType::I8 => (-128.0, 127.0),
            DType::U16 => (0.0, 65535.0),
            DType::I16 => (-32768.0, 32767.0),
            other => return Err(format!("blocked quantization to {other} is not supported")),
        };
        let v = b.op(Op::Binary(BinaryOp::Div), &[x, scale]);
        let mut v = b.op(Op::Unary(UnaryOp::Round), &[v]);
        if let Some(z) = zero {
            let z = b.op(Op::CastLike, &[z, x]);
            v = b.op(Op::Binary(BinaryOp::Add), &[v, z]);
        }
        let (lo, hi) = (b.scalar_like(lo, x), b.scalar_like(hi, x));
        let v = b.op(Op::Binary(BinaryOp::Max), &[v, lo]);
        let v = b.op(Op::Binary(BinaryOp::Min), &[v, hi]);
        b.op(Op::Cast { to }, &[v])
    };
    Ok(b.finish(vec![out]))
}
