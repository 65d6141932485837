//! f16 and bf16 layers on the GPU as the CPU runs them (`cpu/execute.rs`'s `in_f32`): each half
//! input widened to f32, the node's own f32 lowering, each half output rounded back. The casts
//! are `convert.cuh`'s, whose widening is exact and whose narrowing is the CPU's rounding, so a
//! half layer differs from the CPU only where its f32 lowering does (a GEMM's summation order).
//! Known half inputs (weights) are widened once, at prepare time, into derived constants, which
//! the f32 lowering also sees as known values (to repack them as it does f32 weights).
//!
//! The ops that only move values (Concat, Transpose, Slice, Gather, Pad...) take half values as
//! they are: their kernels move elements by size. Casts keep their own lowering: a cast to half
//! through f32 would round twice.

use super::elementwise::{dtype_code, CastParams};
use super::params;
use super::{grid_stride, Arg, At, Buf, Cx, Lowering, Operand, Unsupported, Work};
use crate::{Tensor, TensorData};
use temblor_ir::{DType, Op, ResizeMode};

/// Whether `op`, reading a half input, is lowered widened: where the CPU widens it
/// (`computes_in_f32`: everything but moving values and casts), and also for QuantizeLinear,
/// DequantizeLinear and nearest Resize, which the CPU computes on the half values directly but
/// whose results the widening does not change (exact conversions around an f32 computation that
/// reads the same values).
pub(super) fn widens(op: &Op, cx: &Cx) -> bool {
    let half_input = (0..cx.input_count())
        .filter_map(|p| cx.optional(p))
        .any(|o| o.dtype.is_half());
    let in_f32 = crate::cpu::computes_in_f32(op);
    let same_either_way = matches!(op, Op::QuantizeLinear { .. } | Op::DequantizeLinear { .. })
        || matches!(op, Op::Resize(a) if a.mode == ResizeMode::Nearest);
    half_input && (in_f32 || same_either_way)
}

/// A known half tensor as f32: exact.
fn widen(t: &Tensor) -> Option<Tensor> {
    let data = match &t.data {
        TensorData::F16(v) => v.iter().map(|h| h.to_f32()).collect(),
        TensorData::BF16(v) => v.iter().map(|h| h.to_f32()).collect(),
        _ => return None,
    };
    Some(Tensor::f32(t.shape.clone(), data))
}

/// `n` elements of `from` at `x` converted to `to` at `out`, by `runtime_cast`.
pub(super) fn cast(from: DType, to: DType, x: At, out: At, n: usize) -> Work {
    let p = CastParams {
        from: dtype_code(from),
        to: dtype_code(to),
    };
    let args = vec![
        Arg::Ptr(x),
        Arg::I64(n as i64),
        Arg::Pod(params::bytes(&p)),
        Arg::Ptr(out),
    ];
    Work::Launch(grid_stride("runtime_cast", n, args))
}

/// Half input `port` (`o`) as f32, for an f32 kernel of a lowering that keeps its other
/// operands half: a known value widened once into a constant, a computed one cast into scratch
/// by a launch pushed onto `work`.
pub(super) fn f32_input(cx: &mut Cx, port: usize, o: Operand, work: &mut Vec<Work>) -> Buf {
    if let Some(wide) = o.known.and_then(widen) {
        return cx.derive(wide);
    }
    let wide = cx.scratch(o.elements() * 4);
    if o.elements() > 0 {
        let x = Buf::Input(port).at();
        work.push(cast(o.dtype, DType::F32, x, wide.at(), o.elements()));
    }
    wide
}

fn as_f32(o: Operand) -> Operand {
    Operand {
        dtype: DType::F32,
        ..o
    }
}

/// The node lowered by `lower` with every half operand seen as f32: the casts in, the f32 work
/// on f32 scratch copies, the casts out.
pub(super) fn widened(
    cx: &mut Cx,
    lower: impl FnOnce(&mut Cx) -> Result<Lowering, Unsupported>,
) -> Result<Lowering, Unsupported> {
    let ins: Vec<Option<Operand>> = (0..cx.input_count()).map(|p| cx.optional(p)).collect();
    let outs: Vec<Operand> = (0..cx.output_count()).map(|p| cx.output(p)).collect();
    let known: Vec<Option<Tensor>> = ins
        .iter()
        .map(|o| {
            o.filter(|o| o.dtype.is_half())
                .and_then(|o| o.known)
                .and_then(widen)
        })
        .collect();
    let half = |o: &Operand| o.dtype.is_half();
    let inner_ins = ins
        .iter()
        .zip(&known)
        .map(|(o, k)| {
            o.map(|o| match half(&o) {
                true => Operand {
                    known: k.as_ref(),
                    ..as_f32(o)
                },
                false => o,
            })
        })
        .collect();
    let inner_outs: Vec<Operand> = outs
        .iter()
        .map(|&o| if half(&o) { as_f32(o) } else { o })
        .collect();
    let mut inner = Cx::new(inner_ins, inner_outs.clone());
    let inner_work = match lower(&mut inner)? {
        Lowering::Work(work) => work,
        // The output is the input's bytes, here those of a widened copy.
        Lowering::Alias { input } => match inner_outs[0].bytes() {
            0 => Vec::new(),
            bytes => vec![Work::Copy {
                from: Buf::Input(input).at(),
                to: Buf::Output(0).at(),
                bytes,
            }],
        },
    };
    let (inner_scratch, inner_derived) = (inner.scratch, inner.derived);
    let named: Vec<Buf> = inner_work.iter().flat_map(names).collect();

    let mut work = Vec::new();
    let mut input_bufs = Vec::with_capacity(ins.len());
    for (port, (o, k)) in ins.iter().zip(known).enumerate() {
        input_bufs.push(match (o, k) {
            // A weight the f32 lowering only repacks (as it sees its value) is not uploaded.
            (Some(o), Some(k)) if half(o) => match named.contains(&Buf::Input(port)) {
                true => cx.derive(k),
                false => Buf::Input(port),
            },
            (Some(o), None) if half(o) => {
                let wide = cx.scratch(o.elements() * 4);
                if o.elements() > 0 {
                    let (x, to) = (Buf::Input(port).at(), wide.at());
                    work.push(cast(o.dtype, DType::F32, x, to, o.elements()));
                }
                wide
            }
            _ => Buf::Input(port),
        });
    }
    let mut narrowing = Vec::new();
    let mut output_bufs = Vec::with_capacity(outs.len());
    for (port, o) in outs.iter().enumerate() {
        output_bufs.push(match half(o) {
            true => {
                let wide = cx.scratch(o.elements() * 4);
                if o.elements() > 0 {
                    let (x, to) = (wide.at(), Buf::Output(port).at());
                    narrowing.push(cast(DType::F32, o.dtype, x, to, o.elements()));
                }
                wide
            }
            false => Buf::Output(port),
        });
    }
    let (scratch_base, derived_base) = (cx.scratch.len(), cx.derived.len());
    cx.scratch.extend(inner_scratch);
    cx.derived.extend(inner_derived);
    let buf = |b: Buf| match b {
        Buf::Input(p) => input_bufs[p],
        Buf::Output(p) => output_bufs[p],
        Buf::Scratch(i) => Buf::Scratch(scratch_base + i),
        Buf::Derived(i) => Buf::Derived(derived_base + i),
    };
    let at = |a: At| At {
        buf: buf(a.buf),
        bytes: a.bytes,
    };
    work.extend(inner_work.into_iter().map(|w| remap(w, at)));
    work.extend(narrowing);
    Ok(Lowering::Work(work))
}

/// The buffers `w` names.
fn names(w: &Work) -> Vec<Buf> {
    match w {
        Work::Launch(l) => l
            .args
            .iter()
            .filter_map(|a| match a {
                Arg::Ptr(p) => Some(p.buf),
                _ => None,
            })
            .collect(),
        Work::Gemm(g) => vec![g.a.buf, g.b.buf, g.c.buf],
        Work::Copy { from, to, .. } => vec![from.buf, to.buf],
        Work::Zero { to, .. } => vec![to.buf],
    }
}

/// `w` with every buffer it names renamed by `at`.
fn remap(w: Work, at: impl Fn(At) -> At) -> Work {
    match w {
        Work::Launch(mut l) => {
            for a in &mut l.args {
                if let Arg::Ptr(p) = a {
                    *p = at(*p);
                }
            }
            Work::Launch(l)
        }
        Work::Gemm(mut g) => {
            (g.a, g.b, g.c) = (at(g.a), at(g.b), at(g.c));
            Work::Gemm(g)
        }
        Work::Copy { from, to, bytes } => Work::Copy {
            from: at(from),
            to: at(to),
            bytes,
        },
        Work::Zero { to, bytes } => Work::Zero { to: at(to), bytes },
    }
}

#[cfg(test)]
mod tests {
    use super::super::{lower, Launch};
    use super::*;
    use crate::f16;
    use temblor_ir::{BinaryOp, UnaryOp};

    fn operand<'a>(dtype: DType, shape: &'a [usize], known: Option<&'a Tensor>) -> Operand<'a> {
        Operand {
            dtype,
            shape,
            known,
        }
    }

    fn launches(l: Lowering) -> Vec<Launch> {
        let Lowering::Work(work) = l else {
            panic!("not work: {l:?}")
        };
        work.into_iter()
            .map(|w| match w {
                Work::Launch(l) => l,
                other => panic!("not a launch: {other:?}"),
            })
            .collect()
    }

    fn ptr(l: &Launch, arg: usize) -> Buf {
        match &l.args[arg] {
            Arg::Ptr(at) => at.buf,
            other => panic!("argument {arg} is {other:?}"),
        }
    }

    /// An f16 Add of a computed value and a weight: the value cast into f32 scratch, the weight
    /// widened once into a derived constant (exactly), the f32 kernel between the two, and its
    /// result cast into the f16 output.
    #[test]
    fn a_half_layer_is_its_f32_lowering_between_casts() {
        let shape = [2usize, 3];
        let halves: Vec<f16> = [0.1f32, -2.5, 65504.0, 1e-7, -0.0, 3.0]
            .iter()
            .map(|&v| f16::from_f32(v))
            .collect();
        let weight = Tensor {
            shape: shape.to_vec(),
            data: TensorData::F16(halves.clone()),
        };
        let mut cx = Cx::new(
            vec![
                Some(operand(DType::F16, &shape, None)),
                Some(operand(DType::F16, &shape, Some(&weight))),
            ],
            vec![operand(DType::F16, &shape, None)],
        );
        let l = launches(lower(&Op::Binary(BinaryOp::Add), &mut cx).unwrap());
        let names: Vec<&str> = l.iter().map(|l| l.function).collect();
        assert_eq!(names, ["runtime_cast", "runtime_binary", "runtime_cast"]);
        assert_eq!(
            (ptr(&l[0], 0), ptr(&l[0], 3)),
            (Buf::Input(0), Buf::Scratch(0))
        );
        assert_eq!(
            (ptr(&l[1], 0), ptr(&l[1], 1), ptr(&l[1], 4)),
            (Buf::Scratch(0), Buf::Derived(0), Buf::Scratch(1))
        );
        assert_eq!(
            (ptr(&l[2], 0), ptr(&l[2], 3)),
            (Buf::Scratch(1), Buf::Output(0))
        );
        assert_eq!(cx.scratch, [6 * 4, 6 * 4]);
        let widened: Vec<f32> = halves.iter().map(|h| f32::from(*h)).collect();
        assert_eq!(cx.derived[0].as_f32(), Some(widened.as_slice()));
        // The casts' parameters: from f16 (1) to f32 (0), and back.
        assert_eq!(
            l[0].args[2],
            Arg::Pod([1i32, 0].map(i32::to_le_bytes).concat())
        );
        assert_eq!(
            l[2].args[2],
            Arg::Pod([0i32, 1].map(i32::to_le_bytes).concat())
        );
    }

    /// The f32 lowering's own scratch and constants come after the widening's, renamed.
    #[test]
    fn the_inner_lowerings_buffers_are_shifted_past_the_casts() {
        let shape = [4usize];
        let inner_lowering = |cx: &mut Cx| {
            let s = cx.scratch(16);
            let d = cx.derive(Tensor::f32(vec![1], vec![2.0]));
            Ok(Lowering::Work(vec![
                Work::Copy {
                    from: Buf::Input(0).at(),
                    to: s.offset(4),
                    bytes: 16,
                },
                Work::Copy {
                    from: d.at(),
                    to: Buf::Output(0).at(),
                    bytes: 4,
                },
            ]))
        };
        let mut cx = Cx::new(
            vec![Some(operand(DType::BF16, &shape, None))],
            vec![operand(DType::BF16, &shape, None)],
        );
        cx.derive(Tensor::f32(vec![1], vec![1.0]));
        let Lowering::Work(work) = widened(&mut cx, inner_lowering).unwrap() else {
            panic!("no work")
        };
        assert_eq!(
            work[1],
            Work::Copy {
                from: Buf::Scratch(0).at(),
                to: Buf::Scratch(2).offset(4),
                bytes: 16
            }
        );
        assert_eq!(
            work[2],
            Work::Copy {
                from: Buf::Derived(1).at(),
                to: Buf::Scratch(1).at(),
                bytes: 4
            }
        );
        assert_eq!(cx.scratch, [16, 16, 16]);
    }

    /// A weight the f32 lowering reads only as a value (to repack it) is widened for it to see,
    /// and not uploaded as well.
    #[test]
    fn a_repacked_half_weight_is_not_uploaded_twice() {
        let shape = [2usize];
        let weight = Tensor {
            shape: shape.to_vec(),
            data: TensorData::F16(vec![f16::from_f32(0.5), f16::from_f32(-3.0)]),
        };
        let mut cx = Cx::new(
            vec![
                Some(operand(DType::F32, &shape, None)),
                Some(operand(DType::F16, &shape, Some(&weight))),
            ],
            vec![operand(DType::F32, &shape, None)],
        );
        let repack = |cx: &mut Cx| {
            let w = cx.input(1)?.known.and_then(Tensor::as_f32).unwrap();
            let reversed: Vec<f32> = w.iter().rev().copied().collect();
            let d = cx.derive(Tensor::f32(vec![2], reversed));
            Ok(Lowering::Work(vec![Work::Copy {
                from: d.at(),
                to: Buf::Output(0).at(),
                bytes: 8,
            }]))
        };
        let Lowering::Work(work) = widened(&mut cx, repack).unwrap() else {
            panic!("no work")
        };
        assert_eq!(cx.derived.len(), 1);
        assert_eq!(cx.derived[0].as_f32(), Some(&[-3.0f32, 0.5][..]));
        assert_eq!(
            work,
            [Work::Copy {
                from: Buf::Derived(0).at(),
                to: Buf::Output(0).at(),
                bytes: 8
            }]
        );
    }

    /// Moving values and casting keep their own lowerings: a Transpose of f16 by element size,
    /// and a cast from f16 in one step (through f32 a cast to half would round twice).
    #[test]
    fn moves_and_casts_are_not_widened() {
        let shape = [4usize];
        let cx = Cx::new(
            vec![Some(operand(DType::F16, &shape, None))],
            vec![operand(DType::F32, &shape, None)],
        );
        assert!(!widens(&Op::Cast { to: DType::F32 }, &cx));
        assert!(!widens(&Op::Transpose { perm: vec![0] }, &cx));
        assert!(widens(&Op::Unary(UnaryOp::Relu), &cx));
        assert!(widens(&Op::DequantizeLinear { axis: 1 }, &cx));
        let f32s = Cx::new(
            vec![Some(operand(DType::F32, &shape, None))],
            vec![operand(DType::F16, &shape, None)],
        );
        assert!(!widens(&Op::Unary(UnaryOp::Relu), &f32s));
    }
}
