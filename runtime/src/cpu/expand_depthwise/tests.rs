use super::super::conv::{conv, pack_weights};
use super::super::isa::Isa;
use super::{expand_depthwise, ExpandDepthwise, Projected};
use crate::Tensor;
use temblor_ir::{Activation, Affine, AutoPad, ConvAttrs};

/// How many elements of `got` differ from `want`'s in their bits, the shapes asserted equal.
fn differing_bits(got: &Tensor, want: &Tensor) -> usize {
    assert_eq!(got.shape, want.shape);
    let (g, w) = (got.as_f32().expect("f32"), want.as_f32().expect("f32"));
    g.iter()
        .zip(w)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count()
}

fn attrs(k: usize, stride: usize, pads: [usize; 4], group: usize) -> ConvAttrs {
    ConvAttrs {
        kernel: [k, k],
        strides: [stride; 2],
        dilations: [1, 1],
        pads,
        auto_pad: AutoPad::NotSet,
        group,
        activation: Some(Activation::Relu),
        affine: None,
    }
}

/// Band by band, the pair gives the bits of the expansion and the depthwise convolution run
/// one after the other: pointwise, stem and 3x3 expansions, depthwise strides 1 and 2,
/// uneven padding on both, a window of 5, a dilation, a residual, two images, channels
/// past a whole block, rows past a whole vector of positions, activations other than ReLU
/// and an affine after one (on AVX-512, the pointwise pairs run in channels-last blocks),
/// and intermediates of 5 or more bands (2 MiB each) above the size computed whole.
#[test]
fn bands_give_the_bits_of_the_unfused_pair() {
    let isa = Isa::detect();
    let mut next = super::super::test_values(29);
    // (n, c, h, w, e, expansion (k, stride, pads), depthwise (k, stride, pads), residual)
    let pointwise = (1, 1, [0; 4]);
    let cases = [
        (1, 16, 121, 200, 96, pointwise, (3, 2, [1, 1, 1, 1]), false),
        (2, 8, 101, 160, 144, pointwise, (3, 1, [1, 1, 1, 1]), true),
        (1, 24, 140, 128, 120, pointwise, (5, 2, [2, 1, 1, 2]), false),
        // Dilated by 2 (below), with HardSwish and an affine after the expansion.
        (1, 16, 240, 200, 48, pointwise, (3, 1, [2, 2, 2, 2]), false),
        // A stem, and a 3x3 expansion with uneven padding.
        (
            1,
            3,
            520,
            520,
            32,
            (3, 2, [1, 1, 1, 1]),
            (3, 1, [1, 1, 1, 1]),
            false,
        ),
        (
            1,
            8,
            150,
            140,
            104,
            (3, 1, [0, 1, 2, 1]),
            (3, 2, [1, 0, 1, 1]),
            true,
        ),
    ];
    for (i, (n, c, h, w, e, (ek, es, epads), (k, stride, pads), with_residual)) in
        cases.into_iter().enumerate()
    {
        let mut expand = attrs(ek, es, epads, 1);
        let mut dw_attrs = attrs(k, stride, pads, e);
        // Activations other than ReLU on the second and fourth cases.
        if i == 1 {
            expand.activation = Some(Activation::Clip { min: 0.0, max: 6.0 });
            dw_attrs.activation = Some(Activation::Silu);
        }
        if i == 3 {
            expand.activation = Some(Activation::HardSwish);
            expand.affine = Some(Affine {
                scale: 0.75,
                shift: -0.25,
            });
            dw_attrs.activation = None;
            dw_attrs.dilations = [2, 2];
        }
        let x = Tensor::f32(
            vec![n, c, h, w],
            (0..n * c * h * w).map(|_| next()).collect(),
        );
        let ew = Tensor::f32(
            vec![e, c, ek, ek],
            (0..e * c * ek * ek).map(|_| next()).collect(),
        );
        let eb = Tensor::f32(vec![e], (0..e).map(|_| next()).collect());
        let dw = Tensor::f32(vec![e, 1, k, k], (0..e * k * k).map(|_| next()).collect());
        let db = Tensor::f32(vec![e], (0..e).map(|_| next()).collect());
        let packed = pack_weights(&expand, &ew, isa, None);
        let mid = conv(
            &expand,
            [&x, &ew],
            Some(&eb),
            None,
            isa,
            (packed.as_ref(), None),
        )
        .expect("expansion");
        let [_, _, hm, wm] = <[usize; 4]>::try_from(mid.shape.as_slice()).expect("4-D");
        assert!(
            e * hm * wm * 4 > super::WHOLE_BYTES,
            "{c}->{e} {hm}x{wm} runs whole"
        );
        let plain =
            conv(&dw_attrs, [&mid, &dw], Some(&db), None, isa, (None, None)).expect("depthwise");
        let residual = with_residual.then(|| {
            let len = plain.shape.iter().product();
            Tensor::f32(plain.shape.clone(), (0..len).map(|_| next()).collect())
        });
        let want = conv(
            &dw_attrs,
            [&mid, &dw],
            Some(&db),
            residual.as_ref(),
            isa,
            (None, None),
        )
        .expect("depthwise");
        let fused = ExpandDepthwise {
            expand,
            weights: packed,
            name: "expansion".to_string(),
            project: None,
        };
        let got = expand_depthwise(
            &fused,
            &dw_attrs,
            [&x, &dw],
            (Some(&db), residual.as_ref()),
            [Some(&ew), Some(&eb), None, None],
            isa,
        )
        .expect("fused");
        let differ = differing_bits(&got, &want);
        assert_eq!(
            differ, 0,
            "{c}->{e} {h}x{w} k{k} s{stride}: {differ} outputs differ"
        );
    }
}

/// A whole inverted residual block, its depthwise rows projected as each band finishes them,
/// gives the bits of its three convolutions run one after the other: pointwise expansions
/// (channels-last), a stem (NCHW bands) and a block small enough to run whole; depthwise
/// strides 1 and 2, a window of 5, a ReLU, a SiLU (finished row by row, not in registers) and
/// none on the depthwise convolution, a residual and an activation on the projection,
/// projections of fewer outputs than a block of the GEMM kernel's rows and of positions past
/// whole vectors, two images. On AVX-512 only, where the GEMM kernel packs its weights.
#[test]
fn projected_bands_give_the_bits_of_the_unfused_block() {
    let isa = Isa::detect();
    if !isa.avx512() {
        eprintln!("skipped: the projected bands run on AVX-512 alone, and this CPU lacks it");
        return;
    }
    let mut next = super::super::test_values(31);
    // (n, c, h, w, expansion (k, stride, pad), e, depthwise (k, stride, pad), its activation,
    // outputs, residual)
    let (pointwise, relu, silu) = ((1, 1, 0), Some(Activation::Relu), Some(Activation::Silu));
    let cases = [
        (1, 24, 120, 160, pointwise, 144, (3, 1, 1), relu, 24, true),
        (2, 16, 121, 200, pointwise, 96, (3, 2, 1), silu, 20, false),
        (1, 8, 150, 140, pointwise, 104, (5, 1, 2), None, 3, false),
        (1, 3, 480, 640, (3, 2, 1), 32, (3, 1, 1), relu, 16, true),
        (1, 8, 40, 40, pointwise, 32, (3, 1, 1), relu, 16, true),
    ];
    for (n, c, h, w, (ek, es, ep), e, (k, stride, pad), act, o, with_residual) in cases {
        let expand = attrs(ek, es, [ep; 4], 1);
        let mut dw_attrs = attrs(k, stride, [pad; 4], e);
        dw_attrs.activation = act;
        let mut project = attrs(1, 1, [0; 4], 1);
        project.activation = (!with_residual).then_some(Activation::Relu);
        let mut values = |len: usize| (0..len).map(|_| next()).collect::<Vec<f32>>();
        let x = Tensor::f32(vec![n, c, h, w], values(n * c * h * w));
        let ew = Tensor::f32(vec![e, c, ek, ek], values(e * c * ek * ek));
        let eb = Tensor::f32(vec![e], values(e));
        let dw = Tensor::f32(vec![e, 1, k, k], values(e * k * k));
        let db = Tensor::f32(vec![e], values(e));
        let pw = Tensor::f32(vec![o, e, 1, 1], values(o * e));
        let pb = Tensor::f32(vec![o], values(o));
        let packed = pack_weights(&expand, &ew, isa, None);
        let unfused = (packed.as_ref(), None);
        let mid = conv(&expand, [&x, &ew], Some(&eb), None, isa, unfused).expect("expansion");
        let depthwise =
            conv(&dw_attrs, [&mid, &dw], Some(&db), None, isa, (None, None)).expect("depthwise");
        let residual = with_residual.then(|| {
            let [_, _, oh, ow] = <[usize; 4]>::try_from(depthwise.shape.as_slice()).expect("4-D");
            Tensor::f32(vec![n, o, oh, ow], values(n * o * oh * ow))
        });
        let pw_packed = pack_weights(&project, &pw, isa, None).expect("packed on AVX-512");
        let want = conv(
            &project,
            [&depthwise, &pw],
            Some(&pb),
            residual.as_ref(),
            isa,
            (Some(&pw_packed), None),
        )
        .expect("projection");
        let fused = ExpandDepthwise {
            expand,
            weights: packed,
            name: "expansion".to_string(),
            project: Some(Projected {
                depthwise: dw_attrs,
                weights: pw_packed,
                name: "depthwise".to_string(),
            }),
        };
        let got = expand_depthwise(
            &fused,
            &project,
            [&x, &pw],
            (Some(&pb), residual.as_ref()),
            [Some(&ew), Some(&eb), Some(&dw), Some(&db)],
            isa,
        )
        .expect("fused");
        let differ = differing_bits(&got, &want);
        assert_eq!(
            differ, 0,
            "{c}->{e}->{o} {h}x{w} k{k} s{stride}: {differ} outputs differ"
        );
    }
}
