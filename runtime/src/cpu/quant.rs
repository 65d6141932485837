//! QuantizeLinear and DequantizeLinear, per tensor or per axis: quantization computes
//! `saturate(round(x / scale) + zero_point)` with ties to even, dequantization
//! `(q - zero_point) * scale`. Blocked quantization and the float8 and 4-bit types are not
//! supported.

use super::Element;
use crate::{f16, RuntimeError, Tensor, TensorData};
use temblor_ir::DType;

/// Which scale and zero point each element uses: element `i` takes entry
/// `(i / inner) % channels` (per tensor: one channel).
struct Params {
    inner: usize,
    channels: usize,
    scale: Vec<f32>,
    zero_point: Vec<i64>,
}

impl Params {
    fn new(
        axis: i64,
        x: &Tensor,
        scale: &Tensor,
        zero_point: Option<&Tensor>,
    ) -> Result<Params, RuntimeError> {
        let scale_values = floats(scale, "scale")?;
        let (inner, channels) = if scale_values.len() == 1 && scale.shape.len() <= 1 {
            (1, 1)
        } else if scale.shape.len() == 1 {
            let axis = super::normalize_axis(axis, x.shape.len())?;
            if x.shape[axis] != scale_values.len() {
                return Err(RuntimeError::bad_input(format!(
                    "scale has {} entries, but axis {axis} of input {:?} has {}",
                    scale_values.len(),
                    x.shape,
                    x.shape[axis]
                )));
            }
            (x.shape[axis + 1..].iter().product(), x.shape[axis])
        } else {
            return Err(RuntimeError::unsupported(format!(
                "scale has shape {:?}: blocked quantization is not supported",
                scale.shape
            )));
        };
        let zero_point = match zero_point {
            Some(z) => {
                let v = integers(z, "zero point")?;
                if v.len() != scale_values.len() {
                    return Err(RuntimeError::bad_input(format!(
                        "zero point has shape {:?} but scale {:?}",
                        z.shape, scale.shape
                    )));
                }
                v
            }
            None => vec![0; scale_values.len()],
        };
        Ok(Params {
            inner,
            channels,
            scale: scale_values,
            zero_point,
        })
    }

    fn index(&self, i: usize) -> usize {
        (i / self.inner) % self.channels
    }
}

/// Float values (f32 or f16) as f32.
fn floats(t: &Tensor, what: &str) -> Result<Vec<f32>, RuntimeError> {
    match &t.data {
        TensorData::F32(v) => Ok(v.clone()),
        TensorData::F16(v) => Ok(v.iter().map(|h| h.to_f32()).collect()),
        _ => Err(RuntimeError::unsupported(format!(
            "{what} is {}, only float32 and float16 are supported",
            t.dtype()
        ))),
    }
}

/// Quantized values (8 and 16 bit, and int32 for dequantization) widened to i64.
fn integers(t: &Tensor, what: &str) -> Result<Vec<i64>, RuntimeError> {
    fn widen<T: Copy + Into<i64>>(v: &[T]) -> Vec<i64> {
        v.iter().map(|&e| e.into()).collect()
    }
    match &t.data {
        TensorData::U8(v) => Ok(widen(v)),
        TensorData::I8(v) => Ok(widen(v)),
        TensorData::U16(v) => Ok(widen(v)),
        TensorData::I16(v) => Ok(widen(v)),
        TensorData::I32(v) => Ok(widen(v)),
        _ => Err(RuntimeError::unsupported(format!(
            "{what} is {}, only uint8, int8, uint16, int16 and int32 are supported",
            t.dtype()
        ))),
    }
}

/// An integer type a quantized tensor can hold. `saturate` rounds nothing: it takes an
/// already rounded value and clamps it to the type's range.
trait Quantized: Element {
    fn saturate(v: f32) -> Self;
}

macro_rules! quantized {
    ($($t:ty),*) => {$(
        impl Quantized for $t {
            fn saturate(v: f32) -> Self {
                // `as` from float saturates at the type's bounds (NaN becomes 0).
                v as $t
            }
        }
    )*};
}

quantized!(u8, i8, u16, i16);

fn quantize_to<T: Quantized>(x: &[f32], p: &Params) -> TensorData {
    T::wrap(
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = p.index(i);
                T::saturate((v / p.scale[c]).round_ties_even() + p.zero_point[c] as f32)
            })
            .collect(),
    )
}

pub(crate) fn quantize(
    axis: i64,
    x: &Tensor,
    scale: &Tensor,
    zero_point: Option<&Tensor>,
) -> Result<Tensor, RuntimeError> {
    let p = Params::new(axis, x, scale, zero_point)?;
    let xv = floats(x, "input")?;
    let data = match zero_point.map_or(DType::U8, Tensor::dtype) {
        DType::U8 => quantize_to::<u8>(&xv, &p),
        DType::I8 => quantize_to::<i8>(&xv, &p),
        DType::U16 => quantize_to::<u16>(&xv, &p),
        DType::I16 => quantize_to::<i16>(&xv, &p),
        other => {
            return Err(RuntimeError::unsupported(format!(
                "quantizing to {other} is not supported (uint8, int8, uint16, int16)"
            )))
        }
    };
    Ok(Tensor {
        shape: x.shape.clone(),
        data,
    })
}

pub(crate) fn dequantize(
    axis: i64,
    x: &Tensor,
    scale: &Tensor,
    zero_point: Option<&Tensor>,
) -> Result<Tensor, RuntimeError> {
    if let Some(z) = zero_point.filter(|z| z.dtype() != x.dtype()) {
        return Err(RuntimeError::bad_input(format!(
            "zero point is {}, input is {}",
            z.dtype(),
            x.dtype()
        )));
    }
    let p = Params::new(axis, x, scale, zero_point)?;
    let values = integers(x, "input")?.into_iter().enumerate().map(|(i, q)| {
        let c = p.index(i);
        (q - p.zero_point[c]) as f32 * p.scale[c]
    });
    let data = match scale.dtype() {
        DType::F16 => TensorData::F16(values.map(f16::from_f32).collect()),
        _ => TensorData::F32(values.collect()),
    };
    Ok(Tensor {
        shape: x.shape.clone(),
        data,
    })
}
