//! Scalar math shared by the kernels, so that a fused epilogue and the standalone op compute
//! the very same bits.

/// e^x for f32 in straight-line arithmetic that vectorizes, where std's `exp` is a libm call per
/// element: `x = n·ln2 + r` with |r| <= ln2/2, e^r by the Cephes polynomial (about 1 ulp), and
/// 2^n built in the exponent bits. The input is clamped so that 2^n stays a normal number: the
/// result saturates near 1e-38 and 2e38 instead of reaching 0 and infinity.
#[inline]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2^23 rounds to an integer, which then sits in the low mantissa bits; removing
    // it again gives that integer as a float.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = [
        0.5,
        1.666_666_5e-1,
        4.166_579_6e-2,
        8.333_452e-3,
        1.398_199_9e-3,
        1.987_569_1e-4,
    ]
    .iter()
    .rev()
    .fold(0.0, |acc, &k| acc * r + k);
    let biased = shifted
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    let scale = f32::from_bits(biased << 23);
    (p * r * r + r + 1.0) * scale
}

#[cfg(test)]
mod tests {
    use super::exp_f32;

    #[test]
    fn fast_exp_is_within_two_ulp() {
        for i in -8700..=8830 {
            let x = i as f32 * 0.01;
            let want = (x as f64).exp();
            let got = exp_f32(x) as f64;
            assert!(
                (got - want).abs() <= 2.4e-7 * want,
                "exp({x}) = {got}, expected {want}"
            );
        }
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(-1000.0) > 0.0 && exp_f32(1000.0).is_finite());
    }
}
