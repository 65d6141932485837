//! resize.cuh against the runtime's Resize, bit for bit (see `Cases::assert_bits`): nearest
//! with every coordinate transform and rounding mode, bilinear with every coordinate transform,
//! upsampling and downsampling, by scales and by sizes, an axis left as it is, and
//! tf_crop_and_resize's extrapolation.

use super::data::{run_runtime, uniform};
use super::harness::{push, Cases, Harness};
use temblor_ir::{Op, ResizeAttrs, ResizeCoordinate, ResizeMode, ResizeNearest};
use temblor_runtime::Tensor;
use temblor_tests::Rng;

/// resize.cuh's codes (RtResizeCoordinate), in order.
const COORDINATES: [(ResizeCoordinate, u8); 6] = [
    (ResizeCoordinate::HalfPixel, 0),
    (ResizeCoordinate::HalfPixelSymmetric, 1),
    (ResizeCoordinate::PytorchHalfPixel, 2),
    (ResizeCoordinate::AlignCorners, 3),
    (ResizeCoordinate::Asymmetric, 4),
    (ResizeCoordinate::TfCropAndResize, 5),
];

/// resize.cuh's codes (RtResizeNearest), in order.
const ROUNDINGS: [(ResizeNearest, u8); 4] = [
    (ResizeNearest::RoundPreferFloor, 0),
    (ResizeNearest::RoundPreferCeil, 1),
    (ResizeNearest::Floor, 2),
    (ResizeNearest::Ceil, 3),
];

/// How the output extents are given: scales of H and W, or sizes.
#[derive(Clone, Copy, Debug)]
enum Target {
    Scales(f32, f32),
    Sizes(i64, i64),
}

/// Upsampling 2x (nearest's ties at every other position), fractional scales down and up,
/// sizes that keep H (an axis the CPU leaves as it is) or shrink it to one row, a scale of 1 on
/// W beside an upsampled H, and scales whose extents `scale * input` (10.0005, 10.00006) lie
/// within the 1e-3 that align_corners and tf_crop_and_resize round to the whole output.
const TARGETS: [Target; 7] = [
    Target::Scales(2.0, 2.0),
    Target::Scales(0.6, 1.5),
    Target::Scales(1.75, 0.75),
    Target::Sizes(5, 13),
    Target::Sizes(1, 4),
    Target::Scales(2.5, 1.0),
    Target::Scales(2.0001, 1.42858),
];

/// The runtime's Resize of `x` ([N, C, 5, 7]) and the harness command for the same.
fn case(
    x: &Tensor,
    mode: ResizeMode,
    (coordinate, code): (ResizeCoordinate, u8),
    (nearest, rounding): (ResizeNearest, u8),
    target: Target,
) -> (String, String, Vec<f32>) {
    let mut attrs = ResizeAttrs::new(mode, coordinate, nearest);
    attrs.extrapolation_value = -7.5;
    // A region of interest reaching past the input on W (extrapolated) and inside it on H.
    let roi = Tensor::f32(vec![8], vec![0.0, 0.0, 0.2, -0.3, 1.0, 1.0, 0.9, 1.2]);
    let crop = coordinate == ResizeCoordinate::TfCropAndResize;
    let (scales, sizes) = match target {
        Target::Scales(h, w) => (Some(Tensor::f32(vec![4], vec![1.0, 1.0, h, w])), None),
        Target::Sizes(h, w) => {
            let (n, c) = (x.shape[0] as i64, x.shape[1] as i64);
            (None, Some(Tensor::i64(vec![4], vec![n, c, h, w])))
        }
    };
    let inputs = [
        Some(x),
        crop.then_some(&roi),
        scales.as_ref(),
        sizes.as_ref(),
    ];
    let (_, want) = run_runtime(&Op::Resize(attrs.clone()), &inputs);
    let axes = attrs
        .plan(
            &x.shape,
            crop.then(|| roi.as_f32().unwrap()),
            scales.as_ref().map(|t| t.as_f32().unwrap()),
            sizes.as_ref().map(|t| t.as_i64().unwrap()),
        )
        .unwrap();
    assert!(axes[..2]
        .iter()
        .all(|a| a.input == a.output && a.scale == 1.0));
    let mut command = format!(
        "resize {} {code} {rounding} {} {}",
        u8::from(mode == ResizeMode::Linear),
        attrs.extrapolation_value,
        x.shape[0] * x.shape[1]
    );
    for a in &axes[2..] {
        command += &format!(
            " {} {} {} {} {}",
            a.input, a.output, a.scale, a.roi.0, a.roi.1
        );
    }
    push(&mut command, x.as_f32().unwrap());
    let what = format!("{mode:?} {coordinate:?} {nearest:?} {target:?}");
    (what, command, want)
}

/// An [N, C, 5, 7] input with -0 and an infinity (inside the plane, so that taps of weight 0
/// read it from above and from the left) among its values: the CPU's arithmetic makes NaN of
/// the infinity wherever such a tap reads it, and keeps -0 only where it copies.
fn input() -> Tensor {
    let mut x = uniform(&mut Rng(0x6A09_E667_F3BC_C908), 2 * 3 * 5 * 7, -3.0, 3.0);
    x[3] = -0.0;
    x[35 + 2 * 7 + 5] = f32::INFINITY;
    Tensor::f32(vec![2, 3, 5, 7], x)
}

#[test]
fn nearest_resize_matches_the_runtime_bit_for_bit() {
    let harness = Harness::shared();
    let x = input();
    let mut cases = Cases::default();
    for coordinate in COORDINATES {
        for rounding in ROUNDINGS {
            for target in TARGETS {
                let (what, command, want) =
                    case(&x, ResizeMode::Nearest, coordinate, rounding, target);
                cases.add(what, &command, want);
            }
        }
    }
    cases.assert_bits(&harness);
}

#[test]
fn linear_resize_matches_the_runtime_bit_for_bit() {
    let harness = Harness::shared();
    let x = input();
    let mut cases = Cases::default();
    for coordinate in COORDINATES {
        for target in TARGETS {
            let (what, command, want) =
                case(&x, ResizeMode::Linear, coordinate, ROUNDINGS[0], target);
            cases.add(what, &command, want);
        }
    }
    cases.assert_bits(&harness);
}
