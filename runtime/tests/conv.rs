//! Conv and ConvTranspose on the CPU plan against direct-loop references written here, over a
//! sweep of groups (depthwise included), strides, dilations, asymmetric pads and output padding;
//! and one case of each against onnxruntime.

mod common;

use common::{assert_close, run_ort, run_temblor, Arg, OrtArg, Rng};
use temblor_ir::{ConvAttrs, ConvTransposeAttrs, Op};
use temblor_runtime::Tensor;

struct Case {
    n: usize,
    c: usize,
    o: usize,
    hw: [usize; 2],
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    pads: [usize; 4],
    group: usize,
    bias: bool,
}

fn conv_reference(c: &Case, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    let (xv, wv) = (x.as_f32().unwrap(), w.as_f32().unwrap());
    let [h, wd] = c.hw;
    let [kh, kw] = c.kernel;
    let oh = (h + c.pads[0] + c.pads[2] - c.dilations[0] * (kh - 1) - 1) / c.strides[0] + 1;
    let ow = (wd + c.pads[1] + c.pads[3] - c.dilations[1] * (kw - 1) - 1) / c.strides[1] + 1;
    let (cg, og) = (c.c / c.group, c.o / c.group);
    let mut out = Vec::new();
    for n in 0..c.n {
        for oc in 0..c.o {
            let g = oc / og;
            for y in 0..oh {
                for xo in 0..ow {
                    let mut acc = b.map_or(0.0, |b| b.as_f32().unwrap()[oc] as f64);
                    for ci in 0..cg {
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (y * c.strides[0] + i * c.dilations[0]) as isize
                                    - c.pads[0] as isize;
                                let ix = (xo * c.strides[1] + j * c.dilations[1]) as isize
                                    - c.pads[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xi =
                                    ((n * c.c + g * cg + ci) * h + iy as usize) * wd + ix as usize;
                                let wi = ((oc * cg + ci) * kh + i) * kw + j;
                                acc += xv[xi] as f64 * wv[wi] as f64;
                            }
                        }
                    }
                    out.push(acc as f32);
                }
            }
        }
    }
    Tensor::f32(vec![c.n, c.o, oh, ow], out)
}

fn conv_transpose_reference(
    c: &Case,
    op: [usize; 2],
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> Tensor {
    let (xv, wv) = (x.as_f32().unwrap(), w.as_f32().unwrap());
    let [h, wd] = c.hw;
    let [kh, kw] = c.kernel;
    let oh = c.strides[0] * (h - 1) + op[0] + c.dilations[0] * (kh - 1) + 1 - c.pads[0] - c.pads[2];
    let ow =
        c.strides[1] * (wd - 1) + op[1] + c.dilations[1] * (kw - 1) + 1 - c.pads[1] - c.pads[3];
    let (cg, og) = (c.c / c.group, c.o / c.group);
    let mut out = vec![0f64; c.n * c.o * oh * ow];
    for n in 0..c.n {
        for ic in 0..c.c {
            let g = ic / cg;
            for iy in 0..h {
                for ix in 0..wd {
                    let xval = xv[((n * c.c + ic) * h + iy) * wd + ix] as f64;
                    for ol in 0..og {
                        for i in 0..kh {
                            for j in 0..kw {
                                let y = (iy * c.strides[0] + i * c.dilations[0]) as isize
                                    - c.pads[0] as isize;
                                let xo = (ix * c.strides[1] + j * c.dilations[1]) as isize
                                    - c.pads[1] as isize;
                                if y < 0 || xo < 0 || y >= oh as isize || xo >= ow as isize {
                                    continue;
                                }
                                let oc = g * og + ol;
                                let wi = ((ic * og + ol) * kh + i) * kw + j;
                                out[((n * c.o + oc) * oh + y as usize) * ow + xo as usize] +=
                                    xval * wv[wi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(b) = b {
        let bv = b.as_f32().unwrap();
        for (i, v) in out.iter_mut().enumerate() {
            *v += bv[(i / (oh * ow)) % c.o] as f64;
        }
    }
    Tensor::f32(
        vec![c.n, c.o, oh, ow],
        out.into_iter().map(|v| v as f32).collect(),
    )
}

/// Channel and group layouts: plain, grouped, depthwise, depthwise with multiplier 2.
const LAYOUTS: [(usize, usize, usize); 4] = [(3, 5, 1), (4, 6, 2), (4, 4, 4), (3, 6, 3)];

/// Kernel, strides, dilations, pads.
type Geometry = ([usize; 2], [usize; 2], [usize; 2], [usize; 4]);

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let geometries: [Geometry; 7] = [
        ([1, 1], [1, 1], [1, 1], [0, 0, 0, 0]),
        ([3, 3], [1, 1], [1, 1], [1, 1, 1, 1]),
        // Unit stride with dilation and uneven pads: the padded-input GEMM of Conv.
        ([2, 3], [1, 1], [2, 1], [1, 0, 2, 1]),
        ([3, 3], [2, 2], [1, 1], [0, 1, 1, 0]),
        ([2, 3], [1, 2], [2, 1], [1, 0, 2, 1]),
        ([3, 3], [2, 1], [2, 2], [2, 2, 2, 2]),
        ([1, 1], [2, 2], [1, 1], [0, 0, 0, 0]),
    ];
    for (gi, &(kernel, strides, dilations, pads)) in geometries.iter().enumerate() {
        for (li, &(c, o, group)) in LAYOUTS.iter().enumerate() {
            out.push(Case {
                n: 2,
                c,
                o,
                hw: [7, 6],
                kernel,
                strides,
                dilations,
                pads,
                group,
                bias: (gi + li) % 2 == 0,
            });
        }
    }
    out
}

#[test]
fn conv_matches_direct_reference() {
    let mut rng = Rng::new(1);
    let mut all = cases();
    // Fewer output positions than a GEMM register block is wide: a squeeze-excite block's
    // 1x1 convs over one pixel, and a handful of positions.
    for hw in [[1, 1], [2, 3]] {
        all.push(Case {
            n: 1,
            c: 40,
            o: 20,
            hw,
            kernel: [1, 1],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [0; 4],
            group: 1,
            bias: true,
        });
    }
    for (k, c) in all.iter().enumerate() {
        let x = rng.tensor(&[c.n, c.c, c.hw[0], c.hw[1]]);
        let w = rng.tensor(&[c.o, c.c / c.group, c.kernel[0], c.kernel[1]]);
        let b = c.bias.then(|| rng.tensor(&[c.o]));
        let attrs = ConvAttrs {
            auto_pad: temblor_ir::AutoPad::NotSet,
            activation: None,
            kernel: c.kernel,
            strides: c.strides,
            dilations: c.dilations,
            pads: c.pads,
            group: c.group,
            affine: None,
        };
        let args = [
            Arg::Input(x.clone()),
            Arg::Const(w.clone()),
            b.clone().map_or(Arg::Absent, Arg::Const),
        ];
        let got = run_temblor(Op::Conv(attrs), &args, 1);
        let want = conv_reference(c, &x, &w, b.as_ref());
        assert_close(&got[0], &want, &format!("conv case {k}"));
    }
}

#[test]
fn conv_transpose_matches_direct_reference() {
    let mut rng = Rng::new(2);
    let mut all = cases();
    // Large enough to run in several bands of input rows, whose 3x3 taps overlap.
    all.push(Case {
        n: 1,
        c: 4,
        o: 32,
        hw: [40, 60],
        kernel: [3, 3],
        strides: [2, 2],
        dilations: [1, 1],
        pads: [1, 1, 1, 1],
        group: 1,
        bias: true,
    });
    // Taps that tile the output (kernel = stride, no pads): the write-once path, in every
    // channel layout, then in several bands with one output channel and with many.
    for (i, &(c, o, group)) in LAYOUTS.iter().enumerate() {
        all.push(Case {
            n: 2,
            c,
            o,
            hw: [5, 7],
            kernel: [2, 3],
            strides: [2, 3],
            dilations: [1, 1],
            pads: [0; 4],
            group,
            bias: i % 2 == 0,
        });
    }
    for (c, o, hw) in [(24, 1, [70, 90]), (24, 24, [30, 20])] {
        all.push(Case {
            n: 1,
            c,
            o,
            hw,
            kernel: [2, 2],
            strides: [2, 2],
            dilations: [1, 1],
            pads: [0; 4],
            group: 1,
            bias: true,
        });
    }
    for (k, c) in all.iter().enumerate() {
        // The write-once cases have none, or their taps would not tile the output.
        let disjoint = c.kernel == c.strides && c.pads == [0; 4];
        let output_padding = match disjoint {
            true => [0, 0],
            false => [(k % 2).min(c.strides[0] - 1), (k % 3).min(c.strides[1] - 1)],
        };
        let x = rng.tensor(&[c.n, c.c, c.hw[0], c.hw[1]]);
        let w = rng.tensor(&[c.c, c.o / c.group, c.kernel[0], c.kernel[1]]);
        let b = c.bias.then(|| rng.tensor(&[c.o]));
        let attrs = ConvTransposeAttrs {
            kernel: c.kernel,
            strides: c.strides,
            dilations: c.dilations,
            pads: c.pads,
            output_padding,
            group: c.group,
            activation: None,
        };
        let args = [
            Arg::Input(x.clone()),
            Arg::Const(w.clone()),
            b.clone().map_or(Arg::Absent, Arg::Const),
        ];
        let got = run_temblor(Op::ConvTranspose(attrs), &args, 1);
        let want = conv_transpose_reference(c, output_padding, &x, &w, b.as_ref());
        assert_close(&got[0], &want, &format!("conv_transpose case {k}"));
    }
}

#[test]
fn conv_and_conv_transpose_match_onnxruntime() {
    let mut rng = Rng::new(3);
    let x = rng.tensor(&[1, 4, 9, 8]);
    let w = rng.tensor(&[6, 2, 3, 3]);
    let b = rng.tensor(&[6]);
    let attrs = ConvAttrs {
        auto_pad: temblor_ir::AutoPad::NotSet,
        activation: None,
        kernel: [3, 3],
        strides: [2, 1],
        dilations: [1, 2],
        pads: [1, 0, 2, 1],
        group: 2,
        affine: None,
    };
    let got = run_temblor(
        Op::Conv(attrs),
        &[
            Arg::Input(x.clone()),
            Arg::Const(w.clone()),
            Arg::Const(b.clone()),
        ],
        1,
    );
    let ort_attrs = r#"{"kernel_shape": [3, 3], "strides": [2, 1], "dilations": [1, 2], "pads": [1, 0, 2, 1], "group": 2}"#;
    let want = run_ort(
        "conv",
        "Conv",
        17,
        ort_attrs,
        vec![OrtArg::Feed(&x), OrtArg::Init(w), OrtArg::Init(b.clone())],
        1,
    );
    assert_close(&got[0], &want[0], "conv vs onnxruntime");

    let wt = rng.tensor(&[4, 3, 4, 3]);
    let attrs = ConvTransposeAttrs {
        kernel: [4, 3],
        strides: [2, 3],
        dilations: [1, 2],
        pads: [1, 2, 0, 1],
        output_padding: [1, 2],
        group: 2,
        activation: None,
    };
    let got = run_temblor(
        Op::ConvTranspose(attrs),
        &[
            Arg::Input(x.clone()),
            Arg::Const(wt.clone()),
            Arg::Const(b.clone()),
        ],
        1,
    );
    let ort_attrs = r#"{"kernel_shape": [4, 3], "strides": [2, 3], "dilations": [1, 2], "pads": [1, 2, 0, 1], "output_padding": [1, 2], "group": 2}"#;
    let want = run_ort(
        "conv_transpose",
        "ConvTranspose",
        17,
        ort_attrs,
        vec![OrtArg::Feed(&x), OrtArg::Init(wt), OrtArg::Init(b)],
        1,
    );
    assert_close(&got[0], &want[0], "conv_transpose vs onnxruntime");
}
