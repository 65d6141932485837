//! QuantizeLinear and DequantizeLinear on the GPU (`quant.cuh`), with the CPU's arithmetic
//! (`cpu/quant.rs`) bit for bit: per tensor or per axis, the scale and zero point read where
//! they lie, so computed ones work as well as weights.
//!
//! Limits, each left to the CPU kernel: f32 operands only (a half input, scale or output is
//! widened around these kernels by `half.rs`, which is what the CPU does too); blocked
//! quantization (a scale of rank 2 or more); quantized types other than the 8 and 16-bit
//! integers (and int32, which dequantizes); and the operand mismatches the CPU reports as
//! errors.

use super::elementwise::dtype_code;
use super::params::{self, layout, Layout, Pod};
use super::{grid_stride, Arg, Buf, Cx, Lowering, Operand, Unsupported, Work};
use temblor_ir::DType;

/// quant.cuh's `QuantParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct QuantParams {
    inner: i64,
    channels: i64,
    dtype: i32,
    zero_type: i32,
}

// SAFETY: repr(C), two 8-byte fields then two 4-byte ones: no padding.
unsafe impl Pod for QuantParams {}

pub(super) const LAYOUTS: &[Layout] = &[layout!(
    QuantParams,
    "QuantParams",
    [inner, channels, dtype, zero_type]
)];

/// Which entry of the scale each element takes, as quant.rs's `Params::new`: one for the
/// tensor, or one per index along `axis` for a scale of rank 1.
fn channels(axis: i64, x: Operand, scale: Operand) -> Result<(i64, i64), Unsupported> {
    let entries = scale.elements();
    if entries == 1 && scale.shape.len() <= 1 {
        return Ok((1, 1));
    }
    if scale.shape.len() != 1 {
        return Err(Unsupported::new(format!(
            "a scale of shape {:?}: blocked quantization",
            scale.shape
        )));
    }
    let axis =
        crate::cpu::normalize_axis(axis, x.shape.len()).map_err(|e| Unsupported(e.to_string()))?;
    if x.shape[axis] != entries {
        return Err(Unsupported::new(format!(
            "{entries} scales for axis {axis} of {:?}",
            x.shape
        )));
    }
    let inner: usize = x.shape[axis + 1..].iter().product();
    Ok((inner as i64, entries as i64))
}

/// The parameters of a (de)quantization of `x` into or from `quantized`, with its scale (input 1)
/// and optional zero point (input 2), which must have as many entries as the scale.
fn quant_params(
    axis: i64,
    x: Operand,
    quantized: DType,
    cx: &Cx,
) -> Result<QuantParams, Unsupported> {
    let scale = cx.input(1)?;
    if scale.dtype != DType::F32 {
        return Err(Unsupported::new(format!(
            "a {} scale (the kernels take f32)",
            scale.dtype
        )));
    }
    let (inner, channels) = channels(axis, x, scale)?;
    let zero_type = match cx.optional(2) {
        Some(z) if z.elements() != scale.elements() => {
            return Err(Unsupported::new(format!(
                "a zero point of shape {:?} for a scale of {:?}",
                z.shape, scale.shape
            )))
        }
        Some(z) => dtype_code(z.dtype),
        None => -1,
    };
    Ok(QuantParams {
        inner: inner.max(1),
        channels,
        dtype: dtype_code(quantized),
        zero_type,
    })
}

/// One launch of `kernel` (`runtime_quantize` or `runtime_dequantize`, which take the same
/// arguments) over `x`'s elements: input, scale, zero point (input 2, or null), count, `p`,
/// output.
fn launch(kernel: &'static str, x: Operand, p: QuantParams, cx: &Cx) -> Lowering {
    let n = x.elements();
    if n == 0 {
        return Lowering::Work(Vec::new());
    }
    let zero = match cx.optional(2) {
        Some(_) => Arg::Ptr(Buf::Input(2).at()),
        None => Arg::Null,
    };
    let args = vec![
        Arg::Ptr(Buf::Input(0).at()),
        Arg::Ptr(Buf::Input(1).at()),
        zero,
        Arg::I64(n as i64),
        Arg::Pod(params::bytes(&p)),
        Arg::Ptr(Buf::Output(0).at()),
    ];
    Lowering::Work(vec![Work::Launch(grid_stride(kernel, n, args))])
}

/// QuantizeLinear: the output's type is the zero point's (uint8 without one), as the CPU picks
/// it; `saturate` concerns only the float8 types, which are not lowered.
pub(super) fn quantize(axis: i64, _saturate: bool, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let (x, out) = (cx.input(0)?, cx.output(0));
    let to = cx.optional(2).map_or(DType::U8, |z| z.dtype);
    if !matches!(to, DType::U8 | DType::I8 | DType::U16 | DType::I16) {
        return Err(Unsupported::new(format!("quantizing to {to}")));
    }
    if x.dtype != DType::F32 || out.dtype != to {
        return Err(Unsupported::new(format!(
            "quantizing {} into {} (the kernel takes f32 into the zero point's {to})",
            x.dtype, out.dtype
        )));
    }
    let p = quant_params(axis, x, to, cx)?;
    Ok(launch("runtime_quantize", x, p, cx))
}

/// DequantizeLinear into f32 (an f16 or bf16 scale makes a half output, which `half.rs` widens
/// around this).
pub(super) fn dequantize(axis: i64, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let (x, out) = (cx.input(0)?, cx.output(0));
    if !matches!(
        x.dtype,
        DType::U8 | DType::I8 | DType::U16 | DType::I16 | DType::I32
    ) {
        return Err(Unsupported::new(format!("dequantizing {}", x.dtype)));
    }
    if let Some(z) = cx.optional(2).filter(|z| z.dtype != x.dtype) {
        return Err(Unsupported::new(format!(
            "a {} zero point for a {} input",
            z.dtype, x.dtype
        )));
    }
    if out.dtype != DType::F32 {
        return Err(Unsupported::new(format!("dequantizing into {}", out.dtype)));
    }
    let p = quant_params(axis, x, x.dtype, cx)?;
    Ok(launch("runtime_dequantize", x, p, cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operand(dtype: DType, shape: &[usize]) -> Operand<'_> {
        Operand {
            dtype,
            shape,
            known: None,
        }
    }

    fn params(l: Lowering) -> (super::super::Launch, QuantParams) {
        let Lowering::Work(mut w) = l else {
            panic!("not work")
        };
        let Work::Launch(l) = w.remove(0) else {
            panic!("not a launch")
        };
        let Arg::Pod(bytes) = &l.args[4] else {
            panic!("no params")
        };
        let word = |i: usize| i64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
        let half = |i: usize| i32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
        let p = QuantParams {
            inner: word(0),
            channels: word(8),
            dtype: half(16),
            zero_type: half(20),
        };
        (l, p)
    }

    /// Per axis: element (n, c, h, w) of a [2, 3, 4, 5] tensor takes entry c, which is
    /// `(e / 20) % 3`; the output type is the zero point's.
    #[test]
    fn per_axis_quantization_indexes_the_channel() {
        let (x, s) = ([2usize, 3, 4, 5], [3usize]);
        let mut cx = Cx::new(
            vec![
                Some(operand(DType::F32, &x)),
                Some(operand(DType::F32, &s)),
                Some(operand(DType::U8, &s)),
            ],
            vec![operand(DType::U8, &x)],
        );
        let (l, p) = params(quantize(-3, true, &mut cx).unwrap());
        assert_eq!(l.function, "runtime_quantize");
        assert_eq!((p.inner, p.channels), (20, 3));
        assert_eq!(
            (p.dtype, p.zero_type),
            (dtype_code(DType::U8), dtype_code(DType::U8))
        );
        for e in 0..120 {
            assert_eq!((e / p.inner) % p.channels, (e / 20) % 3);
        }
    }

    /// Per tensor without a zero point: one channel, a null zero point the kernel reads as 0.
    #[test]
    fn a_scalar_scale_is_per_tensor() {
        let (x, s) = ([7usize, 2], [1usize]);
        let mut cx = Cx::new(
            vec![Some(operand(DType::I32, &x)), Some(operand(DType::F32, &s))],
            vec![operand(DType::F32, &x)],
        );
        let (l, p) = params(dequantize(0, &mut cx).unwrap());
        assert_eq!(l.function, "runtime_dequantize");
        assert_eq!((p.inner, p.channels, p.zero_type), (1, 1, -1));
        assert_eq!(l.args[2], Arg::Null);
    }

    #[test]
    fn what_the_cpu_refuses_or_the_kernels_lack_stays_on_the_cpu() {
        const X: [usize; 2] = [4, 6];
        const S: [usize; 1] = [4];
        const BLOCKED: [usize; 2] = [4, 2];
        let cx = |x_type, scale: &'static [usize], zero_type, out_type| {
            Cx::new(
                vec![
                    Some(operand(x_type, &X)),
                    Some(operand(DType::F32, scale)),
                    Some(operand(zero_type, &S)),
                ],
                vec![operand(out_type, &X)],
            )
        };
        let (s, blocked) = (&S, &BLOCKED);
        // A blocked scale, a zero point of another type than the input, a scale for the wrong
        // axis, an f16 output, and quantizing to int32.
        assert!(quantize(0, true, &mut cx(DType::F32, blocked, DType::I8, DType::I8)).is_err());
        assert!(dequantize(0, &mut cx(DType::I8, s, DType::U8, DType::F32)).is_err());
        assert!(dequantize(1, &mut cx(DType::I8, s, DType::I8, DType::F32)).is_err());
        assert!(dequantize(0, &mut cx(DType::I8, s, DType::I8, DType::F16)).is_err());
        assert!(quantize(0, true, &mut cx(DType::F32, s, DType::I32, DType::I32)).is_err());
        assert!(dequantize(0, &mut cx(DType::I8, s, DType::I8, DType::F32)).is_ok());
    }
}
