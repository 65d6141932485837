//! Gather and Pad: element moves whose source is looked up per element, in an index tensor or
//! through a per-axis map (`convert.cuh`), with the semantics of the CPU's `cpu/indexing.rs` and
//! `fill.rs`. Known Gather indices are resolved and range-checked here, so that an index out of
//! range is the CPU's error rather than the kernel's zeros; computed ones must be int64. A Pad's
//! pads, axes and constant must be known, the constant of the input's dtype.

use super::{axes_input, check_rank, known_list, normalize_axis, sized, strides, MAX_RANK};
use crate::cuda::lower::params::{self, Pod};
use crate::cuda::lower::{grid_stride, Arg, Buf, Cx, Lowering, Unsupported, Work};
use crate::Tensor;
use temblor_ir::{DType, PadMode};

/// convert.cuh's `GatherParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct GatherParams {
    pub(super) extent: i64,
    pub(super) inner: i64,
    pub(super) count: i64,
}

// SAFETY: repr(C), three 8-byte fields.
unsafe impl Pod for GatherParams {}

/// convert.cuh's `PadParams`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct PadParams {
    pub(super) rank: i32,
    pub(super) mode: i32,
    pub(super) extent: [i64; MAX_RANK],
    pub(super) in_stride: [i64; MAX_RANK],
    pub(super) before: [i64; MAX_RANK],
    pub(super) lo: [i64; MAX_RANK],
    pub(super) kept: [i64; MAX_RANK],
    pub(super) fill: u64,
}

// SAFETY: repr(C), two 4-byte fields then 8-byte ones: no padding.
unsafe impl Pod for PadParams {}

const GATHER: [&str; 4] = [
    "runtime_gather_1",
    "runtime_gather_2",
    "runtime_gather_4",
    "runtime_gather_8",
];

pub(in crate::cuda::lower) fn gather(axis: i64, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let (x, indices, out) = (cx.input(0)?, cx.input(1)?, cx.output(0));
    let ax = normalize_axis(axis, x.shape.len())?;
    let extent = x.shape[ax];
    let mut shape = x.shape[..ax].to_vec();
    shape.extend_from_slice(indices.shape);
    shape.extend_from_slice(&x.shape[ax + 1..]);
    if shape != out.shape || out.dtype != x.dtype {
        return Err(Unsupported::new(format!(
            "the output {:?} is not a gather of {:?} by {:?}",
            out.shape, x.shape, indices.shape
        )));
    }
    let index_buf = match (indices.known, indices.dtype) {
        (Some(_), DType::I64 | DType::I32) => {
            let resolved = cx
                .known_ints(1)?
                .into_iter()
                .map(|i| {
                    let j = if i < 0 {
                        i.saturating_add(extent as i64)
                    } else {
                        i
                    };
                    (0..extent as i64).contains(&j).then_some(j).ok_or_else(|| {
                        Unsupported::new(format!("index {i} is out of range for extent {extent}"))
                    })
                })
                .collect::<Result<Vec<i64>, _>>()?;
            cx.derive(Tensor::i64(indices.shape.to_vec(), resolved))
        }
        (None, DType::I64) => Buf::Input(1),
        (known, other) => {
            let when = if known.is_some() {
                "known"
            } else {
                "computed in the run"
            };
            return Err(Unsupported::new(format!(
                "{other} indices {when} (the kernel reads int64, the CPU int64 or int32)"
            )));
        }
    };
    let n = out.elements();
    let p = GatherParams {
        extent: extent as i64,
        inner: x.shape[ax + 1..].iter().product::<usize>() as i64,
        count: indices.elements() as i64,
    };
    let mut work = Vec::new();
    if n > 0 {
        let args = vec![
            Arg::Ptr(Buf::Input(0).at()),
            Arg::Ptr(index_buf.at()),
            Arg::I64(n as i64),
            Arg::Pod(params::bytes(&p)),
            Arg::Ptr(Buf::Output(0).at()),
        ];
        work.push(Work::Launch(grid_stride(sized(GATHER, x.dtype), n, args)));
    }
    Ok(Lowering::Work(work))
}

const PAD: [&str; 4] = [
    "runtime_pad_1",
    "runtime_pad_2",
    "runtime_pad_4",
    "runtime_pad_8",
];

/// Input 2's value, the fill, as bits in the low bytes: 0 when absent or empty, as the CPU's.
fn pad_fill(cx: &Cx, dtype: DType) -> Result<u64, Unsupported> {
    let Some(c) = cx.optional(2) else {
        return Ok(0);
    };
    let known = c.known.ok_or_else(|| {
        Unsupported::new("the constant value is computed in the run, not known before")
    })?;
    if known.dtype() != dtype {
        return Err(Unsupported::new(format!(
            "a {} constant padding {dtype}",
            known.dtype()
        )));
    }
    let mut bytes = [0u8; 8];
    let le = known.data.to_le_bytes();
    let size = dtype.size_bytes().min(le.len());
    bytes[..size].copy_from_slice(&le[..size]);
    Ok(u64::from_le_bytes(bytes))
}

pub(in crate::cuda::lower) fn pad(mode: PadMode, cx: &mut Cx) -> Result<Lowering, Unsupported> {
    let (x, out) = (cx.input(0)?, cx.output(0));
    let r = x.shape.len();
    check_rank(r)?;
    if out.dtype != x.dtype || out.shape.len() != r {
        return Err(Unsupported::new(
            "the output is not of the input's dtype and rank",
        ));
    }
    let axes = axes_input(cx, 3, r, r)?;
    let pads = known_list(cx, 1)?;
    if pads.len() != 2 * axes.len() {
        return Err(Unsupported::new(format!(
            "{} pads for {} axes",
            pads.len(),
            axes.len()
        )));
    }
    let mut p = PadParams {
        rank: r as i32,
        mode: match mode {
            PadMode::Constant => 0,
            PadMode::Reflect => 1,
            PadMode::Edge => 2,
            PadMode::Wrap => 3,
        },
        extent: [0; MAX_RANK],
        in_stride: [0; MAX_RANK],
        before: [0; MAX_RANK],
        lo: [0; MAX_RANK],
        kept: [0; MAX_RANK],
        fill: pad_fill(cx, x.dtype)?,
    };
    let (mut begin, mut end) = (vec![0i64; r], vec![0i64; r]);
    for (i, &a) in axes.iter().enumerate() {
        begin[a] = pads[i];
        end[a] = pads[i + axes.len()];
    }
    let s = strides(x.shape);
    for a in 0..r {
        let n = (x.shape[a] as i64)
            .checked_add(begin[a])
            .and_then(|n| n.checked_add(end[a]));
        let lo = begin[a].saturating_neg().max(0);
        let kept = (x.shape[a] as i64)
            .saturating_sub(lo)
            .saturating_sub(end[a].saturating_neg().max(0));
        let readable = kept > 0 || mode == PadMode::Constant || n == Some(0);
        if n != Some(out.shape[a] as i64) || !readable {
            return Err(Unsupported::new(format!(
                "{mode:?} pads {pads:?} do not pad {:?} to {:?}",
                x.shape, out.shape
            )));
        }
        p.extent[a] = out.shape[a] as i64;
        p.in_stride[a] = s[a];
        p.before[a] = begin[a].max(0);
        p.lo[a] = lo;
        p.kept[a] = kept;
    }
    let n = out.elements();
    let mut work = Vec::new();
    if n > 0 {
        let args = vec![
            Arg::Ptr(Buf::Input(0).at()),
            Arg::I64(n as i64),
            Arg::Pod(params::bytes(&p)),
            Arg::Ptr(Buf::Output(0).at()),
        ];
        work.push(Work::Launch(grid_stride(sized(PAD, x.dtype), n, args)));
    }
    Ok(Lowering::Work(work))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{launches, operand, pod};
    use super::*;

    #[test]
    fn known_gather_indices_are_resolved_and_range_checked() {
        let (shape, idx_shape, out) = ([2usize, 5], [3usize], [2usize, 3]);
        let indices = Tensor::i64(vec![3], vec![-1, 0, 2]);
        let mut cx = Cx::new(
            vec![
                Some(operand(DType::F32, &shape, None)),
                Some(operand(DType::I64, &idx_shape, Some(&indices))),
            ],
            vec![operand(DType::F32, &out, None)],
        );
        let l = launches(gather(1, &mut cx).unwrap()).remove(0);
        assert_eq!(l.args[1], Arg::Ptr(Buf::Derived(0).at()));
        assert_eq!(cx.derived[0].as_i64(), Some(&[4i64, 0, 2][..]));
        let p: GatherParams = pod(&l, 3);
        assert_eq!((p.extent, p.inner, p.count), (5, 1, 3));

        let far = Tensor::i64(vec![3], vec![5, 0, 1]);
        let mut cx = Cx::new(
            vec![
                Some(operand(DType::F32, &shape, None)),
                Some(operand(DType::I64, &idx_shape, Some(&far))),
            ],
            vec![operand(DType::F32, &out, None)],
        );
        assert!(gather(1, &mut cx).is_err());
        let mut cx = Cx::new(
            vec![
                Some(operand(DType::F32, &shape, None)),
                Some(operand(DType::I32, &idx_shape, None)),
            ],
            vec![operand(DType::F32, &out, None)],
        );
        assert!(gather(1, &mut cx).is_err());
    }

    #[test]
    fn pads_crop_and_extend_each_axis() {
        // Axis 0: one row before, two cropped after (4 -> 3). Axis 1: one cropped before, two
        // after (3 -> 4).
        let (shape, out) = ([4usize, 3], [3usize, 4]);
        let pads = Tensor::i64(vec![4], vec![1, -1, -2, 2]);
        let value = Tensor::f32(vec![], vec![1.5]);
        let mut cx = Cx::new(
            vec![
                Some(operand(DType::F32, &shape, None)),
                Some(operand(DType::I64, &[4], Some(&pads))),
                Some(operand(DType::F32, &[], Some(&value))),
            ],
            vec![operand(DType::F32, &out, None)],
        );
        let l = launches(pad(PadMode::Constant, &mut cx).unwrap()).remove(0);
        let p: PadParams = pod(&l, 2);
        assert_eq!(
            (&p.before[..2], &p.lo[..2], &p.kept[..2]),
            (&[1, 0][..], &[0, 1][..], &[2, 2][..])
        );
        assert_eq!(p.fill, 1.5f32.to_bits() as u64);
        // Cropping every column leaves nothing for reflect padding to read.
        let pads = Tensor::i64(vec![4], vec![0, -3, 0, 4]);
        let mut cx = Cx::new(
            vec![
                Some(operand(DType::F32, &shape, None)),
                Some(operand(DType::I64, &[4], Some(&pads))),
            ],
            vec![operand(DType::F32, &[4, 4], None)],
        );
        assert!(pad(PadMode::Reflect, &mut cx).is_err());
        assert!(pad(PadMode::Constant, &mut cx).is_ok());
    }
}
