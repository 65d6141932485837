//! Data movement on the GPU, any dtype (the kernels move 1-, 2-, 4- or 8-byte elements):
//! Transpose, Slice, Split and Expand as strided copies (`movement.cuh`), Concat as one copy per
//! input into its place, with the semantics of the CPU's `cpu/shape_ops.rs`, `indexing.rs` and
//! `fill.rs`; Gather and Pad in [`indexed`].
//!
//! Limits, each left to the CPU: more than [`MAX_RANK`] axes; a Slice's bounds and an Expand's
//! shape must be known before the run. Inputs the CPU rejects (a zero step, an axis given
//! twice) are left to it, to report.

mod indexed;

pub(super) use indexed::{gather, pad};

use super::params::{self, layout, Layout, Pod};
use super::{grid_stride, Arg, At, Buf, Cx, Lowering, Unsupported, Work};
use temblor_ir::DType;

/// math.cuh's `RT_MAX_RANK`: the axes a parameter struct has room for.
pub(super) const MAX_RANK: usize = 6;

/// movement.cuh's `StridedParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct StridedParams {
    rank: i32,
    reserved: i32,
    extent: [i64; MAX_RANK],
    stride: [i64; MAX_RANK],
    offset: i64,
}

// SAFETY: repr(C), two 4-byte fields then 8-byte ones: no padding.
unsafe impl Pod for StridedParams {}

/// movement.cuh's `ConcatParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct ConcatParams {
    chunk: i64,
    row: i64,
    offset: i64,
}

// SAFETY: repr(C), three 8-byte fields.
unsafe impl Pod for ConcatParams {}

pub(super) const LAYOUTS: &[Layout] = &[
    layout!(
        StridedParams,
        "StridedParams",
        [rank, reserved, extent, stride, offset]
    ),
    layout!(ConcatParams, "ConcatParams", [chunk, row, offset]),
    layout!(
        indexed::GatherParams,
        "GatherParams",
        [extent, inner, count]
    ),
    layout!(
        indexed::PadParams,
        "PadParams",
        [rank, mode, extent, in_stride, before, lo, kept, fill]
    ),
];

/// The kernel of `family` (`["runtime_x_1", "_2", "_4", "_8"]`) for `dtype`'s element size.
fn sized(family: [&'static str; 4], dtype: DType) -> &'static str {
    match dtype.size_bytes() {
        1 => family[0],
        2 => family[1],
        4 => family[2],
        _ => family[3],
    }
}

const STRIDED: [&str; 4] = [
    "runtime_strided_copy_1",
    "runtime_strided_copy_2",
    "runtime_strided_copy_4",
    "runtime_strided_copy_8",
];

/// Row-major strides of `shape`, in elements.
fn strides(shape: &[usize]) -> Vec<i64> {
    let mut s = vec![1i64; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * shape[k + 1] as i64;
    }
    s
}

fn check_rank(rank: usize) -> Result<(), Unsupported> {
    if rank > MAX_RANK {
        return Err(Unsupported::new(format!(
            "rank {rank}, past the kernels' {MAX_RANK}"
        )));
    }
    Ok(())
}

/// `axis` counted from the end when negative, as the CPU's `normalize_axis`.
fn normalize_axis(axis: i64, rank: usize) -> Result<usize, Unsupported> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(a)
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| Unsupported::new(format!("axis {axis} is out of range for rank {rank}")))
}

/// A strided read of `(extent, stride)` walks from `offset`.
fn strided_params(walk: &[(usize, i64)], offset: i64) -> StridedParams {
    let mut p = StridedParams {
        rank: walk.len() as i32,
        reserved: 0,
        extent: [0; MAX_RANK],
        stride: [0; MAX_RANK],
        offset,
    };
    for (k, &(n, s)) in walk.iter().enumerate() {
        p.extent[k] = n as i64;
        p.stride[k] = s;
    }
    p
}

/// The launch copying the strided read `p` of `from` to `to`, unless it is empty.
fn strided_copy(from: At, p: &StridedParams, dtype: DType, to: At) -> Option<Work> {
    let n: i64 = p.extent[..p.rank as usize].iter().product();
    (n > 0).then(|| {
        let args = vec![
            Arg::Ptr(from),
            Arg::I64(n),
            Arg::Pod(params::bytes(p)),
            Arg::Ptr(to),
        ];
        Work::Launch(grid_stride(sized(STRIDED, dtype), n as usize, args))
    })
}

/// The one strided copy from input 0 to output 0, if the walk gives the output's shape.
fn strided_node(walk: &[(usize, i64)], offset: i64, cx: &Cx) -> Result<Lowering, Unsupported> {
    check_rank(walk.len())?;
    let (x, out) = (cx.input(0)?, cx.output(0));
    if walk.iter().map(|w| w.0).ne(out.shape.iter().copied()) || x.dtype != out.dtype {
        return Err(Unsupported::new(format!(
            "the output {} {:?} is not the {} input moved",
            out.dtype, out.shape, x.dtype
        )));
    }
    let p = strided_params(walk, offset);
    let work = strided_copy(Buf::Input(0).at(), &p, x.dtype, Buf::Output(0).at());
    Ok(Lowering::Work(work.into_iter().collect()))
}

pub(super) fn transpose(perm: &[usize], cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let x = cx.input(0)?;
    let mut seen = vec![false; x.shape.len()];
    let permutes = perm.len() == x.shape.len()
        && perm
            .iter()
            .all(|&a| a < seen.len() && !std::mem::replace(&mut seen[a], true));
    if !permutes {
        return Err(Unsupported::new(format!(
            "perm {perm:?} does not permute {} axes",
            x.shape.len()
        )));
    }
    let s = strides(x.shape);
    let walk: Vec<(usize, i64)> = perm.iter().map(|&a| (x.shape[a], s[a])).collect();
    strided_node(&walk, 0, cx)
}

/// Known axes, normalized and distinct, as the CPU's `distinct_axes`.
fn distinct_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, Unsupported> {
    let mut seen = vec![false; rank];
    axes.iter()
        .map(|&a| {
            let ax = normalize_axis(a, rank)?;
            if std::mem::replace(&mut seen[ax], true) {
                return Err(Unsupported::new(format!("axis {a} is given twice")));
            }
            Ok(ax)
        })
        .collect()
}

/// Input `port`'s known value as the CPU's `int_list` takes it: int64 or int32, at most 1-D.
fn known_list(cx: &Cx, port: usize) -> Result<Vec<i64>, Unsupported> {
    let input = cx.input(port)?;
    if !matches!(input.dtype, DType::I64 | DType::I32) || input.shape.len() > 1 {
        return Err(Unsupported::new(format!(
            "input {port} is {} {:?}, not an int64 or int32 list",
            input.dtype, input.shape
        )));
    }
    cx.known_ints(port)
}

/// Input `port`'s known axes, or every axis up to `count` when it is absent.
fn axes_input(cx: &Cx, port: usize, count: usize, rank: usize) -> Result<Vec<usize>, Unsupported> {
    match cx.optional(port) {
        Some(_) => distinct_axes(&known_list(cx, port)?, rank),
        None => Ok((0..count).collect()),
    }
}

pub(super) fn slice(cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let x = cx.input(0)?;
    let (starts, ends) = (known_list(cx, 1)?, known_list(cx, 2)?);
    let axes = axes_input(cx, 3, starts.len(), x.shape.len())?;
    let steps = match cx.optional(4) {
        Some(_) => known_list(cx, 4)?,
        None => vec![1; starts.len()],
    };
    let n = axes.len();
    let sliceable = starts.len() == n && ends.len() == n && steps.len() == n;
    if !sliceable || steps.contains(&0) || axes.iter().any(|&a| a >= x.shape.len()) {
        return Err(Unsupported::new(format!(
            "starts {starts:?}, ends {ends:?}, axes {axes:?} and steps {steps:?} do not slice"
        )));
    }
    let s = strides(x.shape);
    let mut walk: Vec<(usize, i64)> = x.shape.iter().copied().zip(s.iter().copied()).collect();
    let mut offset = 0;
    for (i, &a) in axes.iter().enumerate() {
        let (first, len) = crate::cpu::slice_bounds(x.shape[a], starts[i], ends[i], steps[i]);
        // With one element or none the stride is never taken, and a huge step must not
        // overflow it.
        let stride = if len > 1 { steps[i] * s[a] } else { 0 };
        walk[a] = (len, stride);
        offset += first as i64 * s[a];
    }
    strided_node(&walk, offset, cx)
}

pub(super) fn split(axis: i64, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let x = cx.input(0)?;
    check_rank(x.shape.len())?;
    let axis = normalize_axis(axis, x.shape.len())?;
    let s = strides(x.shape);
    let mut start = 0;
    let mut work = Vec::new();
    for port in 0..cx.output_count() {
        let out = cx.output(port);
        let fits = out.dtype == x.dtype
            && out.shape.len() == x.shape.len()
            && (0..x.shape.len()).all(|k| k == axis || out.shape[k] == x.shape[k]);
        if !fits {
            return Err(Unsupported::new(format!(
                "output {port} {:?} is no part of {:?} along axis {axis}",
                out.shape, x.shape
            )));
        }
        let walk: Vec<(usize, i64)> = out.shape.iter().copied().zip(s.iter().copied()).collect();
        let p = strided_params(&walk, start as i64 * s[axis]);
        work.extend(strided_copy(
            Buf::Input(0).at(),
            &p,
            x.dtype,
            Buf::Output(port).at(),
        ));
        start += out.shape[axis];
    }
    if start != x.shape[axis] {
        return Err(Unsupported::new(format!(
            "the outputs take {start} of axis {axis}'s {}",
            x.shape[axis]
        )));
    }
    Ok(Lowering::Work(work))
}

pub(super) fn expand(cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let x = cx.input(0)?;
    let target = known_list(cx, 1)?;
    let rank = x.shape.len().max(target.len());
    let (xpad, tpad) = (rank - x.shape.len(), rank - target.len());
    let s = strides(x.shape);
    let mut walk = Vec::with_capacity(rank);
    for i in 0..rank {
        let (d, stride) = i.checked_sub(xpad).map_or((1, 0), |j| (x.shape[j], s[j]));
        let t = i.checked_sub(tpad).map_or(1, |j| target[j]);
        let n = match (d as i64, t) {
            (d, t) if d == t || t == 1 => d as usize,
            (1, t) if t >= 0 => t as usize,
            _ => {
                return Err(Unsupported::new(format!(
                    "shape {:?} does not expand to {target:?}",
                    x.shape
                )))
            }
        };
        walk.push((n, if d == 1 { 0 } else { stride }));
    }
    strided_node(&walk, 0, cx)
}

const CONCAT: [&str; 4] = [
    "runtime_concat_part_1",
    "runtime_concat_part_2",
    "runtime_concat_part_4",
    "runtime_concat_part_8",
];

pub(super) fn concat(axis: i64, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let out = cx.output(0);
    let axis = normalize_axis(axis, out.shape.len())?;
    let row: usize = out.shape[axis..].iter().product();
    let mut offset = 0;
    let mut work = Vec::new();
    for port in 0..cx.input_count() {
        let x = cx.input(port)?;
        let fits = x.dtype == out.dtype
            && x.shape.len() == out.shape.len()
            && (0..x.shape.len()).all(|k| k == axis || x.shape[k] == out.shape[k]);
        if !fits {
            return Err(Unsupported::new(format!(
                "input {port} {:?} is no part of {:?} along axis {axis}",
                x.shape, out.shape
            )));
        }
        let chunk: usize = x.shape[axis..].iter().product();
        let n = x.elements();
        if n > 0 {
            let p = ConcatParams {
                chunk: chunk as i64,
                row: row as i64,
                offset: offset as i64,
            };
            let args = vec![
                Arg::Ptr(Buf::Input(port).at()),
                Arg::I64(n as i64),
                Arg::Pod(params::bytes(&p)),
                Arg::Ptr(Buf::Output(0).at()),
            ];
            work.push(Work::Launch(grid_stride(sized(CONCAT, out.dtype), n, args)));
        }
        offset += chunk;
    }
    if offset != row {
        return Err(Unsupported::new(format!(
            "the inputs fill {offset} of the output's {row} per outer index"
        )));
    }
    Ok(Lowering::Work(work))
}

#[cfg(test)]
mod tests {
    use super::super::{Launch, Operand};
    use super::*;
    use crate::Tensor;

    pub(super) fn operand<'a>(
        dtype: DType,
        shape: &'a [usize],
        known: Option<&'a Tensor>,
    ) -> Operand<'a> {
        Operand {
            dtype,
            shape,
            known,
        }
    }

    pub(super) fn launches(l: Lowering) -> Vec<Launch> {
        let Lowering::Work(work) = l else {
            panic!("an alias")
        };
        work.into_iter()
            .map(|w| match w {
                Work::Launch(l) => l,
                other => panic!("not a launch: {other:?}"),
            })
            .collect()
    }

    /// The parameter struct of a launch, read back from its bytes.
    pub(super) fn pod<T: Pod>(l: &Launch, arg: usize) -> T {
        let Arg::Pod(bytes) = &l.args[arg] else {
            panic!("argument {arg} is not a struct")
        };
        assert_eq!(bytes.len(), std::mem::size_of::<T>());
        // SAFETY: `T` is `Pod`, so any bytes of its size are a value of it.
        unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) }
    }

    /// The input elements a strided copy reads, in output order.
    fn sources(p: &StridedParams) -> Vec<i64> {
        let rank = p.rank as usize;
        let n: i64 = p.extent[..rank].iter().product();
        (0..n)
            .map(|mut e| {
                let mut at = p.offset;
                for k in (0..rank).rev() {
                    at += e % p.extent[k] * p.stride[k];
                    e /= p.extent[k];
                }
                at
            })
            .collect()
    }

    #[test]
    fn transpose_reads_each_element_at_its_permuted_index() {
        let (shape, perm, out) = ([2usize, 3, 4], [2usize, 0, 1], [4usize, 2, 3]);
        let mut cx = Cx::new(
            vec![Some(operand(DType::F32, &shape, None))],
            vec![operand(DType::F32, &out, None)],
        );
        let l = launches(transpose(&perm, &mut cx).unwrap()).remove(0);
        assert_eq!(l.function, "runtime_strided_copy_4");
        // Output (i, j, k) is input (j, k, i).
        let mut want = Vec::new();
        for i in 0..4 {
            for j in 0..2 {
                for k in 0..3 {
                    want.push((j * 12 + k * 4 + i) as i64);
                }
            }
        }
        assert_eq!(sources(&pod(&l, 2)), want);
        assert!(transpose(&[0, 0, 1], &mut cx).is_err());
    }

    #[test]
    fn slice_clamps_and_steps_backwards_as_the_cpu() {
        // x[-1:-6:-2, 1:100:2] of a 5x4 tensor: rows 4, 2, 0 and columns 1, 3.
        let shape = [5usize, 4];
        let out = [3usize, 2];
        let ints = |v: Vec<i64>| Tensor::i64(vec![v.len()], v);
        let (starts, ends) = (ints(vec![-1, 1]), ints(vec![-6, 100]));
        let (axes, steps) = (ints(vec![0, -1]), ints(vec![-2, 2]));
        let two = [2usize];
        let known = |t| Some(operand(DType::I64, &two, Some(t)));
        let mut cx = Cx::new(
            vec![
                Some(operand(DType::U8, &shape, None)),
                known(&starts),
                known(&ends),
                known(&axes),
                known(&steps),
            ],
            vec![operand(DType::U8, &out, None)],
        );
        let l = launches(slice(&mut cx).unwrap()).remove(0);
        assert_eq!(l.function, "runtime_strided_copy_1");
        assert_eq!(sources(&pod(&l, 2)), [17, 19, 9, 11, 1, 3]);
        let computed = Some(operand(DType::I64, &two, None));
        let mut cx = Cx::new(
            vec![
                Some(operand(DType::U8, &shape, None)),
                computed,
                known(&ends),
            ],
            vec![operand(DType::U8, &out, None)],
        );
        assert!(slice(&mut cx).is_err());
    }

    #[test]
    fn expand_repeats_along_stretched_axes() {
        let (shape, out) = ([3usize, 1], [2usize, 3, 4]);
        let target = Tensor::i64(vec![3], vec![2, 1, 4]);
        let mut cx = Cx::new(
            vec![
                Some(operand(DType::I64, &shape, None)),
                Some(operand(DType::I64, &[3], Some(&target))),
            ],
            vec![operand(DType::I64, &out, None)],
        );
        let l = launches(expand(&mut cx).unwrap()).remove(0);
        assert_eq!(l.function, "runtime_strided_copy_8");
        let want: Vec<i64> = (0..24).map(|e| e / 4 % 3).collect();
        assert_eq!(sources(&pod(&l, 2)), want);
    }

    #[test]
    fn concat_and_split_place_each_part_after_the_ones_before() {
        let (a, b, whole) = ([2usize, 3, 4], [2usize, 1, 4], [2usize, 4, 4]);
        let mut cx = Cx::new(
            vec![
                Some(operand(DType::F16, &a, None)),
                Some(operand(DType::F16, &b, None)),
            ],
            vec![operand(DType::F16, &whole, None)],
        );
        let parts = launches(concat(-2, &mut cx).unwrap());
        let p: Vec<ConcatParams> = parts.iter().map(|l| pod(l, 2)).collect();
        assert_eq!(parts[0].function, "runtime_concat_part_2");
        assert_eq!((p[0].chunk, p[0].row, p[0].offset), (12, 16, 0));
        assert_eq!((p[1].chunk, p[1].row, p[1].offset), (4, 16, 12));

        let mut cx = Cx::new(
            vec![Some(operand(DType::F16, &whole, None))],
            vec![operand(DType::F16, &a, None), operand(DType::F16, &b, None)],
        );
        let parts = launches(split(1, &mut cx).unwrap());
        let second: Vec<i64> = (0..2)
            .flat_map(|o| (12..16).map(move |i| o * 16 + i))
            .collect();
        assert_eq!(sources(&pod(&parts[1], 2)), second);
        assert_eq!(parts[1].args[3], Arg::Ptr(Buf::Output(1).at()));
        let mut short = Cx::new(
            vec![Some(operand(DType::F16, &whole, None))],
            vec![operand(DType::F16, &a, None)],
        );
        assert!(split(1, &mut short).is_err());
    }
}
