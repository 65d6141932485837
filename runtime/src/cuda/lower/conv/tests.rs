//! The convolution lowerings run through a model of their kernels and GEMMs on small tensors,
//! against convolutions computed by their definitions.

use super::super::blas::machine::Machine;
use super::super::{At, Launch};
use super::*;
use crate::Tensor;
use temblor_ir::{DType, Op};

fn pod<T: Pod>(arg: &Arg) -> T {
    let Arg::Pod(bytes) = arg else {
        panic!("{arg:?}")
    };
    assert_eq!(bytes.len(), std::mem::size_of::<T>());
    // SAFETY: `T` is plain data of exactly these bytes.
    unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) }
}

fn ptr(arg: &Arg) -> Option<At> {
    match arg {
        Arg::Ptr(at) => Some(*at),
        Arg::Null => None,
        other => panic!("{other:?}"),
    }
}

fn count(arg: &Arg) -> usize {
    let Arg::I64(v) = arg else { panic!("{arg:?}") };
    *v as usize
}

fn source(o: usize, tap: usize, a: &ConvAxisParams) -> Option<usize> {
    let at = (o * a.stride as usize + tap * a.dilation as usize).checked_sub(a.pad as usize)?;
    (at < a.input as usize).then_some(at)
}

fn transposed_source(o: usize, tap: usize, a: &ConvAxisParams) -> Option<usize> {
    let shifted = (o + a.pad as usize).checked_sub(tap * a.dilation as usize)?;
    let at = shifted / a.stride as usize;
    (shifted % a.stride as usize == 0 && at < a.input as usize).then_some(at)
}

/// activation.cuh's `rt_epilogue_at`, for the activations these tests use.
fn finish(
    acc: f32,
    bias: Option<&[f32]>,
    res: Option<&[f32]>,
    ep: &EpilogueParams,
    e: usize,
) -> f32 {
    let channel = e / ep.plane as usize % ep.channels as usize;
    let x = acc + bias.map_or(0.0, |b| b[channel]) + res.map_or(0.0, |r| r[e]);
    let y = match ep.act.kind {
        0 => return x,
        1 => x.max(0.0),
        2 if x < 0.0 => ep.act.alpha * x,
        2 => x,
        kind => panic!("activation {kind}"),
    };
    if ep.has_affine == 1 {
        y * ep.scale + ep.shift
    } else {
        y
    }
}

/// The kernels of conv.cuh and the epilogue, as their headers define them.
fn kernel(l: &Launch, mx: &mut Machine) {
    let a = &l.args;
    let read = |mx: &Machine, arg: &Arg| ptr(arg).map(|at| mx.rest(at).to_vec());
    let values: Vec<f32> = match l.function {
        "runtime_im2col" => {
            let (x, p) = (read(mx, &a[0]).unwrap(), pod::<ConvParams>(&a[2]));
            let [(h, w), (oh, ow)] = [(p.h.input, p.w.input), (p.h.output, p.w.output)]
                .map(|(y, x)| (y as usize, x as usize));
            let (kh, kw) = (p.h.kernel as usize, p.w.kernel as usize);
            (0..count(&a[1]))
                .map(|e| {
                    let (ox, oy, row) = (e % ow, e / ow % oh, e / (oh * ow));
                    let (tap, channel) = (row % (kh * kw), row / (kh * kw));
                    match (source(oy, tap / kw, &p.h), source(ox, tap % kw, &p.w)) {
                        (Some(y), Some(xx)) => x[(channel * h + y) * w + xx],
                        _ => 0.0,
                    }
                })
                .collect()
        }
        "runtime_depthwise_conv" => {
            let [x, w] = [0, 1].map(|i| read(mx, &a[i]).unwrap());
            let (bias, res) = (read(mx, &a[2]), read(mx, &a[3]));
            let (p, ep) = (pod::<ConvParams>(&a[5]), pod::<EpilogueParams>(&a[6]));
            let [h, wd, oh, ow, kh, kw] = [
                p.h.input, p.w.input, p.h.output, p.w.output, p.h.kernel, p.w.kernel,
            ]
            .map(|v| v as usize);
            let o = p.out_channels as usize;
            (0..count(&a[4]))
                .map(|e| {
                    let (ox, oy, oc, b) =
                        (e % ow, e / ow % oh, e / (oh * ow) % o, e / (oh * ow * o));
                    let ic = oc / p.group_out as usize;
                    let mut acc = 0.0;
                    for i in 0..kh {
                        for j in 0..kw {
                            if let (Some(y), Some(xx)) = (source(oy, i, &p.h), source(ox, j, &p.w))
                            {
                                let at = ((b * p.channels as usize + ic) * h + y) * wd + xx;
                                acc += w[(oc * kh + i) * kw + j] * x[at];
                            }
                        }
                    }
                    finish(acc, bias.as_deref(), res.as_deref(), &ep, e)
                })
                .collect()
        }
        "runtime_col2im" => {
            let (cols, bias) = (read(mx, &a[0]).unwrap(), read(mx, &a[1]));
            let (p, ep) = (pod::<ConvParams>(&a[3]), pod::<EpilogueParams>(&a[4]));
            let [h, wd, oh, ow, kh, kw, o, og] = [
                p.h.input,
                p.w.input,
                p.h.output,
                p.w.output,
                p.h.kernel,
                p.w.kernel,
                p.out_channels,
                p.group_out,
            ]
            .map(|v| v as usize);
            (0..count(&a[2]))
                .map(|e| {
                    let (ox, oy, oc, b) =
                        (e % ow, e / ow % oh, e / (oh * ow) % o, e / (oh * ow * o));
                    let entry = b * p.groups as usize + oc / og;
                    let mut acc = bias.as_ref().map_or(0.0, |v| v[oc]);
                    for i in 0..kh {
                        for j in 0..kw {
                            let (y, xx) = (
                                transposed_source(oy, i, &p.h),
                                transposed_source(ox, j, &p.w),
                            );
                            if let (Some(y), Some(xx)) = (y, xx) {
                                let row = entry * og * kh * kw + (oc % og * kh + i) * kw + j;
                                acc += cols[(row * h + y) * wd + xx];
                            }
                        }
                    }
                    finish(acc, None, None, &ep, e)
                })
                .collect()
        }
        "runtime_conv_epilogue" => {
            let out = read(mx, &a[0]).unwrap();
            let (bias, res) = (read(mx, &a[1]), read(mx, &a[2]));
            let ep = pod::<EpilogueParams>(&a[4]);
            (0..count(&a[3]))
                .map(|e| finish(out[e], bias.as_deref(), res.as_deref(), &ep, e))
                .collect()
        }
        other => panic!("{other}"),
    };
    let out = *l
        .args
        .iter()
        .rev()
        .find_map(|a| match a {
            Arg::Ptr(at) => Some(at),
            _ => None,
        })
        .unwrap();
    let out = if l.function == "runtime_conv_epilogue" {
        ptr(&a[0]).unwrap()
    } else {
        out
    };
    mx.write(out, &values);
}

fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 5 + seed * 11) % 13) as f32 * 0.125 - 0.75)
        .collect()
}

fn f32s<'a>(shape: &'a [usize], known: Option<&'a Tensor>) -> Operand<'a> {
    Operand {
        dtype: DType::F32,
        shape,
        known,
    }
}

fn close(got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{i}: {g} vs {w}"
        );
    }
}

fn attrs(
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    pads: [usize; 4],
    group: usize,
) -> ConvAttrs {
    ConvAttrs {
        kernel,
        strides,
        dilations,
        pads,
        auto_pad: AutoPad::NotSet,
        group,
        activation: None,
        affine: None,
    }
}

/// The convolution by its definition, in f64, with explicit `pads`, bias, residual and
/// LeakyRelu(0.5).
fn direct(
    a: &ConvAttrs,
    pads: [usize; 4],
    (x, [n, c, h, w]): (&[f32], [usize; 4]),
    (k, [o, cg, kh, kw]): (&[f32], [usize; 4]),
    bias: &[f32],
    residual: &[f32],
) -> (Vec<usize>, Vec<f64>) {
    let (s, d) = (a.strides, a.dilations);
    let oh = (h + pads[0] + pads[2] - d[0] * (kh - 1) - 1) / s[0] + 1;
    let ow = (w + pads[1] + pads[3] - d[1] * (kw - 1) - 1) / s[1] + 1;
    let og = o / a.group;
    let mut out = Vec::new();
    for b in 0..n {
        for oc in 0..o {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut acc = f64::from(bias[oc]);
                    for ci in 0..cg {
                        let ic = oc / og * cg + ci;
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (y * s[0] + i * d[0]) as isize - pads[0] as isize;
                                let ix = (xx * s[1] + j * d[1]) as isize - pads[1] as isize;
                                if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                                    continue;
                                }
                                let xv = x[((b * c + ic) * h + iy as usize) * w + ix as usize];
                                acc += f64::from(xv)
                                    * f64::from(k[((oc * cg + ci) * kh + i) * kw + j]);
                            }
                        }
                    }
                    acc += f64::from(residual[out.len()]);
                    out.push(if acc < 0.0 { 0.5 * acc } else { acc });
                }
            }
        }
    }
    (vec![n, o, oh, ow], out)
}

#[test]
fn convolutions_match_their_definition() {
    let same_upper = ConvAttrs {
        auto_pad: AutoPad::SameUpper,
        ..attrs([3, 3], [2, 2], [1, 1], [0; 4], 1)
    };
    // (attributes, explicit pads, input, weight, kernels launched, GEMMs)
    let cases = [
        (
            attrs([3, 3], [2, 2], [1, 1], [1, 1, 1, 1], 1),
            [1, 1, 1, 1],
            [2, 3, 7, 6],
            [4, 3, 3, 3],
            2,
            1,
        ),
        (
            attrs([3, 2], [1, 1], [2, 1], [2, 0, 1, 1], 2),
            [2, 0, 1, 1],
            [2, 4, 6, 5],
            [6, 2, 3, 2],
            2,
            2,
        ),
        (
            attrs([1, 1], [1, 1], [1, 1], [0; 4], 1),
            [0; 4],
            [2, 3, 4, 5],
            [4, 3, 1, 1],
            1,
            1,
        ),
        (
            attrs([1, 1], [1, 1], [1, 1], [0; 4], 2),
            [0; 4],
            [1, 4, 4, 5],
            [6, 2, 1, 1],
            1,
            1,
        ),
        (
            attrs([1, 1], [2, 1], [1, 1], [0; 4], 1),
            [0; 4],
            [2, 3, 4, 5],
            [4, 3, 1, 1],
            2,
            1,
        ),
        (
            attrs([3, 3], [1, 1], [2, 2], [2, 2, 2, 2], 4),
            [2, 2, 2, 2],
            [2, 4, 6, 6],
            [4, 1, 3, 3],
            1,
            0,
        ),
        (
            attrs([3, 3], [2, 1], [1, 1], [1, 1, 0, 1], 2),
            [1, 1, 0, 1],
            [1, 2, 5, 6],
            [4, 1, 3, 3],
            1,
            0,
        ),
        // SAME_UPPER over 7 x 6 at stride 2: pads (1, 1) and (0, 1).
        (same_upper, [1, 0, 1, 1], [1, 2, 7, 6], [3, 2, 3, 3], 2, 1),
    ];
    for (mut a, pads, xs, ws, launches, gemms) in cases {
        a.activation = Some(Activation::LeakyRelu { alpha: 0.5 });
        let (x, k) = (
            values(xs.iter().product(), 1),
            values(ws.iter().product(), 2),
        );
        let bias = values(ws[0], 3);
        let placeholder = vec![0.0; 4096];
        let (os, _) = direct(&a, pads, (&x, xs), (&k, ws), &bias, &placeholder);
        let residual = values(os.iter().product(), 4);
        let (_, want) = direct(&a, pads, (&x, xs), (&k, ws), &bias, &residual);
        let weight = Tensor::f32(ws.to_vec(), k.clone());
        let ins = vec![
            Some(f32s(&xs, None)),
            Some(f32s(&ws, Some(&weight))),
            Some(f32s(&ws[..1], None)),
            Some(f32s(&os, None)),
        ];
        let mut cx = Cx::new(ins, vec![f32s(&os, None)]);
        let Lowering::Work(work) = conv(&a, &mut cx).unwrap() else {
            panic!()
        };
        let kinds = |f: fn(&Work) -> bool| work.iter().filter(|w| f(w)).count();
        assert_eq!(kinds(|w| matches!(w, Work::Launch(_))), launches, "{a:?}");
        assert_eq!(kinds(|w| matches!(w, Work::Gemm(_))), gemms, "{a:?}");
        let mut mx = Machine::new(&[&x, &k, &bias, &residual], &cx);
        mx.run(&work, kernel);
        close(&mx.bufs[&Buf::Output(0)], &want);
    }
}

#[test]
fn a_batch_past_the_scratch_takes_turns() {
    let (xs, ws, os) = ([9, 64, 128, 128], [64, 64, 3, 3], [9, 64, 128, 128]);
    let weight = Tensor::f32(ws.to_vec(), vec![0.0; 64 * 64 * 9]);
    let ins = vec![Some(f32s(&xs, None)), Some(f32s(&ws, Some(&weight)))];
    let mut cx = Cx::new(ins, vec![f32s(&os, None)]);
    let a = attrs([3, 3], [1, 1], [1, 1], [1; 4], 1);
    let Lowering::Work(work) = conv(&a, &mut cx).unwrap() else {
        panic!()
    };
    // 64·9·128·128 floats (36 MiB) an image: 7 images in 256 MiB, then 2.
    let per_image = 64 * 9 * 128 * 128 * 4;
    assert_eq!(cx.scratch, [7 * per_image]);
    let firsts: Vec<(usize, usize)> = work
        .iter()
        .filter_map(|w| match w {
            Work::Launch(l) => Some((ptr(&l.args[0]).unwrap().bytes, count(&l.args[1]))),
            _ => None,
        })
        .collect();
    let image = 64 * 128 * 128 * 4;
    assert_eq!(
        firsts,
        [(0, 7 * per_image / 4), (7 * image, 2 * per_image / 4)]
    );
    let Work::Gemm(g) = &work[3] else { panic!() };
    assert_eq!((g.batch, g.stride_a, g.stride_b), (2, 0, per_image / 4));
    assert_eq!((g.c.bytes, g.stride_c), (7 * image, image / 4));
}

/// The transposed convolution by its definition (each input pixel scattered), in f64, with
/// bias and Relu.
fn scattered(
    a: &ConvTransposeAttrs,
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    k: &[f32],
    [og, kh, kw]: [usize; 3],
    bias: &[f32],
) -> (Vec<usize>, Vec<f64>) {
    let (s, d, p, op) = (a.strides, a.dilations, a.pads, a.output_padding);
    let oh = s[0] * (h - 1) + op[0] + d[0] * (kh - 1) + 1 - p[0] - p[2];
    let ow = s[1] * (w - 1) + op[1] + d[1] * (kw - 1) + 1 - p[1] - p[3];
    let (g, cg) = (a.group, c / a.group);
    let o = og * g;
    let mut out = vec![0.0; n * o * oh * ow];
    for b in 0..n {
        for oc in 0..o {
            out[(b * o + oc) * oh * ow..][..oh * ow].fill(f64::from(bias[oc]));
        }
        for ci in 0..c {
            for ol in 0..og {
                let oc = ci / cg * og + ol;
                for (y, xx, i, j) in (0..h).flat_map(|y| {
                    (0..w).flat_map(move |xx| {
                        (0..kh).flat_map(move |i| (0..kw).map(move |j| (y, xx, i, j)))
                    })
                }) {
                    let oy = (y * s[0] + i * d[0]) as isize - p[0] as isize;
                    let ox = (xx * s[1] + j * d[1]) as isize - p[1] as isize;
                    if oy < 0 || ox < 0 || oy as usize >= oh || ox as usize >= ow {
                        continue;
                    }
                    let v = f64::from(x[((b * c + ci) * h + y) * w + xx])
                        * f64::from(k[((ci * og + ol) * kh + i) * kw + j]);
                    out[((b * o + oc) * oh + oy as usize) * ow + ox as usize] += v;
                }
            }
        }
    }
    (
        vec![n, o, oh, ow],
        out.into_iter().map(|v| v.max(0.0)).collect(),
    )
}

#[test]
fn transposed_convolutions_match_their_definition() {
    let t = |kernel, strides, dilations, pads, output_padding, group| ConvTransposeAttrs {
        kernel,
        strides,
        dilations,
        pads,
        output_padding,
        group,
        activation: Some(Activation::Relu),
    };
    // (attributes, input, weight's [O/group, kh, kw], GEMMs)
    let cases = [
        (
            t([3, 3], [2, 2], [1, 1], [1, 1, 1, 1], [1, 1], 1),
            [2, 3, 4, 5],
            [2, 3, 3],
            1,
        ),
        (
            t([3, 2], [2, 3], [2, 1], [1, 0, 2, 1], [0, 2], 2),
            [2, 4, 3, 4],
            [3, 3, 2],
            2,
        ),
        (
            t([2, 2], [2, 2], [1, 1], [0; 4], [0, 0], 1),
            [1, 3, 4, 4],
            [2, 2, 2],
            1,
        ),
    ];
    for (a, xs, [og, kh, kw], gemms) in cases {
        let ws = [xs[1], og, kh, kw];
        let (x, k) = (
            values(xs.iter().product(), 5),
            values(ws.iter().product(), 6),
        );
        let bias = values(og * a.group, 7);
        let (os, want) = scattered(&a, &x, xs, &k, [og, kh, kw], &bias);
        let weight = Tensor::f32(ws.to_vec(), k.clone());
        let bs = [og * a.group];
        let ins = vec![
            Some(f32s(&xs, None)),
            Some(f32s(&ws, Some(&weight))),
            Some(f32s(&bs, None)),
        ];
        let mut cx = Cx::new(ins, vec![f32s(&os, None)]);
        let Lowering::Work(work) = conv_transpose(&a, &mut cx).unwrap() else {
            panic!()
        };
        assert_eq!(
            work.iter().filter(|w| matches!(w, Work::Gemm(_))).count(),
            gemms
        );
        let mut mx = Machine::new(&[&x, &k, &bias], &cx);
        mx.run(&work, kernel);
        close(&mx.bufs[&Buf::Output(0)], &want);
    }
}

#[test]
fn what_the_kernels_do_not_compute_is_unsupported() {
    let (xs, ws, os) = ([1, 2, 4, 4], [2, 2, 3, 3], [1, 2, 2, 2]);
    let weight = Tensor::f32(ws.to_vec(), vec![0.0; 36]);
    let a = attrs([3, 3], [1, 1], [1, 1], [0; 4], 1);
    let lower = |a: &ConvAttrs, x: Operand, known| {
        let ins = vec![Some(x), Some(f32s(&ws, known))];
        conv(a, &mut Cx::new(ins, vec![f32s(&os, None)]))
    };
    assert!(lower(&a, f32s(&xs, Some(&weight)), Some(&weight)).is_ok());
    let why = |r: Result<Lowering, Unsupported>| r.unwrap_err().0;
    assert!(why(lower(&a, f32s(&xs, None), None)).contains("computed in the run"));
    assert!(why(lower(&a, f32s(&[1, 2, 4], None), Some(&weight))).contains("not 2-D"));
    let half = Operand {
        dtype: DType::F16,
        ..f32s(&xs, None)
    };
    assert!(lower(&a, half, Some(&weight)).is_err());
    let wrong = attrs([3, 3], [1, 1], [1, 1], [0; 4], 2);
    assert!(lower(&wrong, f32s(&xs, None), Some(&weight)).is_err());
}

mod half;
