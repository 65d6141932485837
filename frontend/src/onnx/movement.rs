//! Data movement and indexing ops. Operands that older opsets gave as attributes (Slice bounds
//! before 10, Squeeze/Unsqueeze axes before 13, Pad pads before 11) become constant operands,
//! so the IR has one form per op.

use super::ctx::{non_negative, unlisted, Family, Mapped, NodeCtx};
use super::proto::tensor_proto::DataLocation;
use super::proto::TensorProto;
use super::tensor;
use temblor_ir::{DType, Op, PadMode, Scalar, ScatterReduction, SplitSizes, Weight};
use temblor_runtime::{bf16, f16};

pub(super) const FAMILY: Family = Family {
    constant_inputs: &[],
    ops: &[
        "Concat",
        "Reshape",
        "Transpose",
        "Split",
        "Slice",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Expand",
        "Tile",
        "Gather",
        "GatherElements",
        "GatherND",
        "ScatterND",
        "Shape",
        "Size",
        "ConstantOfShape",
        "Range",
        "Pad",
        "NonZero",
    ],
    map,
};

fn map(ctx: &NodeCtx) -> Result<Mapped, String> {
    let a = &ctx.attrs;
    Ok(match ctx.op_type {
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
        "Slice" => return slice(ctx),
        "Flatten" => Op::Flatten {
            axis: a.int("axis", 1)?,
        },
        "Squeeze" => return axes_operand(ctx, Op::Squeeze, false),
        "Unsqueeze" => return axes_operand(ctx, Op::Unsqueeze, true),
        "Expand" => Op::Expand,
        "Tile" => Op::Tile,
        "Gather" => Op::Gather {
            axis: a.int("axis", 0)?,
        },
        "GatherElements" => Op::GatherElements {
            axis: a.int("axis", 0)?,
        },
        "GatherND" => Op::GatherNd {
            batch_dims: a.usize("batch_dims", 0)?,
        },
        "ScatterND" => Op::ScatterNd {
            reduction: match a.string("reduction", "none")?.as_str() {
                "none" => ScatterReduction::None,
                "add" => ScatterReduction::Add,
                "mul" => ScatterReduction::Mul,
                "max" => ScatterReduction::Max,
                "min" => ScatterReduction::Min,
                r => {
                    return Err(format!(
                        "reduction '{r}' is not one of none, add, mul, max, min"
                    ))
                }
            },
        },
        "Shape" => Op::Shape {
            start: a.int("start", 0)?,
            end: a.get("end").map(|_| a.int("end", 0)).transpose()?,
        },
        "Size" => Op::Size,
        "ConstantOfShape" => Op::ConstantOfShape {
            value: match a.tensor("value")? {
                Some(t) => fill_value(t)?,
                None => Scalar {
                    dtype: DType::F32,
                    value: 0.0,
                },
            },
        },
        "Range" => Op::Range,
        "Pad" => return pad(ctx),
        "NonZero" => Op::NonZero,
        _ => return Err(unlisted(ctx)),
    }
    .into())
}

/// Split sizes come from input 1 (opset 13+) or the `split` attribute (before). Absent sizes
/// split equally; opset 18's `num_outputs` lets the last part be smaller, which only explicit
/// sizes can say, so those are computed here when the extent is known at import.
fn split(ctx: &NodeCtx) -> Result<Op, String> {
    let axis = ctx.attrs.int("axis", 0)?;
    let sizes = if ctx.opset >= 13 {
        match (ctx.present(1), ctx.constant(1)) {
            (true, Some(w)) => Some(
                w.to_i64()
                    .ok_or("input 1 ('split') is not an integer tensor")?,
            ),
            // Computed sizes stay an operand: shape inference reads them once they are
            // static, and the kernel at run time where they are not.
            (true, None) => {
                return Ok(Op::Split {
                    axis,
                    sizes: SplitSizes::Operand(ctx.n_outputs),
                })
            }
            (false, _) => None,
        }
    } else {
        ctx.attrs.ints("split")?
    };
    let sizes = match sizes {
        Some(v) => SplitSizes::Explicit(non_negative(&v, "split")?),
        None => equal_split(ctx, axis)?,
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

fn equal_split(ctx: &NodeCtx, axis: i64) -> Result<SplitSizes, String> {
    let parts = match ctx.attrs.get("num_outputs") {
        Some(_) => ctx.attrs.usize("num_outputs", 0)?,
        None => ctx.n_outputs,
    };
    let extent = ctx.dims(0).and_then(|d| {
        let r = d.len() as i64;
        let a = if axis < 0 { axis + r } else { axis };
        usize::try_from(a).ok().and_then(|a| d.get(a).copied())
    });
    Ok(match extent {
        Some(n) if parts > 0 && n % parts != 0 => {
            let chunk = n.div_ceil(parts);
            let sizes = (0..parts)
                .map(|i| n.saturating_sub(i * chunk).min(chunk))
                .collect();
            SplitSizes::Explicit(sizes)
        }
        _ => SplitSizes::Equal(parts),
    })
}

/// Slice 10+ takes starts, ends, axes and steps as inputs; Slice 1 had the first three as
/// attributes.
fn slice(ctx: &NodeCtx) -> Result<Mapped, String> {
    if ctx.opset >= 10 {
        return Ok(Op::Slice.into());
    }
    let a = &ctx.attrs;
    let starts = a.ints("starts")?.ok_or("attribute 'starts' is missing")?;
    let ends = a.ints("ends")?.ok_or("attribute 'ends' is missing")?;
    let mut operands = vec![(1, ints_weight(&starts)), (2, ints_weight(&ends))];
    if let Some(axes) = a.ints("axes")? {
        operands.push((3, ints_weight(&axes)));
    }
    Ok(Mapped {
        op: Op::Slice,
        operands,
    })
}

/// Squeeze and Unsqueeze took `axes` as an attribute before opset 13.
fn axes_operand(ctx: &NodeCtx, op: Op, required: bool) -> Result<Mapped, String> {
    if ctx.opset >= 13 {
        return Ok(op.into());
    }
    let operands = match ctx.attrs.ints("axes")? {
        Some(axes) => vec![(1, ints_weight(&axes))],
        None if required => return Err("attribute 'axes' is missing".into()),
        None => Vec::new(),
    };
    Ok(Mapped { op, operands })
}

/// Pad 11+ takes pads (and the constant value, and from 18 axes) as inputs; before, `pads` and
/// `value` were attributes.
fn pad(ctx: &NodeCtx) -> Result<Mapped, String> {
    let a = &ctx.attrs;
    let mode = match a.string("mode", "constant")?.as_str() {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" => PadMode::Wrap,
        m => {
            return Err(format!(
                "mode '{m}' is not one of constant, reflect, edge, wrap"
            ))
        }
    };
    let op = Op::Pad { mode };
    if ctx.opset >= 11 {
        return Ok(op.into());
    }
    let pads = a.ints("pads")?.ok_or("attribute 'pads' is missing")?;
    let mut operands = vec![(1, ints_weight(&pads))];
    if a.get("value").is_some() {
        operands.push((2, Weight::from_f32(vec![], &[a.float("value", 0.0)?])));
    }
    Ok(Mapped { op, operands })
}

fn ints_weight(v: &[i64]) -> Weight {
    Weight::from_i64(vec![v.len()], v)
}

/// ConstantOfShape's `value`: a one-element tensor whose dtype is the output's.
fn fill_value(t: &TensorProto) -> Result<Scalar, String> {
    let dtype = tensor::dtype(t.data_type).ok_or_else(|| {
        format!(
            "attribute 'value' has unsupported type {}",
            tensor::dtype_name(t.data_type)
        )
    })?;
    if t.dims.iter().product::<i64>() != 1 {
        return Err(format!(
            "attribute 'value' has shape {:?}, expected one element",
            t.dims
        ));
    }
    if t.data_location == DataLocation::External as i32 {
        return Err("attribute 'value' keeps its data in an external file".into());
    }
    let value = if t.raw_data.is_empty() {
        typed_value(t, dtype)
    } else {
        raw_value(&t.raw_data, dtype)
    };
    let value = value.ok_or("attribute 'value' holds no element")?;
    Ok(Scalar { dtype, value })
}

/// The first element of little-endian `bytes` of `dtype`.
fn raw_value(bytes: &[u8], dtype: DType) -> Option<f64> {
    fn le<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
        b.get(..N)?.try_into().ok()
    }
    Some(match dtype {
        DType::F32 => f32::from_le_bytes(le(bytes)?) as f64,
        DType::F16 => f16::from_le_bytes(le(bytes)?).to_f64(),
        DType::BF16 => bf16::from_le_bytes(le(bytes)?).to_f64(),
        DType::F64 => f64::from_le_bytes(le(bytes)?),
        DType::I8 => i8::from_le_bytes(le(bytes)?) as f64,
        DType::U8 => u8::from_le_bytes(le(bytes)?) as f64,
        DType::I16 => i16::from_le_bytes(le(bytes)?) as f64,
        DType::U16 => u16::from_le_bytes(le(bytes)?) as f64,
        DType::I32 => i32::from_le_bytes(le(bytes)?) as f64,
        DType::U32 => u32::from_le_bytes(le(bytes)?) as f64,
        DType::I64 => i64::from_le_bytes(le(bytes)?) as f64,
        DType::U64 => u64::from_le_bytes(le(bytes)?) as f64,
        DType::Bool => (*bytes.first()? != 0) as u8 as f64,
    })
}

/// The first element of the typed field ONNX keeps `dtype` in.
fn typed_value(t: &TensorProto, dtype: DType) -> Option<f64> {
    Some(match dtype {
        DType::F32 => *t.float_data.first()? as f64,
        DType::F64 => *t.double_data.first()?,
        DType::I64 => *t.int64_data.first()? as f64,
        DType::U32 | DType::U64 => *t.uint64_data.first()? as f64,
        DType::F16 => f16::from_bits(*t.int32_data.first()? as u16).to_f64(),
        DType::BF16 => bf16::from_bits(*t.int32_data.first()? as u16).to_f64(),
        DType::U16 => *t.int32_data.first()? as u16 as f64,
        DType::I16 => *t.int32_data.first()? as i16 as f64,
        DType::I8 => *t.int32_data.first()? as i8 as f64,
        DType::U8 => *t.int32_data.first()? as u8 as f64,
        DType::Bool => (*t.int32_data.first()? != 0) as u8 as f64,
        DType::I32 => *t.int32_data.first()? as f64,
    })
}
