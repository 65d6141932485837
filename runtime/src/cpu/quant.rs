//! QuantizeLinear and DequantizeLinear, per tensor or per axis: quantization computes
//! `saturate(round(x / scale) + zero_point)` with ties to even, dequantization
//! `(q - zero_point) * scale`. Blocked quantization and the float8 and 4-bit types are not
//! supported.

use super::int8_gemm::Quantizer;
use super::isa::Isa;
#[cfg(target_arch = "x86_64")]
use super::isa::Level;
use super::{buffers, Element};
use crate::{bf16, f16, RuntimeError, Tensor, TensorData};
use rayon::prelude::*;
use std::borrow::Cow;
use temblor_ir::DType;

/// The fewest elements worth a parallel job of the per-tensor kernels.
const LEAST_PER_JOB: usize = 1 << 13;

/// `out[i] = f(x[i])` in parallel chunks, each compiled for the plan's instruction set: the
/// rounding and conversions of (de)quantization are library calls in baseline x86-64, one
/// element at a time. Up to four jobs a thread, evenly sized: jobs of at least 128K elements
/// left the int8 layers' inputs of YOLOv8n at 320 (50K to 200K elements) to one thread.
#[inline(always)]
pub(crate) fn map<A: Copy + Sync, T: Send>(
    isa: Isa,
    x: &[A],
    out: &mut [T],
    f: impl Fn(A) -> T + Sync + Copy,
) {
    let chunk = chunk_len(x.len());
    out.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(out, x)| map_on(isa, x, out, f));
}

/// The elements of each of [`map`]'s jobs over `len` elements.
fn chunk_len(len: usize) -> usize {
    let jobs = (len / LEAST_PER_JOB).clamp(1, 4 * rayon::current_num_threads());
    len.div_ceil(jobs).max(1)
}

/// [`bytes_of_row`] over all of `x`, in [`map`]'s parallel jobs.
pub(crate) fn quantize_to_bytes(isa: Isa, q: Quantizer, x: &[f32], out: &mut [u8]) {
    let chunk = chunk_len(x.len());
    out.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(out, x)| bytes_of_row(isa, q, x, out));
}

/// [`map`] on this thread.
#[inline(always)]
pub(crate) fn map_on<A: Copy, T>(isa: Isa, x: &[A], out: &mut [T], f: impl Fn(A) -> T) {
    #[cfg(target_arch = "x86_64")]
    match isa.level() {
        // SAFETY: an `Isa` of a level is only made on a machine that has its instructions.
        Level::Avx512 => return unsafe { map_avx512(x, out, f) },
        // SAFETY: as above.
        Level::Avx2Fma => return unsafe { map_avx2(x, out, f) },
        Level::Scalar => {}
    }
    let _ = isa;
    map_any(x, out, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn map_avx512<A: Copy, T>(x: &[A], out: &mut [T], f: impl Fn(A) -> T) {
    map_any(x, out, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn map_avx2<A: Copy, T>(x: &[A], out: &mut [T], f: impl Fn(A) -> T) {
    map_any(x, out, f)
}

#[inline(always)]
fn map_any<A: Copy, T>(x: &[A], out: &mut [T], f: impl Fn(A) -> T) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
}

/// `DequantizeLinear(QuantizeLinear(x))` per tensor in one pass: the same integers and the same
/// float product as the two ops, without the quantized tensor between them.
/// An input the plan left in bytes (its producer quantized it, [`bytes_of_row`]) is only
/// dequantized: the same values.
pub(crate) fn fake_quantize(q: Quantizer, x: &Tensor, isa: Isa) -> Result<Tensor, RuntimeError> {
    if let TensorData::U8(bytes) = &x.data {
        let mut out = buffers::reuse(bytes.len());
        map(
            isa,
            bytes,
            &mut out,
            #[inline(always)]
            move |b| q.value(b),
        );
        return Ok(Tensor::f32(x.shape.clone(), out));
    }
    let xv = super::f32s(x, "input")?;
    let mut out = buffers::reuse(xv.len());
    quantize_bytes(
        isa,
        q,
        xv,
        &mut out,
        #[inline(always)]
        move |b| q.value(b),
    );
    Ok(Tensor::f32(x.shape.clone(), out))
}

/// [`fake_quantize`] of one row, on this thread.
pub(crate) fn fake_quantize_row(q: Quantizer, isa: Isa, x: &[f32], out: &mut [f32]) {
    match q.inverse() {
        Some(inverse) => map_on(isa, x, out, move |v| q.value(q.byte_by_inverse(v, inverse))),
        None => map_on(isa, x, out, move |v| q.value(q.byte(v))),
    }
}

/// [`fake_quantize`] of one row already in bytes, on this thread.
pub(crate) fn dequantize_row(q: Quantizer, isa: Isa, bytes: &[u8], out: &mut [f32]) {
    map_on(isa, bytes, out, move |b| q.value(b));
}

/// `out[i] = q.byte(x[i])` on this thread: [`quantize_bytes`]' very bytes, which a
/// convolution's epilogue stores for the int8 layers that read its output.
pub(crate) fn bytes_of_row(isa: Isa, q: Quantizer, x: &[f32], out: &mut [u8]) {
    let inverse = q.inverse();
    #[cfg(target_arch = "x86_64")]
    if let (Level::Avx512, Some(inverse)) = (isa.level(), inverse) {
        // SAFETY: an `Isa` of a level is only made on a machine that has its instructions, and
        // one with VNNI on a machine with AVX-512BW too.
        return unsafe {
            if isa.vnni() {
                avx512::packed_bytes(q, inverse, x, out)
            } else {
                avx512::bytes(q, inverse, x, out)
            }
        };
    }
    match inverse {
        Some(inverse) => map_on(isa, x, out, move |v| q.byte_by_inverse(v, inverse)),
        None => map_on(isa, x, out, move |v| q.byte(v)),
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512;

/// `out[i] = then(q.byte(x[i]))`, by the scale's reciprocal where that gives the same bytes.
pub(crate) fn quantize_bytes<T: Send>(
    isa: Isa,
    q: Quantizer,
    x: &[f32],
    out: &mut [T],
    then: impl Fn(u8) -> T + Sync + Copy,
) {
    match q.inverse() {
        Some(inverse) => map(
            isa,
            x,
            out,
            #[inline(always)]
            move |v| then(q.byte_by_inverse(v, inverse)),
        ),
        None => map(
            isa,
            x,
            out,
            #[inline(always)]
            move |v| then(q.byte(v)),
        ),
    }
}

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
        let scale_values = floats(scale, "scale")?.into_owned();
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

/// Float values (f32, f16 or bf16) as f32.
fn floats<'a>(t: &'a Tensor, what: &str) -> Result<Cow<'a, [f32]>, RuntimeError> {
    match &t.data {
        TensorData::F32(v) => Ok(Cow::Borrowed(v)),
        TensorData::F16(v) => Ok(Cow::Owned(v.iter().map(|h| h.to_f32()).collect())),
        TensorData::BF16(v) => Ok(Cow::Owned(v.iter().map(|h| h.to_f32()).collect())),
        _ => Err(RuntimeError::unsupported(format!(
            "{what} is {}, only float32, float16 and bfloat16 are supported",
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

/// An integer type a quantized tensor can hold, with its range as floats.
trait Quantized: Element {
    const LOW: f32;
    const HIGH: f32;
    /// The value of an integer in the type's range.
    fn narrow(v: i32) -> Self;

    /// A rounded value, clamped to the type's range (NaN becomes 0, as `as` would make it),
    /// without the checked float conversion that kept the loop from vectorizing.
    #[inline(always)]
    fn saturate(v: f32) -> Self {
        let v = if v.is_nan() {
            0.0
        } else {
            v.clamp(Self::LOW, Self::HIGH)
        };
        // SAFETY: `v` is an integer-valued float within the type's range, which i32 holds.
        Self::narrow(unsafe { v.to_int_unchecked::<i32>() })
    }
}

macro_rules! quantized {
    ($($t:ty),*) => {$(
        impl Quantized for $t {
            const LOW: f32 = <$t>::MIN as f32;
            const HIGH: f32 = <$t>::MAX as f32;
            #[inline(always)]
            fn narrow(v: i32) -> Self {
                v as $t
            }
        }
    )*};
}

quantized!(u8, i8, u16, i16);

fn quantize_to<T: Quantized + Send>(x: &[f32], p: &Params, isa: Isa) -> TensorData {
    if p.channels == 1 {
        let (scale, zero) = (p.scale[0], p.zero_point[0] as f32);
        let mut out = vec![T::default(); x.len()];
        map(
            isa,
            x,
            &mut out,
            #[inline(always)]
            move |v| T::saturate((v / scale).round_ties_even() + zero),
        );
        return T::wrap(out);
    }
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
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    let p = Params::new(axis, x, scale, zero_point)?;
    let xv = floats(x, "input")?;
    let data = match zero_point.map_or(DType::U8, Tensor::dtype) {
        DType::U8 => quantize_to::<u8>(&xv, &p, isa),
        DType::I8 => quantize_to::<i8>(&xv, &p, isa),
        DType::U16 => quantize_to::<u16>(&xv, &p, isa),
        DType::I16 => quantize_to::<i16>(&xv, &p, isa),
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
    isa: Isa,
) -> Result<Tensor, RuntimeError> {
    if let Some(z) = zero_point.filter(|z| z.dtype() != x.dtype()) {
        return Err(RuntimeError::bad_input(format!(
            "zero point is {}, input is {}",
            z.dtype(),
            x.dtype()
        )));
    }
    let p = Params::new(axis, x, scale, zero_point)?;
    if p.channels == 1 && scale.dtype() == DType::F32 {
        let (s, z) = (p.scale[0], p.zero_point[0]);
        let mut out = buffers::reuse(x.len());
        // Bytes and their zero point subtract exactly in i32, which vectorizes; i64 arithmetic
        // converts to float one element at a time without AVX-512DQ.
        macro_rules! per_tensor {
            ($v:expr, $t:ty, $wide:ty) => {{
                let z = z as $wide;
                map(
                    isa,
                    $v,
                    &mut out,
                    #[inline(always)]
                    move |q: $t| (q as $wide - z) as f32 * s,
                )
            }};
        }
        match &x.data {
            TensorData::I8(v) => per_tensor!(v, i8, i32),
            TensorData::U8(v) => per_tensor!(v, u8, i32),
            TensorData::I32(v) => per_tensor!(v, i32, i64),
            _ => {
                buffers::give_back(out);
                return dequantize_any(x, scale, &p);
            }
        }
        return Ok(Tensor::f32(x.shape.clone(), out));
    }
    dequantize_any(x, scale, &p)
}

/// Dequantization in general: per axis, any quantized type, f16 and bf16 scales.
fn dequantize_any(x: &Tensor, scale: &Tensor, p: &Params) -> Result<Tensor, RuntimeError> {
    let values = integers(x, "input")?.into_iter().enumerate().map(|(i, q)| {
        let c = p.index(i);
        (q - p.zero_point[c]) as f32 * p.scale[c]
    });
    let data = match scale.dtype() {
        DType::F16 => TensorData::F16(values.map(f16::from_f32).collect()),
        DType::BF16 => TensorData::BF16(values.map(bf16::from_f32).collect()),
        _ => TensorData::F32(values.collect()),
    };
    Ok(Tensor {
        shape: x.shape.clone(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scalar zero point of int8 (`signed`) or uint8.
    fn zero_point(zero: i32, signed: bool) -> Tensor {
        Tensor {
            shape: vec![],
            data: if signed {
                TensorData::I8(vec![zero as i8])
            } else {
                TensorData::U8(vec![zero as u8])
            },
        }
    }

    /// The bytes an epilogue stores are QuantizeLinear's on every instruction set, by scales
    /// whose reciprocals are inexact too (Markstein's correction), at the rounding ties, the
    /// saturation ends (zero points at either end too), NaN and infinities, the extreme scales
    /// that take the reciprocal, and in rows of every tail length.
    #[test]
    fn bytes_of_row_is_quantize_linear() {
        let extremes = [1.0 / (1u64 << 60) as f32, (1u64 << 60) as f32];
        for scale in [0.5f32, 0.0137, 3.0, 1.0 / 3.0, 1e-30]
            .into_iter()
            .chain(extremes)
        {
            let mut values: Vec<f32> = (0..5_000)
                .flat_map(|i| {
                    let k = i as f32 - 2_500.0;
                    [k * 0.0137, (k + 0.5) * scale, (k * 0.5 + 0.5) * scale]
                })
                .collect();
            values.extend([
                1e30,
                -1e30,
                f32::NAN,
                f32::INFINITY,
                f32::NEG_INFINITY,
                -0.0,
            ]);
            let x = Tensor::f32(vec![values.len()], values.clone());
            let zeros = [(0i32, true), (-3, true), (127, true), (-128, true)];
            for (zero, signed) in zeros
                .into_iter()
                .chain([(100, false), (0, false), (255, false)])
            {
                let q = Quantizer {
                    scale,
                    zero,
                    signed,
                };
                let zp = zero_point(zero, signed);
                let scale_t = Tensor::f32(vec![], vec![scale]);
                for isa in Isa::available() {
                    let want: Vec<u8> = match quantize(0, &x, &scale_t, Some(&zp), isa)
                        .unwrap()
                        .data
                    {
                        TensorData::I8(v) => v.iter().map(|&b| (b as i32 + 128) as u8).collect(),
                        TensorData::U8(v) => v,
                        other => panic!("QuantizeLinear gave {other:?}"),
                    };
                    for len in (0..34).chain([64, 100, 129, values.len()]) {
                        let mut got = vec![7u8; len];
                        bytes_of_row(isa, q, &values[..len], &mut got);
                        assert_eq!(got, want[..len], "{isa:?}, scale {scale}, zero {zero}");
                    }
                }
            }
        }
    }

    /// The one-pass quantize-dequantize equals the two ops bit for bit on every instruction
    /// set, at the rounding ties, the saturation ends, NaN and infinities.
    #[test]
    fn fake_quantize_is_the_two_ops() {
        let mut values: Vec<f32> = (0..70_000)
            .map(|i| (i as f32 - 35_000.0) * 0.0137)
            .collect();
        values.extend([
            0.5,
            1.5,
            2.5,
            -0.5,
            -2.5,
            1e30,
            -1e30,
            f32::NAN,
            f32::INFINITY,
            -0.0,
        ]);
        let x = Tensor::f32(vec![values.len()], values);
        for (zero, signed) in [(0i32, true), (-3, true), (100, false)] {
            let q = Quantizer {
                scale: 0.5,
                zero,
                signed,
            };
            let scale = Tensor::f32(vec![], vec![q.scale]);
            let zp = zero_point(zero, signed);
            for isa in Isa::available() {
                let two = quantize(0, &x, &scale, Some(&zp), isa)
                    .and_then(|t| dequantize(0, &t, &scale, Some(&zp), isa))
                    .unwrap();
                let one = fake_quantize(q, &x, isa).unwrap();
                let bits = |t: &Tensor| {
                    t.as_f32()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect::<Vec<_>>()
                };
                assert_eq!(bits(&one), bits(&two), "{isa:?}, zero point {zero}");
            }
        }
    }
}
