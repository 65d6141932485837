//! Tensor-creation ops: shape, range, the fills, assign_value and assign.

use super::ctx::{Ctx, Family, Res};
use super::movement::{constant, fill, ints, norm_axis, shape_of, Ints};
use super::params;
use temblor_ir::{DType, Op, Weight};

pub(super) const FAMILY: Family = Family {
    ops: &[
        "shape",
        "range",
        "fill_constant",
        "fill_any_like",
        "fill_constant_batch_size_like",
        "assign_value",
        "assign",
    ],
    map,
};

fn map(c: &mut Ctx) -> Res {
    match c.op_type() {
        "shape" => {
            // Paddle's shape op answers int32; the IR's Shape answers int64.
            let x = c.input("Input")?;
            let s = shape_of(c, x, 0, None);
            let y = c.add(Op::Cast { to: DType::I32 }, &[s]);
            c.bind("Out", y)
        }
        "range" => {
            let ins = [c.input("Start")?, c.input("End")?, c.input("Step")?];
            let y = c.add(Op::Range, &ins);
            c.bind("Out", y)
        }
        "fill_constant" => fill_constant(c),
        "fill_any_like" => {
            let x = c.input("X")?;
            let code = c.attrs.int_or("dtype", -1)?;
            let dtype = match code {
                -1 => c.declared_dtype("X")?,
                code => params::dtype(code as i32)?,
            };
            let value = c.attrs.float_or("value", 0.0)? as f64;
            let shape = shape_of(c, x, 0, None);
            let y = fill(c, shape, dtype, value);
            c.bind("Out", y)
        }
        "fill_constant_batch_size_like" => fill_batch_size_like(c),
        "assign_value" => assign_value(c),
        "assign" => {
            let x = c.input("X")?;
            c.bind("Out", x)
        }
        other => Err(format!("{other} is listed but not mapped").into()),
    }
}

/// A fill value: `str_value` when given (it carries what a float attribute cannot), else `value`.
fn fill_value(c: &Ctx) -> Res<f64> {
    let s = c.attrs.string_or("str_value", "")?;
    if s.is_empty() {
        return Ok(c.attrs.float_or("value", 0.0)? as f64);
    }
    s.trim()
        .parse::<f64>()
        .map_err(|_| format!("str_value '{s}' is not a number").into())
}

/// A weight of `dims` holding `value` everywhere.
fn filled(dtype: DType, dims: Vec<usize>, value: f64) -> Result<Weight, String> {
    let one: Vec<u8> = match dtype {
        DType::F32 => (value as f32).to_le_bytes().to_vec(),
        DType::F64 => value.to_le_bytes().to_vec(),
        DType::I64 => (value as i64).to_le_bytes().to_vec(),
        DType::I32 => (value as i32).to_le_bytes().to_vec(),
        DType::I16 => (value as i16).to_le_bytes().to_vec(),
        DType::I8 => (value as i8).to_le_bytes().to_vec(),
        DType::U8 => vec![value as u8],
        DType::Bool => vec![(value != 0.0) as u8],
        other => return Err(format!("a {other} fill is not supported")),
    };
    let count: usize = dims.iter().product();
    Ok(Weight {
        dtype,
        dims,
        data: one.repeat(count).into(),
    })
}

fn fill_constant(c: &mut Ctx) -> Res {
    if c.has_input("ValueTensor") {
        return Err("fill_constant with a ValueTensor input is not supported".into());
    }
    let dtype = params::dtype(c.attrs.int_or("dtype", 5)? as i32)?;
    let value = fill_value(c)?;
    let shape = ints(c, Some("ShapeTensorList"), "ShapeTensor", "shape")?
        .unwrap_or(Ints::Const(Vec::new()));
    let y = match shape {
        Ints::Const(dims) => {
            let dims = dims
                .iter()
                .map(|&d| usize::try_from(d).map_err(|_| format!("shape {dims:?} holds {d}")))
                .collect::<Result<Vec<_>, _>>()?;
            constant(c, filled(dtype, dims, value)?)
        }
        Ints::Dyn(shape) => fill(c, shape, dtype, value),
    };
    c.bind("Out", y)
}

/// The shape attribute with one entry taken from the input's shape at run time.
fn fill_batch_size_like(c: &mut Ctx) -> Res {
    let x = c.input("Input")?;
    let shape = c.attrs.ints("shape")?;
    let at = norm_axis(c.attrs.int_or("output_dim_idx", 0)?, shape.len())?;
    let from = c.attrs.int_or("input_dim_idx", 0)?;
    let from = norm_axis(from, c.declared_rank("Input", false)?)? as i64;
    let dtype = params::dtype(c.attrs.int_or("dtype", 5)? as i32)?;
    let value = fill_value(c)?;
    let mut parts = Vec::new();
    if at > 0 {
        parts.push(c.const_i64(vec![at], &shape[..at]));
    }
    parts.push(shape_of(c, x, from, Some(from + 1)));
    if at + 1 < shape.len() {
        parts.push(c.const_i64(vec![shape.len() - at - 1], &shape[at + 1..]));
    }
    let target = c.add(Op::Concat { axis: 0 }, &parts);
    let y = fill(c, target, dtype, value);
    c.bind("Out", y)
}

fn assign_value(c: &mut Ctx) -> Res {
    let dtype = params::dtype(c.attrs.int_or("dtype", 5)? as i32)?;
    let shape = c.attrs.ints_or("shape", &[])?;
    let dims = shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("shape {shape:?} holds {d}")))
        .collect::<Result<Vec<usize>, _>>()?;
    let data: Vec<u8> = match dtype {
        DType::F32 => c
            .attrs
            .floats("fp32_values")?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F64 => c
            .attrs
            .floats("fp64_values")?
            .iter()
            .flat_map(|&v| (v as f64).to_le_bytes())
            .collect(),
        DType::I32 => c
            .attrs
            .ints("int32_values")?
            .iter()
            .flat_map(|&v| (v as i32).to_le_bytes())
            .collect(),
        DType::I64 => c
            .attrs
            .ints("int64_values")?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::Bool => c
            .attrs
            .ints("bool_values")?
            .iter()
            .map(|&v| (v != 0) as u8)
            .collect(),
        other => return Err(format!("assign_value of {other} is not supported").into()),
    };
    let count: usize = dims.iter().product();
    if data.len() != count * dtype.size_bytes() {
        return Err(format!(
            "{} bytes of values for shape {shape:?} of {dtype}",
            data.len()
        )
        .into());
    }
    let y = constant(
        c,
        Weight {
            dtype,
            dims,
            data: data.into(),
        },
    );
    c.bind("Out", y)
}
