//! Reductions and normalizations on the GPU, f32 only, one thread per output element or row so
//! that each sum runs in the CPU's order:
//! - ReduceSum, ReduceMean, ReduceMax, ReduceMin over any axes known before the run
//!   (`runtime/cuda/reduce.cuh`, the axes merged as the CPU's `reduce.rs` merges them);
//! - Softmax over any axis (or, flattened, over every axis from it on), `softmax.cuh`;
//! - LayerNormalization over the trailing axes, `layer_norm.cuh`, its scale and bias each the
//!   normalized axes' size;
//! - inference BatchNormalization, `reduce.cuh`.
//!
//! ReduceProd, LogSoftmax (the CPU's libm `ln` has no bit-exact GPU twin), LayerNormalization's
//! mean and inverse-deviation outputs and broadcast scale or bias, BatchNormalization's training
//! outputs, and every other dtype stay on the CPU kernels.

use super::params::{self, layout, Layout, Pod};
use super::{grid_stride, Arg, Buf, Cx, Lowering, Operand, Unsupported, Work};
use temblor_ir::{DType, ReduceOp};

/// `RT_MAX_RANK` of math.cuh.
const MAX_RANK: usize = 6;

/// `ReduceParams` of reduce.cuh.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct ReduceParams {
    kept: [i64; MAX_RANK],
    kept_stride: [i64; MAX_RANK],
    reduced: [i64; MAX_RANK],
    reduced_stride: [i64; MAX_RANK],
    count: i64,
    kept_rank: i32,
    reduced_rank: i32,
    op: i32,
    row: i32,
}

// SAFETY: repr(C); the i64 arrays and count come first and the four i32s fill the last 16
// bytes, so there is no padding.
unsafe impl Pod for ReduceParams {}

pub(super) const LAYOUTS: &[Layout] = &[layout!(
    ReduceParams,
    "ReduceParams",
    [
        kept,
        kept_stride,
        reduced,
        reduced_stride,
        count,
        kept_rank,
        reduced_rank,
        op,
        row
    ]
)];

/// The work of one launch of `function`, or none for an empty output.
fn one(function: &'static str, n: usize, args: Vec<Arg>) -> Lowering {
    match n {
        0 => Lowering::Work(Vec::new()),
        _ => Lowering::Work(vec![Work::Launch(grid_stride(function, n, args))]),
    }
}

/// The CPU's `normalize_axis`: a negative axis counts from the end.
fn axis_of(axis: i64, rank: usize) -> Result<usize, Unsupported> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(a)
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| Unsupported::new(format!("axis {axis} is out of range for rank {rank}")))
}

pub(super) fn reduce(
    op: ReduceOp,
    keepdims: bool,
    noop_with_empty_axes: bool,
    cx: &mut Cx,
) -> Result<Lowering, Unsupported> {
    let (x, y) = (cx.input(0)?, cx.output(0));
    if x.dtype != DType::F32 || y.dtype != DType::F32 {
        return Err(Unsupported::new(format!(
            "{:?} reductions have no CUDA kernel",
            x.dtype
        )));
    }
    let code = match op {
        ReduceOp::Sum => 0,
        ReduceOp::Mean => 1,
        ReduceOp::Max => 2,
        ReduceOp::Min => 3,
        ReduceOp::Prod => return Err(Unsupported::new("ReduceProd has no CUDA kernel")),
    };
    let list = match cx.optional(1) {
        Some(axes) if axes.dtype != DType::I64 => {
            return Err(Unsupported::new(format!("{:?} reduce axes", axes.dtype)))
        }
        Some(_) => cx.known_ints(1)?,
        None => Vec::new(),
    };
    let rank = x.shape.len();
    let mut mask = vec![list.is_empty(); rank];
    if list.is_empty() && noop_with_empty_axes {
        let bytes = x.bytes();
        let copy = Work::Copy {
            from: Buf::Input(0).at(),
            to: Buf::Output(0).at(),
            bytes,
        };
        return Ok(Lowering::Work(if bytes == 0 { vec![] } else { vec![copy] }));
    }
    for &a in &list {
        mask[axis_of(a, rank)?] = true;
    }
    let shape: Vec<usize> = x
        .shape
        .iter()
        .zip(&mask)
        .filter_map(|(&d, &red)| match (red, keepdims) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    if shape != y.shape {
        return Err(Unsupported::new(format!(
            "reducing {:?} gives {shape:?}, not the output's {:?}",
            x.shape, y.shape
        )));
    }
    if x.elements() == 0 && y.elements() > 0 {
        return Err(Unsupported::new("reducing an empty input"));
    }
    let p = reduce_params(code, x.shape, &mask)?;
    let args = vec![
        Arg::Ptr(Buf::Input(0).at()),
        Arg::I64(y.elements() as i64),
        Arg::Pod(params::bytes(&p)),
        Arg::Ptr(Buf::Output(0).at()),
    ];
    Ok(one("runtime_reduce", y.elements(), args))
}

/// The kernel's view of `shape` reduced over the axes `mask` marks: reduce.rs's `merged` axes
/// (extent-1 axes dropped, neighbours alike merged), which fix the CPU's summation order.
fn reduce_params(op: i32, shape: &[usize], mask: &[bool]) -> Result<ReduceParams, Unsupported> {
    let mut merged: Vec<(usize, bool)> = Vec::new();
    for (&d, &red) in shape.iter().zip(mask) {
        match merged.last_mut() {
            _ if d == 1 => {}
            Some(last) if last.1 == red => last.0 *= d,
            _ => merged.push((d, red)),
        }
    }
    let mut p = ReduceParams {
        kept: [0; MAX_RANK],
        kept_stride: [0; MAX_RANK],
        reduced: [0; MAX_RANK],
        reduced_stride: [0; MAX_RANK],
        count: shape
            .iter()
            .zip(mask)
            .filter(|d| *d.1)
            .map(|d| *d.0)
            .product::<usize>() as i64,
        kept_rank: 0,
        reduced_rank: 0,
        op,
        row: i32::from(merged.last().is_some_and(|d| d.1)),
    };
    let mut stride = merged.iter().map(|d| d.0).product::<usize>();
    for &(d, red) in &merged {
        stride /= d;
        let (extents, strides, rank) = match red {
            true => (&mut p.reduced, &mut p.reduced_stride, &mut p.reduced_rank),
            false => (&mut p.kept, &mut p.kept_stride, &mut p.kept_rank),
        };
        let i = *rank as usize;
        if i == MAX_RANK {
            return Err(Unsupported::new(format!(
                "reducing {shape:?} over {mask:?} alternates more than {MAX_RANK} times"
            )));
        }
        (extents[i], strides[i]) = (d as i64, stride as i64);
        *rank += 1;
    }
    Ok(p)
}

pub(super) fn softmax(
    axis: i64,
    log: bool,
    flatten: bool,
    cx: &mut Cx,
) -> Result<Lowering, Unsupported> {
    cx.all_f32()?;
    if log {
        return Err(Unsupported::new("LogSoftmax has no CUDA kernel"));
    }
    let x = cx.input(0)?;
    // The CPU's (outer, axis, inner) split; a scalar is one row of one element.
    let (outer, n, inner) = match x.shape.len() {
        0 => (1, 1, 1),
        rank => {
            let a = axis_of(axis, rank)?;
            let (before, after) = (&x.shape[..a], &x.shape[a + 1..]);
            let outer = before.iter().product::<usize>();
            match flatten {
                true => (outer, x.shape[a..].iter().product(), 1),
                false => (outer, x.shape[a], after.iter().product()),
            }
        }
    };
    let threads = if x.elements() == 0 { 0 } else { outer * inner };
    let (input, output) = (Arg::Ptr(Buf::Input(0).at()), Arg::Ptr(Buf::Output(0).at()));
    let (outer, n, inner) = (outer as i64, n as i64, inner as i64);
    // The CPU runs rows whenever the axis has nothing inside it, even if it is not the last.
    Ok(if inner == 1 {
        let args = vec![input, Arg::I64(outer), Arg::I64(n), output];
        one("runtime_softmax", threads, args)
    } else {
        let args = vec![input, Arg::I64(outer), Arg::I64(n), Arg::I64(inner), output];
        one("runtime_softmax_inner", threads, args)
    })
}

/// Whether `t`, broadcast to `normalized` as the CPU's `broadcast_to` does, is the same
/// `normalized`-sized row: every axis equal, or of extent 1 where the target is too.
fn row_shaped(t: &Operand, normalized: &[usize]) -> bool {
    let Some(lead) = normalized.len().checked_sub(t.shape.len()) else {
        return false;
    };
    normalized[..lead].iter().all(|&d| d == 1) && t.shape == &normalized[lead..]
}

pub(super) fn layer_norm(axis: i64, epsilon: f32, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    cx.all_f32()?;
    if cx.output_count() > 1 {
        return Err(Unsupported::new(
            "LayerNormalization's mean and inverse deviation outputs have no CUDA kernel",
        ));
    }
    let x = cx.input(0)?;
    let a = axis_of(axis, x.shape.len())?;
    let normalized = &x.shape[a..];
    let (scale, bias) = (cx.input(1)?, cx.optional(2));
    if !row_shaped(&scale, normalized) || bias.is_some_and(|b| !row_shaped(&b, normalized)) {
        return Err(Unsupported::new(format!(
            "LayerNormalization's scale or bias is broadcast to the normalized axes {normalized:?}"
        )));
    }
    let cols: usize = normalized.iter().product();
    let rows: usize = x.shape[..a].iter().product();
    let args = vec![
        Arg::Ptr(Buf::Input(0).at()),
        Arg::Ptr(Buf::Input(1).at()),
        match bias {
            Some(_) => Arg::Ptr(Buf::Input(2).at()),
            None => Arg::Null,
        },
        Arg::F32(epsilon),
        Arg::I64(rows as i64),
        Arg::I64(cols as i64),
        Arg::Ptr(Buf::Output(0).at()),
    ];
    Ok(one(
        "runtime_layer_norm",
        if cols == 0 { 0 } else { rows },
        args,
    ))
}

pub(super) fn batch_norm(epsilon: f32, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    cx.all_f32()?;
    if cx.output_count() > 1 {
        return Err(Unsupported::new(
            "BatchNormalization's training outputs have no CUDA kernel",
        ));
    }
    let x = cx.input(0)?;
    let [_, channels, rest @ ..] = x.shape else {
        return Err(Unsupported::new(format!(
            "BatchNormalization of the shape {:?}, which has no channel axis",
            x.shape
        )));
    };
    for port in 1..=4 {
        if cx.input(port)?.elements() != *channels {
            return Err(Unsupported::new(format!(
                "BatchNormalization's input {port} does not hold one value per channel"
            )));
        }
    }
    let inner: usize = rest.iter().product();
    let mut args: Vec<Arg> = (0..5).map(|p| Arg::Ptr(Buf::Input(p).at())).collect();
    args.extend([
        Arg::F32(epsilon),
        Arg::I64(*channels as i64),
        Arg::I64(inner as i64),
        Arg::I64(x.elements() as i64),
        Arg::Ptr(Buf::Output(0).at()),
    ]);
    Ok(one("runtime_batch_norm", x.elements(), args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(shape: &[usize]) -> Operand<'_> {
        Operand {
            dtype: DType::F32,
            shape,
            known: None,
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

    fn axes(t: &crate::Tensor) -> Operand<'_> {
        Operand {
            dtype: DType::I64,
            shape: &[2],
            known: Some(t),
        }
    }

    /// [2, 3, 4, 5] over axes 1 and 2: merged [2 kept, 12 reduced, 5 kept] with strides 60, 5, 1
    /// by hand; the last axis is kept, so each element is added on its own.
    #[test]
    fn middle_axes_merge_into_one_strided_run() {
        let list = crate::Tensor::i64(vec![2], vec![1, -2]);
        let (x, y) = ([2, 3, 4, 5], [2, 5]);
        let mut cx = Cx::new(vec![Some(f32s(&x)), Some(axes(&list))], vec![f32s(&y)]);
        let l = launch(reduce(ReduceOp::Mean, false, false, &mut cx).unwrap());
        let mut want = ReduceParams {
            kept: [0; MAX_RANK],
            kept_stride: [0; MAX_RANK],
            reduced: [0; MAX_RANK],
            reduced_stride: [0; MAX_RANK],
            count: 12,
            kept_rank: 2,
            reduced_rank: 1,
            op: 1,
            row: 0,
        };
        want.kept[..2].copy_from_slice(&[2, 5]);
        want.kept_stride[..2].copy_from_slice(&[60, 1]);
        (want.reduced[0], want.reduced_stride[0]) = (12, 5);
        assert_eq!(l.function, "runtime_reduce");
        assert_eq!(l.args[1], Arg::I64(10));
        assert_eq!(l.args[2], Arg::Pod(params::bytes(&want)));
    }

    /// [2, 1, 4, 5] over the last two axes: the unit axis drops out and the reduced axes are one
    /// contiguous row of 20, summed as the CPU's `sum_row` sums it.
    #[test]
    fn trailing_axes_are_one_row() {
        let p = reduce_params(0, &[2, 1, 4, 5], &[false, false, true, true]).unwrap();
        assert_eq!((p.kept_rank, p.kept[0], p.kept_stride[0]), (1, 2, 20));
        assert_eq!(
            (p.reduced_rank, p.reduced[0], p.reduced_stride[0]),
            (1, 20, 1)
        );
        assert_eq!((p.row, p.count), (1, 20));
        // Every axis, all of extent 1: no merged axis at all, one element added to 0.
        let p = reduce_params(2, &[1, 1], &[true, true]).unwrap();
        assert_eq!((p.kept_rank, p.reduced_rank, p.row, p.count), (0, 0, 0, 1));
    }

    #[test]
    fn what_the_kernels_lack_stays_on_the_cpu() {
        let (x, y) = ([2, 3], [2, 1]);
        let list = crate::Tensor::i64(vec![1], vec![1]);
        let given = Operand {
            shape: &[1],
            ..axes(&list)
        };
        let mut cx = Cx::new(vec![Some(f32s(&x)), Some(given)], vec![f32s(&y)]);
        assert!(reduce(ReduceOp::Prod, true, false, &mut cx).is_err());
        assert!(reduce(ReduceOp::Sum, true, false, &mut cx).is_ok());
        let in_the_run = Operand {
            known: None,
            ..given
        };
        let mut cx = Cx::new(vec![Some(f32s(&x)), Some(in_the_run)], vec![f32s(&y)]);
        assert!(reduce(ReduceOp::Sum, true, false, &mut cx).is_err());
        let mut cx = Cx::new(vec![Some(f32s(&x))], vec![f32s(&x)]);
        assert!(softmax(-1, true, false, &mut cx).is_err());
        let scale = [3];
        let mut cx = Cx::new(vec![Some(f32s(&x)), Some(f32s(&scale))], vec![f32s(&x)]);
        assert!(layer_norm(-1, 1e-5, &mut cx).is_ok());
        // A scale of one value, broadcast over the row.
        let mut cx = Cx::new(vec![Some(f32s(&x)), Some(f32s(&[1]))], vec![f32s(&x)]);
        assert!(layer_norm(-1, 1e-5, &mut cx).is_err());
    }

    /// An empty axis list with noop_with_empty_axes is the input itself; without, every axis.
    #[test]
    fn empty_axes() {
        let (x, one) = ([2, 3], [1, 1]);
        let mut cx = Cx::new(vec![Some(f32s(&x))], vec![f32s(&x)]);
        let copy = Work::Copy {
            from: Buf::Input(0).at(),
            to: Buf::Output(0).at(),
            bytes: 24,
        };
        assert_eq!(
            reduce(ReduceOp::Max, true, true, &mut cx).unwrap(),
            Lowering::Work(vec![copy])
        );
        let mut cx = Cx::new(vec![Some(f32s(&x))], vec![f32s(&one)]);
        let l = launch(reduce(ReduceOp::Max, true, false, &mut cx).unwrap());
        assert_eq!(l.args[1], Arg::I64(1));
    }

    /// YOLOv8's box distribution, [1, 16, 4, 8400] on axis 1: one thread per (outer, inner)
    /// column; the same over the last axis runs rows, as does a flattened softmax.
    #[test]
    fn softmax_runs_rows_or_columns() {
        let x = [1, 16, 4, 8400];
        let mut cx = Cx::new(vec![Some(f32s(&x))], vec![f32s(&x)]);
        let l = launch(softmax(1, false, false, &mut cx).unwrap());
        assert_eq!(l.function, "runtime_softmax_inner");
        assert_eq!(
            l.args[1..4],
            [Arg::I64(1), Arg::I64(16), Arg::I64(4 * 8400)]
        );
        assert_eq!(l.grid[0], (4 * 8400u32).div_ceil(256));
        let l = launch(softmax(-1, false, false, &mut cx).unwrap());
        assert_eq!(l.function, "runtime_softmax");
        assert_eq!(l.args[1..3], [Arg::I64(16 * 4), Arg::I64(8400)]);
        let l = launch(softmax(1, false, true, &mut cx).unwrap());
        assert_eq!(l.args[1..3], [Arg::I64(1), Arg::I64(16 * 4 * 8400)]);
    }

    #[test]
    fn batch_norm_takes_one_value_per_channel() {
        let (x, c) = ([2, 3, 4, 4], [3]);
        let params = || Some(f32s(&c));
        let inputs = vec![Some(f32s(&x)), params(), params(), params(), params()];
        let mut cx = Cx::new(inputs, vec![f32s(&x)]);
        let l = launch(batch_norm(1e-5, &mut cx).unwrap());
        assert_eq!(
            l.args[5..9],
            [Arg::F32(1e-5), Arg::I64(3), Arg::I64(16), Arg::I64(96)]
        );
        let wrong = [4];
        let inputs = vec![
            Some(f32s(&x)),
            params(),
            params(),
            params(),
            Some(f32s(&wrong)),
        ];
        let mut cx = Cx::new(inputs, vec![f32s(&x)]);
        assert!(batch_norm(1e-5, &mut cx).is_err());
    }
}
