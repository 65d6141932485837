//! preprocess.cuh against ops_lib's resize and normalization.

use super::harness::{assert_matches, push, Harness};
use std::fmt::Write as _;
use temblor_ops_lib::preprocess::{resize_bilinear, to_chw, Image, Normalize};
use temblor_tests::Rng;

#[test]
fn preprocess_matches_resize_and_normalize() {
    let harness = Harness::shared();
    let imagenet = Normalize {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        bgr: false,
    };
    let half = Normalize {
        mean: [0.5; 3],
        std: [0.5; 3],
        bgr: true,
    };
    // (source, resized, padded canvas, normalization): a non-integer downscale, an upscale with
    // B, G, R order, the same size without padding.
    let cases = [
        ((37, 23), (20, 16), (32, 32), &imagenet),
        ((13, 9), (40, 30), (40, 32), &half),
        ((16, 16), (16, 16), (16, 16), &imagenet),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let pad = 0.0f32;
    let mut commands = String::new();
    let mut expected = Vec::new();
    for ((sw, sh), (dw, dh), (ow, oh), norm) in cases {
        let img = Image {
            width: sw,
            height: sh,
            rgb: rng.bytes(sw * sh * 3),
        };
        write!(
            commands,
            "preprocess {sw} {sh} {dw} {dh} {ow} {oh} {} {pad}",
            u8::from(norm.bgr)
        )
        .unwrap();
        push(&mut commands, &norm.mean);
        push(&mut commands, &norm.std);
        push(&mut commands, &img.rgb);
        commands.push('\n');
        let chw = to_chw(&resize_bilinear(&img, dw, dh), norm);
        let mut want = vec![pad; 3 * oh * ow];
        for c in 0..3 {
            for y in 0..dh {
                for x in 0..dw {
                    want[(c * oh + y) * ow + x] = chw[(c * dh + y) * dw + x];
                }
            }
        }
        expected.push((format!("{sw}x{sh} -> {dw}x{dh} in {ow}x{oh}"), want));
    }
    let got = harness.run(&commands);
    assert_eq!(got.len(), expected.len());
    for (values, (what, want)) in got.iter().zip(&expected) {
        assert_matches(what, values, want);
    }
}
