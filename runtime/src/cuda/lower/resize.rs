//! Resize on the GPU (`runtime/cuda/resize.cuh`), f32 only: nearest (every rounding mode) and
//! linear, every coordinate transform, over the last two axes. The axes are
//! [`ResizeAttrs::plan`]'s, from the roi, scales and sizes known before the run, as the CPU's
//! `resize.rs` makes them; every axis before the last two must be kept exactly (each position
//! reading itself), so that it is one of the kernel's planes.
//!
//! A kept axis is one the CPU provably leaves as it is: same extent, a scale of exactly 1 and,
//! for tf_crop_and_resize, the whole roi. Each transform then maps position `o` to `o` itself in
//! f32 (exact for the extents allowed below), nearest rounds it to itself and linear gives it
//! the taps (o, 1) and (o + 1, 0), which the CPU skips as an identity pass. A linear axis that
//! keeps its extent at another scale might or might not be skipped on the CPU, bit for bit, so
//! it stays there.
//!
//! Cubic, antialias, exclude_outside (linear), roi, scales or sizes computed in the run and every
//! other dtype stay on the CPU kernel.

use super::params::{self, layout, Layout, Pod};
use super::{grid_stride, Arg, Buf, Cx, Lowering, Unsupported, Work};
use crate::Tensor;
use temblor_ir::{DType, ResizeAttrs, ResizeAxis, ResizeCoordinate, ResizeMode, ResizeNearest};

/// `ResizeAxisParams` of resize.cuh.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct ResizeAxisParams {
    input: i32,
    output: i32,
    scale: f32,
    roi_start: f32,
    roi_end: f32,
    identity: i32,
}

/// `ResizeParams` of resize.cuh.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct ResizeParams {
    coordinate: i32,
    nearest: i32,
    extrapolation: f32,
    h: ResizeAxisParams,
    w: ResizeAxisParams,
}

// SAFETY: repr(C), 4-byte fields and structs of them only, so no padding.
unsafe impl Pod for ResizeAxisParams {}
// SAFETY: as above.
unsafe impl Pod for ResizeParams {}

pub(super) const LAYOUTS: &[Layout] = &[
    layout!(
        ResizeAxisParams,
        "ResizeAxisParams",
        [input, output, scale, roi_start, roi_end, identity]
    ),
    layout!(
        ResizeParams,
        "ResizeParams",
        [coordinate, nearest, extrapolation, h, w]
    ),
];

pub(super) fn resize(a: &ResizeAttrs, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let (x, y) = (cx.input(0)?, cx.output(0));
    if x.dtype != DType::F32 || y.dtype != DType::F32 {
        return Err(Unsupported::new(format!(
            "{:?} Resize has no CUDA kernel",
            x.dtype
        )));
    }
    let function = match a.mode {
        ResizeMode::Nearest => "runtime_resize_nearest",
        ResizeMode::Linear if a.antialias || a.exclude_outside => {
            return Err(Unsupported::new(
                "linear Resize with antialias or exclude_outside has no CUDA kernel",
            ))
        }
        ResizeMode::Linear => "runtime_resize_linear",
        ResizeMode::Cubic => return Err(Unsupported::new("cubic Resize has no CUDA kernel")),
    };
    let roi = known(cx, 1, DType::F32)?;
    let scales = known(cx, 2, DType::F32)?;
    let sizes = known(cx, 3, DType::I64)?;
    let axes = a
        .plan(
            x.shape,
            roi.and_then(Tensor::as_f32),
            scales.and_then(Tensor::as_f32),
            sizes.and_then(Tensor::as_i64),
        )
        .map_err(|e| Unsupported::new(format!("the Resize is invalid: {e}")))?;
    if !axes.iter().map(|ax| ax.output).eq(y.shape.iter().copied()) {
        return Err(Unsupported::new(format!(
            "the Resize's axes {axes:?} do not give its output shape {:?}",
            y.shape
        )));
    }
    let n = y.elements();
    if n == 0 {
        return Ok(Lowering::Work(Vec::new()));
    }
    let p = resize_params(a, &axes)?;
    if x.elements() == 0 {
        return Err(Unsupported::new("resizing an empty input"));
    }
    let args = vec![
        Arg::Ptr(Buf::Input(0).at()),
        Arg::I64(n as i64),
        Arg::Pod(params::bytes(&p)),
        Arg::Ptr(Buf::Output(0).at()),
    ];
    Ok(Lowering::Work(vec![Work::Launch(grid_stride(
        function, n, args,
    ))]))
}

/// Optional input `port`'s value, which must be known and of `dtype` (the CPU kernel's error
/// otherwise); `None` when the input is absent.
fn known<'a>(cx: &Cx<'a>, port: usize, dtype: DType) -> Result<Option<&'a Tensor>, Unsupported> {
    let Some(operand) = cx.optional(port) else {
        return Ok(None);
    };
    let value = operand.known.ok_or_else(|| {
        Unsupported::new(format!(
            "Resize input {port} is computed in the run, not known before"
        ))
    })?;
    if value.dtype() != dtype {
        return Err(Unsupported::new(format!(
            "Resize input {port} is {:?}, not {dtype:?}",
            value.dtype()
        )));
    }
    Ok(Some(value))
}

/// The kernel's parameters for `axes`: the last two resized, the rest kept.
fn resize_params(a: &ResizeAttrs, axes: &[ResizeAxis]) -> Result<ResizeParams, Unsupported> {
    let [outer @ .., h, w] = axes else {
        return Err(Unsupported::new("resizing a rank-0 or rank-1 input"));
    };
    if let Some(i) = outer.iter().position(|ax| !kept(a.coordinate, ax)) {
        return Err(Unsupported::new(format!(
            "the Resize changes axis {i} of {}, not only the last two",
            axes.len()
        )));
    }
    let axis = |ax: &ResizeAxis| -> Result<ResizeAxisParams, Unsupported> {
        let identity = kept(a.coordinate, ax);
        if a.mode == ResizeMode::Linear && ax.input == ax.output && !identity {
            return Err(Unsupported::new(format!(
                "a linear Resize keeps an extent of {} at the scale {}",
                ax.input, ax.scale
            )));
        }
        let int = |v: usize| {
            i32::try_from(v).map_err(|_| Unsupported::new(format!("{v} exceeds the kernel's i32")))
        };
        Ok(ResizeAxisParams {
            input: int(ax.input)?,
            output: int(ax.output)?,
            scale: ax.scale,
            roi_start: ax.roi.0,
            roi_end: ax.roi.1,
            identity: i32::from(identity),
        })
    };
    Ok(ResizeParams {
        coordinate: match a.coordinate {
            ResizeCoordinate::HalfPixel => 0,
            ResizeCoordinate::HalfPixelSymmetric => 1,
            ResizeCoordinate::PytorchHalfPixel => 2,
            ResizeCoordinate::AlignCorners => 3,
            ResizeCoordinate::Asymmetric => 4,
            ResizeCoordinate::TfCropAndResize => 5,
        },
        nearest: match a.nearest {
            ResizeNearest::RoundPreferFloor => 0,
            ResizeNearest::RoundPreferCeil => 1,
            ResizeNearest::Floor => 2,
            ResizeNearest::Ceil => 3,
        },
        extrapolation: a.extrapolation_value,
        h: axis(h)?,
        w: axis(w)?,
    })
}

/// Whether the CPU maps every position of `ax` to itself (see the module's header). align_corners
/// and tf_crop_and_resize compute `o · (n - 1) / (n - 1)`, exact while `o · (n - 1) < 2^24`; the
/// half-pixel transforms `(o + 0.5) - 0.5`, exact below 2^23.
fn kept(coordinate: ResizeCoordinate, ax: &ResizeAxis) -> bool {
    let limit = match coordinate {
        ResizeCoordinate::AlignCorners | ResizeCoordinate::TfCropAndResize => 1 << 12,
        _ => 1 << 22,
    };
    let whole = coordinate != ResizeCoordinate::TfCropAndResize || ax.roi == (0.0, 1.0);
    ax.input == ax.output && ax.input <= limit && ax.scale == 1.0 && whole
}

#[cfg(test)]
mod tests {
    use super::super::Operand;
    use super::*;

    fn f32s(shape: &[usize]) -> Operand<'_> {
        Operand {
            dtype: DType::F32,
            shape,
            known: None,
        }
    }

    fn attrs(mode: ResizeMode, coordinate: ResizeCoordinate) -> ResizeAttrs {
        ResizeAttrs::new(mode, coordinate, ResizeNearest::Floor)
    }

    fn params_of(lowering: Lowering) -> Vec<u8> {
        match lowering {
            Lowering::Work(w) => match &w[..] {
                [Work::Launch(l)] => match &l.args[2] {
                    Arg::Pod(bytes) => bytes.clone(),
                    other => panic!("not the parameters: {other:?}"),
                },
                other => panic!("not one launch: {other:?}"),
            },
            other => panic!("not work: {other:?}"),
        }
    }

    /// A YOLO neck's 2x nearest upsampling from scales [1, 1, 2, 2]: 20x20 to 40x40, scale 2 on
    /// both axes; kept axes (same extent, scale 1) are the identity.
    #[test]
    fn scales_become_the_kernels_axes() {
        let scales = Tensor::f32(vec![4], vec![1.0, 1.0, 2.0, 2.0]);
        let (x, y) = ([1, 256, 20, 20], [1, 256, 40, 40]);
        let inputs = vec![
            Some(f32s(&x)),
            None,
            Some(Operand {
                dtype: DType::F32,
                shape: &[4],
                known: Some(&scales),
            }),
        ];
        let mut cx = Cx::new(inputs, vec![f32s(&y)]);
        let a = attrs(ResizeMode::Nearest, ResizeCoordinate::Asymmetric);
        let axis = ResizeAxisParams {
            input: 20,
            output: 40,
            scale: 2.0,
            roi_start: 0.0,
            roi_end: 1.0,
            identity: 0,
        };
        let want = ResizeParams {
            coordinate: 4,
            nearest: 2,
            extrapolation: 0.0,
            h: axis,
            w: axis,
        };
        assert_eq!(
            params_of(resize(&a, &mut cx).unwrap()),
            params::bytes(&want)
        );
    }

    /// Sizes [1, 3, 8, 5] from [1, 3, 4, 5]: height scaled by 8 / 4, width kept (scale 5 / 5 = 1,
    /// so the linear kernel reads it directly, as the CPU skips it).
    #[test]
    fn sizes_keep_an_axis_as_the_identity() {
        let sizes = Tensor::i64(vec![4], vec![1, 3, 8, 5]);
        let (x, y) = ([1, 3, 4, 5], [1, 3, 8, 5]);
        let sizes_in = Operand {
            dtype: DType::I64,
            shape: &[4],
            known: Some(&sizes),
        };
        let mut cx = Cx::new(
            vec![Some(f32s(&x)), None, None, Some(sizes_in)],
            vec![f32s(&y)],
        );
        let a = attrs(ResizeMode::Linear, ResizeCoordinate::HalfPixel);
        let want = ResizeParams {
            coordinate: 0,
            nearest: 2,
            extrapolation: 0.0,
            h: ResizeAxisParams {
                input: 4,
                output: 8,
                scale: 2.0,
                roi_start: 0.0,
                roi_end: 1.0,
                identity: 0,
            },
            w: ResizeAxisParams {
                input: 5,
                output: 5,
                scale: 1.0,
                roi_start: 0.0,
                roi_end: 1.0,
                identity: 1,
            },
        };
        assert_eq!(
            params_of(resize(&a, &mut cx).unwrap()),
            params::bytes(&want)
        );
    }

    #[test]
    fn what_the_kernels_lack_stays_on_the_cpu() {
        let (x, y) = ([1, 2, 4, 4], [1, 2, 8, 8]);
        let scales = Tensor::f32(vec![4], vec![1.0, 1.0, 2.0, 2.0]);
        let given = Operand {
            dtype: DType::F32,
            shape: &[4],
            known: Some(&scales),
        };
        let lower = |a: &ResizeAttrs, scales: Operand| {
            let mut cx = Cx::new(vec![Some(f32s(&x)), None, Some(scales)], vec![f32s(&y)]);
            resize(a, &mut cx)
        };
        assert!(lower(
            &attrs(ResizeMode::Cubic, ResizeCoordinate::HalfPixel),
            given
        )
        .is_err());
        let mut a = attrs(ResizeMode::Linear, ResizeCoordinate::HalfPixel);
        a.antialias = true;
        assert!(lower(&a, given).is_err());
        let in_the_run = Operand {
            known: None,
            ..given
        };
        let nearest = attrs(ResizeMode::Nearest, ResizeCoordinate::HalfPixel);
        assert!(lower(&nearest, in_the_run).is_err());
        assert!(lower(&nearest, given).is_ok());
        // The channel axis resized: not one of the kernel's planes.
        let scales = Tensor::f32(vec![4], vec![1.0, 2.0, 2.0, 2.0]);
        let y = [1, 4, 8, 8];
        let given = Operand {
            known: Some(&scales),
            ..given
        };
        let mut cx = Cx::new(vec![Some(f32s(&x)), None, Some(given)], vec![f32s(&y)]);
        assert!(resize(&nearest, &mut cx).is_err());
    }

    /// A linear axis that keeps its extent at a scale other than 1 (5 at 1.1 stays 5) may not be
    /// an identity pass on the CPU; a nearest one is computed like any other.
    #[test]
    fn kept_extents_at_other_scales() {
        let ax = ResizeAxis {
            input: 5,
            output: 5,
            scale: 1.1,
            roi: (0.0, 1.0),
        };
        let h = ResizeAxis {
            input: 4,
            output: 8,
            scale: 2.0,
            roi: (0.0, 1.0),
        };
        let linear = attrs(ResizeMode::Linear, ResizeCoordinate::HalfPixel);
        assert!(resize_params(&linear, &[h, ax]).is_err());
        let nearest = attrs(ResizeMode::Nearest, ResizeCoordinate::HalfPixel);
        assert_eq!(resize_params(&nearest, &[h, ax]).unwrap().w.identity, 0);
        let cropped = ResizeAxis {
            roi: (0.25, 1.0),
            ..h_kept()
        };
        assert!(!kept(ResizeCoordinate::TfCropAndResize, &cropped));
        assert!(kept(ResizeCoordinate::AlignCorners, &h_kept()));
    }

    fn h_kept() -> ResizeAxis {
        ResizeAxis {
            input: 7,
            output: 7,
            scale: 1.0,
            roi: (0.0, 1.0),
        }
    }
}
