//! softmax.cuh and layer_norm.cuh against the runtime's Softmax and LayerNormalization, bit for
//! bit (see `Cases::assert_bits`).

use super::data::{run_runtime, uniform};
use super::harness::{push, Cases, Harness};
use temblor_ir::Op;
use temblor_runtime::Tensor;
use temblor_tests::Rng;

/// The row sum's 8-lane order shows in no f32 softmax (its exps are positive, so no lane cancels
/// what another keeps); it is math.cuh's `rt_sum_f64`, whose order the GlobalAveragePool and
/// LayerNormalization cases pin.
#[test]
fn softmax_matches_the_runtime_bit_for_bit() {
    let harness = Harness::shared();
    let mut rng = Rng(0x3C6E_F372_FE94_F82B);
    // (shape, axis): a detector's 80 classes, a ViT's attention rows of 197, rows shorter than
    // the 8-lane sum's group, a row of one, YOLOv8's 16 distribution bins on axis 1, and a
    // middle axis of a 3-D tensor.
    let cases: [(&[usize], i64); 6] = [
        (&[3, 5, 80], -1),
        (&[2, 197], 1),
        (&[4, 7], -1),
        (&[3, 1], -1),
        (&[1, 16, 4, 50], 1),
        (&[2, 3, 5], 1),
    ];
    let mut checks = Cases::default();
    for (shape, axis) in cases {
        let n: usize = shape.iter().product();
        let a = axis.rem_euclid(shape.len() as i64) as usize;
        // Logits up to ±20 apart, so that exps span many binades, and (along an axis of more
        // than one) a -inf, a masked position, whose exp saturates at exp's lower clamp.
        let mut x = uniform(&mut rng, n, -20.0, 20.0);
        if shape[a] > 1 {
            x[n / 2] = f32::NEG_INFINITY;
        }
        let t = Tensor::f32(shape.to_vec(), x.clone());
        let op = Op::Softmax {
            axis,
            log: false,
            flatten: false,
        };
        let (_, want) = run_runtime(&op, &[Some(&t)]);
        let outer: usize = shape[..a].iter().product();
        let inner: usize = shape[a + 1..].iter().product();
        let mut command = format!("softmax {outer} {} {inner}", shape[a]);
        push(&mut command, &x);
        checks.add(format!("{shape:?} on axis {axis}"), &command, want);
    }
    checks.assert_bits(&harness);
}

#[test]
fn layer_norm_matches_the_runtime_bit_for_bit() {
    let harness = Harness::shared();
    let mut rng = Rng(0xA54F_F53A_5F1D_36F1);
    // (shape, epsilon, with bias): a ViT-Tiny's tokens (192 wide), rows shorter than the
    // 8-lane group, and a transformer's 768 without a bias.
    let cases: [(&[usize], f32, bool); 3] = [
        (&[2, 7, 192], 1e-6, true),
        (&[3, 5], 1e-5, true),
        (&[2, 768], 1e-5, false),
    ];
    let mut checks = Cases::default();
    for (shape, epsilon, with_bias) in cases {
        let n: usize = shape.iter().product();
        let width = shape[shape.len() - 1];
        // Values off centre, so that the mean matters.
        let x = uniform(&mut rng, n, -1.0, 5.0);
        let scale = uniform(&mut rng, width, 0.5, 1.5);
        let bias = uniform(&mut rng, width, -0.5, 0.5);
        let (x_t, scale_t) = (
            Tensor::f32(shape.to_vec(), x.clone()),
            Tensor::f32(vec![width], scale.clone()),
        );
        let bias_t = Tensor::f32(vec![width], bias.clone());
        let op = Op::LayerNorm { axis: -1, epsilon };
        let (_, want) = run_runtime(
            &op,
            &[Some(&x_t), Some(&scale_t), with_bias.then_some(&bias_t)],
        );
        let mut command = format!(
            "layer_norm {} {width} {} {epsilon}",
            n / width,
            u8::from(with_bias)
        );
        push(&mut command, &x);
        push(&mut command, &scale);
        if with_bias {
            push(&mut command, &bias);
        }
        checks.add(format!("{shape:?} epsilon {epsilon}"), &command, want);
    }
    // A row whose f64 mean depends on the sum's order: 2^60 and -2^60 cancel within lane 0
    // (elements 0 and 8), so the eight lanes keep the seven 1s that a sum front to back loses.
    let mut row = vec![0.0f32; 16];
    row[0] = 2f32.powi(60);
    row[8] = -row[0];
    row[1..8].fill(1.0);
    let ones = vec![1.0f32; 16];
    let op = Op::LayerNorm {
        axis: -1,
        epsilon: 1e-5,
    };
    let (x_t, scale_t) = (
        Tensor::f32(vec![1, 16], row.clone()),
        Tensor::f32(vec![16], ones.clone()),
    );
    let (_, want) = run_runtime(&op, &[Some(&x_t), Some(&scale_t)]);
    let mut command = "layer_norm 1 16 0 0.00001".to_string();
    push(&mut command, &row);
    push(&mut command, &ones);
    checks.add("a row summed in lane order".into(), &command, want);
    checks.assert_bits(&harness);
}
