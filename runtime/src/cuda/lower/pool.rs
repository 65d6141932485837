//! Pooling on the GPU (`runtime/cuda/pool.cuh`, and `reduce.cuh` for GlobalMaxPool), f32 only:
//! MaxPool and AveragePool over 1-D and 2-D windows (a 1-D window gets a unit height axis, as the
//! CPU's `pool/geometry.rs` lifts it), GlobalAveragePool and GlobalMaxPool over any rank >= 3.
//! The window is the CPU's: SAME pads resolved for the input's extents as `execute.rs` resolves
//! them, and each output extent checked against `geometry.rs`'s rule, so that the output the
//! graph holds is the one the CPU would write.
//!
//! 3-D windows (pool.cuh has no depth axis), MaxPool's indices output and every other dtype
//! stay on the CPU kernel.

use super::params::{self, layout, Layout, Pod};
use super::{grid_stride, Arg, Buf, Cx, Lowering, Unsupported, Work};
use temblor_ir::{AutoPad, PoolAttrs};

/// `PoolAxisParams` of pool.cuh.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct PoolAxisParams {
    input: i32,
    output: i32,
    kernel: i32,
    stride: i32,
    dilation: i32,
    pad_begin: i32,
    pad_end: i32,
}

/// `PoolParams` of pool.cuh.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct PoolParams {
    h: PoolAxisParams,
    w: PoolAxisParams,
    count_include_pad: i32,
}

// SAFETY: repr(C), i32 fields and structs of them only, so no padding.
unsafe impl Pod for PoolAxisParams {}
// SAFETY: as above.
unsafe impl Pod for PoolParams {}

pub(super) const LAYOUTS: &[Layout] = &[
    layout!(
        PoolAxisParams,
        "PoolAxisParams",
        [input, output, kernel, stride, dilation, pad_begin, pad_end]
    ),
    layout!(PoolParams, "PoolParams", [h, w, count_include_pad]),
];

/// An axis the window does not span: the height of a 1-D window.
const UNIT: PoolAxisParams = PoolAxisParams {
    input: 1,
    output: 1,
    kernel: 1,
    stride: 1,
    dilation: 1,
    pad_begin: 0,
    pad_end: 0,
};

pub(super) fn max_pool(a: &PoolAttrs, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    if cx.output_count() > 1 {
        return Err(Unsupported::new(
            "MaxPool's indices output has no CUDA kernel",
        ));
    }
    window("runtime_max_pool", a, cx)
}

pub(super) fn average_pool(a: &PoolAttrs, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    window("runtime_average_pool", a, cx)
}

pub(super) fn global_average_pool(cx: &mut Cx) -> Result<Lowering, Unsupported> {
    global("runtime_global_average_pool", cx)
}

pub(super) fn global_max_pool(cx: &mut Cx) -> Result<Lowering, Unsupported> {
    global("runtime_global_max_pool", cx)
}

/// One launch of a windowed pooling `kernel` of pool.cu.
fn window(kernel: &'static str, a: &PoolAttrs, cx: &Cx) -> Result<Lowering, Unsupported> {
    cx.all_f32()?;
    let (x, y) = (cx.input(0)?, cx.output(0));
    let p = pool_params(a, x.shape, y.shape)?;
    let n = y.elements();
    if n == 0 {
        return Ok(Lowering::Work(Vec::new()));
    }
    let args = vec![
        Arg::Ptr(Buf::Input(0).at()),
        Arg::I64(n as i64),
        Arg::Pod(params::bytes(&p)),
        Arg::Ptr(Buf::Output(0).at()),
    ];
    Ok(Lowering::Work(vec![Work::Launch(grid_stride(
        kernel, n, args,
    ))]))
}

/// The window of `a` over an input of shape `x` whose output has shape `y`.
fn pool_params(a: &PoolAttrs, x: &[usize], y: &[usize]) -> Result<PoolParams, Unsupported> {
    let a = match a.auto_pad {
        AutoPad::NotSet => a.clone(),
        _ => a.resolved(x.get(2..).unwrap_or(&[])),
    };
    let k = a.kernel.len();
    if k == 3 {
        return Err(Unsupported::new("3-D pooling windows have no CUDA kernel"));
    }
    let consistent = a.strides.len() == k && a.dilations.len() == k && a.pads.len() == 2 * k;
    if !consistent || k == 0 || x.len() != k + 2 || y.len() != k + 2 || x[..2] != y[..2] {
        return Err(Unsupported::new(format!(
            "a {k}-D window does not take an input of shape {x:?} to {y:?}"
        )));
    }
    let axis = |i: usize| -> Result<PoolAxisParams, Unsupported> {
        let (input, kernel, stride, dilation) =
            (x[2 + i], a.kernel[i], a.strides[i], a.dilations[i]);
        let pads = (a.pads[i], a.pads[k + i]);
        let extent = out_extent(input, kernel, stride, dilation, pads, a.ceil_mode);
        if extent != Some(y[2 + i]) {
            return Err(Unsupported::new(format!(
                "spatial axis {i} pools {input} to {extent:?} positions, not the output's {}",
                y[2 + i]
            )));
        }
        let int = |v: usize| {
            i32::try_from(v).map_err(|_| Unsupported::new(format!("{v} exceeds the kernel's i32")))
        };
        Ok(PoolAxisParams {
            input: int(input)?,
            output: int(y[2 + i])?,
            kernel: int(kernel)?,
            stride: int(stride)?,
            dilation: int(dilation)?,
            pad_begin: int(pads.0)?,
            pad_end: int(pads.1)?,
        })
    };
    let (h, w) = match k {
        1 => (UNIT, axis(0)?),
        _ => (axis(0)?, axis(1)?),
    };
    // AveragePool's divisor is counted in an i32.
    if i32::try_from(i64::from(h.kernel) * i64::from(w.kernel)).is_err() {
        return Err(Unsupported::new(format!(
            "a {}x{} window exceeds the kernel's i32 tap count",
            h.kernel, w.kernel
        )));
    }
    Ok(PoolParams {
        h,
        w,
        count_include_pad: i32::from(a.count_include_pad),
    })
}

/// The output extent of one axis by geometry.rs's rule; `None` where the CPU rejects the
/// window (a zero kernel, stride or dilation, or a window past the padded input).
fn out_extent(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pads: (usize, usize),
    ceil: bool,
) -> Option<usize> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        return None;
    }
    let eff = (kernel - 1).checked_mul(dilation)?.checked_add(1)?;
    crate::cpu::out_extent(input, eff, stride, pads, ceil)
}

/// One thread per `[n, c]` plane of an input of rank >= 3.
fn global(kernel: &'static str, cx: &Cx) -> Result<Lowering, Unsupported> {
    cx.all_f32()?;
    let x = cx.input(0)?;
    if x.shape.len() < 3 {
        return Err(Unsupported::new(format!(
            "global pooling of the rank-{} shape {:?}",
            x.shape.len(),
            x.shape
        )));
    }
    let planes = x.shape[0] * x.shape[1];
    let size: usize = x.shape[2..].iter().product();
    if size == 0 {
        return Err(Unsupported::new("global pooling of empty planes"));
    }
    if planes == 0 {
        return Ok(Lowering::Work(Vec::new()));
    }
    let args = vec![
        Arg::Ptr(Buf::Input(0).at()),
        Arg::I64(planes as i64),
        Arg::I64(size as i64),
        Arg::Ptr(Buf::Output(0).at()),
    ];
    Ok(Lowering::Work(vec![Work::Launch(grid_stride(
        kernel, planes, args,
    ))]))
}

#[cfg(test)]
mod tests {
    use super::super::Operand;
    use super::*;
    use temblor_ir::DType;

    fn f32s(shape: &[usize]) -> Operand<'_> {
        Operand {
            dtype: DType::F32,
            shape,
            known: None,
        }
    }

    fn attrs(kernel: &[usize], strides: &[usize], pads: &[usize], ceil: bool) -> PoolAttrs {
        PoolAttrs {
            kernel: kernel.to_vec(),
            strides: strides.to_vec(),
            dilations: vec![1; kernel.len()],
            pads: pads.to_vec(),
            auto_pad: AutoPad::NotSet,
            ceil_mode: ceil,
            count_include_pad: false,
        }
    }

    fn launch(lowering: Lowering) -> super::super::Launch {
        match lowering {
            Lowering::Work(mut w) if w.len() == 1 => match w.remove(0) {
                Work::Launch(l) => l,
                other => panic!("not a launch: {other:?}"),
            },
            other => panic!("not one launch: {other:?}"),
        }
    }

    /// ResNet's stem pooling, 3x3 at stride 2 with pads of 1 over 112x112, to 56x56 by hand
    /// ((112 + 2 - 3) / 2 + 1): every field reaches the kernel as worked out here.
    #[test]
    fn a_resnet_stem_pool_reaches_the_kernel_as_worked_by_hand() {
        let (x, y) = ([1, 64, 112, 112], [1, 64, 56, 56]);
        let a = attrs(&[3, 3], &[2, 2], &[1, 1, 1, 1], false);
        let mut cx = Cx::new(vec![Some(f32s(&x))], vec![f32s(&y)]);
        let l = launch(max_pool(&a, &mut cx).unwrap());
        let axis = PoolAxisParams {
            input: 112,
            output: 56,
            kernel: 3,
            stride: 2,
            dilation: 1,
            pad_begin: 1,
            pad_end: 1,
        };
        let p = PoolParams {
            h: axis,
            w: axis,
            count_include_pad: 0,
        };
        assert_eq!(l.function, "runtime_max_pool");
        assert_eq!(l.args[1], Arg::I64(64 * 56 * 56));
        assert_eq!(l.args[2], Arg::Pod(params::bytes(&p)));
    }

    /// Ceil mode keeps a last window that starts inside the input (7 -> 3 at stride 3 with a
    /// window of 2: starts 0, 3, 6) and drops one that would start in the trailing padding
    /// (6 + pad 1 -> starts 0, 3 only, though ceil((6 + 1 - 2) / 3) + 1 = 3).
    #[test]
    fn ceil_mode_extents_follow_the_cpu_geometry() {
        assert_eq!(out_extent(7, 2, 3, 1, (0, 0), true), Some(3));
        assert_eq!(out_extent(7, 2, 3, 1, (0, 0), false), Some(2));
        assert_eq!(out_extent(6, 2, 3, 1, (0, 1), true), Some(2));
        assert_eq!(out_extent(2, 3, 1, 2, (0, 0), false), None);
        // An output shape the window does not give is left to the CPU.
        let a = attrs(&[2, 2], &[3, 3], &[0, 0, 0, 0], false);
        let mut cx = Cx::new(vec![Some(f32s(&[1, 1, 7, 7]))], vec![f32s(&[1, 1, 3, 3])]);
        assert!(average_pool(&a, &mut cx).is_err());
    }

    /// SAME_UPPER over 5 at stride 2 with a window of 2: 3 outputs, one pad at the end; a 1-D
    /// window gets the unit height axis.
    #[test]
    fn same_pads_and_1d_windows() {
        let mut a = attrs(&[2], &[2], &[0, 0], false);
        a.auto_pad = AutoPad::SameUpper;
        a.count_include_pad = true;
        let mut cx = Cx::new(vec![Some(f32s(&[2, 3, 5]))], vec![f32s(&[2, 3, 3])]);
        let l = launch(average_pool(&a, &mut cx).unwrap());
        let p = PoolParams {
            h: UNIT,
            w: PoolAxisParams {
                input: 5,
                output: 3,
                kernel: 2,
                stride: 2,
                dilation: 1,
                pad_begin: 0,
                pad_end: 1,
            },
            count_include_pad: 1,
        };
        assert_eq!(l.function, "runtime_average_pool");
        assert_eq!(l.args[2], Arg::Pod(params::bytes(&p)));
    }

    #[test]
    fn indices_3d_windows_and_other_dtypes_stay_on_the_cpu() {
        let a = attrs(&[2, 2], &[2, 2], &[0, 0, 0, 0], false);
        let (x, y) = ([1, 1, 4, 4], [1, 1, 2, 2]);
        let indices = Operand {
            dtype: DType::I64,
            shape: &y,
            known: None,
        };
        let mut cx = Cx::new(vec![Some(f32s(&x))], vec![f32s(&y), indices]);
        assert!(max_pool(&a, &mut cx).is_err());
        let half = Operand {
            dtype: DType::F16,
            shape: &x,
            known: None,
        };
        let mut cx = Cx::new(vec![Some(half)], vec![f32s(&y)]);
        assert!(max_pool(&a, &mut cx).is_err());
        let a3 = attrs(&[2, 2, 2], &[2, 2, 2], &[0; 6], false);
        let (x3, y3) = ([1, 1, 4, 4, 4], [1, 1, 2, 2, 2]);
        let mut cx = Cx::new(vec![Some(f32s(&x3))], vec![f32s(&y3)]);
        assert!(max_pool(&a3, &mut cx).is_err());
    }

    #[test]
    fn global_pools_run_one_thread_per_plane() {
        let (x, y) = ([2, 3, 4, 5], [2, 3, 1, 1]);
        let mut cx = Cx::new(vec![Some(f32s(&x))], vec![f32s(&y)]);
        let l = launch(global_max_pool(&mut cx).unwrap());
        assert_eq!(l.function, "runtime_global_max_pool");
        assert_eq!(l.args[1..3], [Arg::I64(6), Arg::I64(20)]);
        let mut cx = Cx::new(vec![Some(f32s(&[2, 3]))], vec![f32s(&[2, 3])]);
        assert!(global_average_pool(&mut cx).is_err());
    }
}
