//! QuantizeLinear and DequantizeLinear, per tensor or per axis. QuantizeLinear's
//! `output_dtype` (opset 21) becomes a zero zero-point operand of that dtype, since the IR
//! reads the output dtype from the zero point.

use super::ctx::{unlisted, Family, Mapped, NodeCtx};
use super::tensor::{dtype, dtype_name};
use bytes::Bytes;
use temblor_ir::{DType, Op, Weight};

pub(super) const FAMILY: Family = Family {
    constant_inputs: &[],
    ops: &["QuantizeLinear", "DequantizeLinear"],
    map,
};

fn map(ctx: &NodeCtx) -> Result<Mapped, String> {
    if ctx.attrs.int("block_size", 0)? != 0 {
        return Err("blocked quantization (block_size) is not supported".into());
    }
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
