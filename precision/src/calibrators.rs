//! Calibrators: from a histogram of |x| to the threshold that int8 quantization clips at.
//!
//! Quantization is symmetric: `q(x) = s * clamp(round(x / s), -127, 127)` with the scale
//! `s = threshold / 127`. The calibrators choose the threshold:
//!
//! - min/max: the largest |x| seen; nothing is clipped.
//! - percentile `p`: the smallest bin edge at or below which `p` percent of the values lie.
//! - entropy: TensorRT's KL-divergence method (Migacz, "8-bit Inference with TensorRT", 2017).
//! - MSE: the threshold whose quantization has the least expected squared error, clipping and
//!   rounding together.
//!
//! Entropy and MSE look only at nonzero values (the histogram counts zeros apart): a zero is
//! quantized exactly at every threshold, so it neither costs error nor carries information
//! about where to clip. Percentile counts them, since it is defined over all of |x|.

use super::histogram::Histogram;
use serde::{Deserialize, Serialize};

/// The magnitudes int8 quantization can give, 0..=127 (-128 is left out so the range is
/// symmetric): the levels Q of the entropy method has.
const LEVELS: usize = 128;
const QMAX: f64 = 127.0;

/// The scale of a tensor or weight channel that is all zeros: positive, as TensorRT and
/// onnxruntime require, and the same as `legalize::per_channel_scales` gives.
const ZERO_SCALE: f32 = f32::MIN_POSITIVE;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Calibrator {
    MinMax,
    /// A percentage in (0, 100], e.g. 99.99.
    Percentile(f64),
    Entropy,
    Mse,
}

impl Calibrator {
    /// The clip value for a tensor whose |x| is `hist`; 0 when it held no nonzero value.
    pub fn threshold(self, hist: &Histogram) -> f32 {
        if hist.amax() == 0.0 {
            return 0.0;
        }
        let bins = match self {
            Calibrator::MinMax => return hist.amax(),
            Calibrator::Percentile(p) => percentile_bins(hist, p),
            Calibrator::Entropy => entropy_bins(hist.bins()).max(covering(hist, ENTROPY_KEEPS)),
            Calibrator::Mse => mse_bins(hist),
        };
        ((bins as f64 * hist.width()) as f32).min(hist.amax())
    }
}

/// The int8 scale of a clip value: `threshold / 127`, or [`ZERO_SCALE`] for a zero threshold.
pub fn scale(threshold: f32) -> f32 {
    if threshold > 0.0 {
        threshold / QMAX as f32
    } else {
        ZERO_SCALE
    }
}

/// The share of a tensor's nonzero values the entropy threshold keeps unclipped, at least.
///
/// KL(P || Q) cannot see clipping when every value lies far from zero: a clip just above the
/// smallest values folds nearly all of them into P's last bin, Q's last level is that same bin,
/// and the two distributions agree. PicoDet COCO's 1-channel attention map before `Conv.87`
/// takes values in [0.04, 0.46] on the calibration photos (median 0.18); the search clipped it
/// at 0.039, every value became the clip, and the int8 plan's class scores collapsed (peak
/// score 0.44 against 0.98, detection agreement AP 0.52). On the spread-out activations the
/// method was made for, it clips far less than this (a Laplacian's threshold leaves about
/// 0.1% beyond it), so the floor changes nothing there.
const ENTROPY_KEEPS: f64 = 0.99;

/// How many bins from 0 cover `share` of the nonzero values.
fn covering(hist: &Histogram, share: f64) -> usize {
    let nonzero: u64 = hist.bins().iter().sum();
    let wanted = (share.clamp(0.0, 1.0) * nonzero as f64).ceil() as u64;
    let mut covered = 0;
    for (i, &count) in hist.bins().iter().enumerate() {
        covered += count;
        if covered >= wanted {
            return i + 1;
        }
    }
    hist.bins().len()
}

/// How many bins from 0 cover `p` percent of all values, zeros included.
fn percentile_bins(hist: &Histogram, p: f64) -> usize {
    let wanted = (p.clamp(0.0, 100.0) / 100.0 * hist.total() as f64).ceil() as u64;
    let mut covered = hist.zeros();
    if covered >= wanted {
        return 0;
    }
    for (i, &count) in hist.bins().iter().enumerate() {
        covered += count;
        if covered >= wanted {
            return i + 1;
        }
    }
    hist.bins().len()
}

/// The clip, in bins, that minimizes KL(P || Q) over candidates `i` from 128 bins to all of
/// them: P is the histogram's first `i` bins with every count beyond folded into bin `i - 1`
/// (clipping moves them there); Q quantizes the first `i` bins (unfolded) into 128 levels, bin
/// `j` into level `floor(128 j / i)`, each level's count spread evenly over the bins of it that
/// held values. A candidate where P has mass that Q lacks (outliers folded into an empty last
/// bin) has infinite divergence.
///
/// Within a level Q is one value q, so the level's share of the divergence,
/// `sum c/N ln((c/N) / q)` over its nonzero bins, needs only their count, number and
/// `sum c ln c`: prefix sums of those make each candidate cost one step per level.
fn entropy_bins(bins: &[u64]) -> usize {
    let n = bins.len();
    let mut count = vec![0f64; n + 1];
    let mut used = vec![0f64; n + 1];
    let mut c_ln_c = vec![0f64; n + 1];
    for (j, &c) in bins.iter().enumerate() {
        let c = c as f64;
        count[j + 1] = count[j] + c;
        used[j + 1] = used[j] + if c > 0.0 { 1.0 } else { 0.0 };
        c_ln_c[j + 1] = c_ln_c[j] + if c > 0.0 { c * c.ln() } else { 0.0 };
    }
    let total = count[n];
    let ln_total = total.ln();
    // `c/N ln((c/N) / q)` for one bin of count c in a level of probability q per bin.
    let term = |c: f64, ln_q: f64| c / total * (c.ln() - ln_total - ln_q);
    let mut best = (f64::INFINITY, n);
    for i in LEVELS..=n {
        let beyond = total - count[i];
        let last = bins[i - 1] as f64;
        if beyond > 0.0 && last == 0.0 {
            continue;
        }
        let kept = count[i];
        let mut kl = 0.0;
        let mut ln_q = 0.0;
        for l in 0..LEVELS {
            let (a, b) = ((l * i).div_ceil(LEVELS), ((l + 1) * i).div_ceil(LEVELS));
            let c = count[b] - count[a];
            if c == 0.0 {
                continue;
            }
            ln_q = (c / ((used[b] - used[a]) * kept)).ln();
            kl += (c_ln_c[b] - c_ln_c[a] - c * ln_total) / total - c / total * ln_q;
        }
        if beyond > 0.0 {
            // Bin i - 1 is in the last level, which is not empty since that bin holds values.
            kl += term(last + beyond, ln_q) - term(last, ln_q);
        }
        if kl < best.0 {
            best = (kl, i);
        }
    }
    best.1
}

/// The clip, in bins, with the least expected squared quantization error, the values of each
/// bin taken as spread evenly over it. Candidates are every bin edge.
///
/// A bin inside one quantization cell of centre c costs `count * ((m - c)^2 + w^2 / 12)` for its
/// mean m and width w, and so does a bin beyond `126.5 s`, where everything becomes the
/// threshold: suffix sums of count, count*m and count*m^2 price a run of such bins at once. Only
/// the bins that straddle a cell edge need [`squared_error_integral`], so each candidate costs
/// one step per cell.
fn mse_bins(hist: &Histogram) -> usize {
    let bins = hist.bins();
    let n = bins.len();
    let w = hist.width();
    let mut tail = vec![[0f64; 3]; n + 1];
    for j in (0..n).rev() {
        let (c, m) = (bins[j] as f64, (j as f64 + 0.5) * w);
        let [c0, c1, c2] = tail[j + 1];
        tail[j] = [c0 + c, c1 + c * m, c2 + c * m * m];
    }
    // The cost of bins [a, b) when all of them quantize to `centre`.
    let run = |a: usize, b: usize, centre: f64| {
        let [c0, c1, c2] = std::array::from_fn(|k| tail[a][k] - tail[b][k]);
        c2 - 2.0 * centre * c1 + c0 * (centre * centre + w * w / 12.0)
    };
    let mut best = (f64::INFINITY, n);
    for i in 1..=n {
        let s = i as f64 * w / QMAX;
        let mut err = 0.0;
        // Bins before `next` are priced.
        let mut next = 0;
        for k in 0..QMAX as usize {
            let edge = (k as f64 + 0.5) * s;
            let straddler = ((edge / w) as usize).min(n);
            if straddler > next {
                err += run(next, straddler, k as f64 * s);
                next = straddler;
            }
            if straddler == next && next < n && (next as f64) * w < edge {
                let (a, b) = (next as f64 * w, (next + 1) as f64 * w);
                err += bins[next] as f64 / w * squared_error_integral(a, b, s);
                next += 1;
            }
        }
        err += run(next, n, QMAX * s);
        if err < best.0 {
            best = (err, i);
        }
    }
    best.1
}

/// `∫_a^b (x - q(x))^2 dx` for `q(x) = s * min(round(x / s), 127)`, `0 <= a < b`: summed over
/// the quantization cells `[(k - 0.5) s, (k + 0.5) s)` the interval crosses, on each of which q
/// is the constant `k s`.
fn squared_error_integral(a: f64, b: f64, s: f64) -> f64 {
    let cell = |x: f64| ((x / s + 0.5).floor()).min(QMAX);
    let (first, last) = (cell(a) as i64, cell(b) as i64);
    (first..=last)
        .map(|k| {
            let k = k as f64;
            let lo = a.max((k - 0.5) * s);
            let hi = if k == QMAX { b } else { b.min((k + 0.5) * s) };
            let c = k * s;
            if hi > lo {
                ((hi - c).powi(3) - (lo - c).powi(3)) / 3.0
            } else {
                0.0
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct XorShift(u64);

    impl XorShift {
        /// A generator whose first outputs are already well mixed (a small seed's are not).
        fn new(seed: u64) -> XorShift {
            let mut r = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            for _ in 0..16 {
                r.unit();
            }
            r
        }

        /// Uniform in (0, 1].
        fn unit(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 11) as f64 + 1.0) / (1u64 << 53) as f64
        }

        /// Laplace(0, b): an exponential |x| of mean b with a random sign.
        fn laplace(&mut self, n: usize, b: f64) -> Vec<f32> {
            (0..n)
                .map(|_| {
                    let x = -b * self.unit().ln();
                    (if self.unit() < 0.5 { -x } else { x }) as f32
                })
                .collect()
        }

        /// Uniform in (-1, 1].
        fn uniform(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| (2.0 * self.unit() - 1.0) as f32).collect()
        }
    }

    /// The histogram of `values` collected in batches, as calibration does.
    fn histogram(values: &[f32]) -> Histogram {
        let mut h = Histogram::default();
        for chunk in values.chunks(100_000) {
            h.add(chunk);
        }
        h
    }

    /// The expected squared error of quantizing Laplace(0, b) with clip `t`, straight from the
    /// density of |x|, `e^(-x/b) / b`: on the cell of level k, q = k s, and
    /// `∫ (x - c)^2 e^(-x/b) / b dx = -e^(-x/b) ((x - c)^2 + 2b (x - c) + 2b^2)`.
    fn laplace_error(t: f64, b: f64) -> f64 {
        let s = t / 127.0;
        let antiderivative = |x: f64, c: f64| {
            let d = x - c;
            -(-x / b).exp() * (d * d + 2.0 * b * d + 2.0 * b * b)
        };
        (0..=127)
            .map(|k| {
                let c = f64::from(k) * s;
                let lo = (c - 0.5 * s).max(0.0);
                let upper = if k == 127 {
                    0.0
                } else {
                    antiderivative(c + 0.5 * s, c)
                };
                upper - antiderivative(lo, c)
            })
            .sum()
    }

    /// The clip minimizing [`laplace_error`], by a scan in steps of b / 1000 over [5b, 15b]
    /// (the error is far larger at both ends).
    fn laplace_optimum(b: f64) -> f64 {
        (5000..=15000)
            .map(|k| f64::from(k) * b / 1000.0)
            .min_by(|x, y| laplace_error(*x, b).total_cmp(&laplace_error(*y, b)))
            .expect("candidates")
    }

    #[test]
    fn min_max_is_the_largest_magnitude() {
        let h = histogram(&[0.5, -3.25, 2.0, 0.0]);
        assert_eq!(Calibrator::MinMax.threshold(&h), 3.25);
        assert_eq!(scale(3.25), 3.25 / 127.0);
    }

    /// On a uniform sample of (-1, 1], |x| is uniform on (0, 1]: the p-th percentile of |x|
    /// is p / 100, up to a bin (the threshold is a bin edge) and sampling noise (the standard
    /// error of a quantile at n = 10^6 is below 1e-3 of the range).
    #[test]
    fn percentile_lies_at_the_quantile_of_a_uniform_sample() {
        let h = histogram(&XorShift::new(1).uniform(1_000_000));
        for p in [50.0, 90.0, 99.0, 99.9] {
            let t = f64::from(Calibrator::Percentile(p).threshold(&h));
            let tolerance = h.width() + 1e-3;
            assert!((t - p / 100.0).abs() < tolerance, "p {p}: threshold {t}");
        }
        assert_eq!(Calibrator::Percentile(100.0).threshold(&h), h.amax());
    }

    /// Zeros count towards the percentile: when they alone cover it, nothing needs a range.
    #[test]
    fn percentile_counts_zeros() {
        let mut values = vec![0.0; 990];
        values.extend((1..=10).map(|v| v as f32));
        let h = histogram(&values);
        assert_eq!(Calibrator::Percentile(99.0).threshold(&h), 0.0);
        assert_eq!(scale(0.0), f32::MIN_POSITIVE);
        let t = Calibrator::Percentile(99.5).threshold(&h);
        assert!((t - 5.0).abs() <= h.width() as f32, "{t}");
    }

    /// The histogram MSE threshold on a Laplace(0, 2) sample against the optimum of the exact
    /// expected error under the Laplace density: close in value, and its expected error within
    /// 1% of the optimum's. Sampling noise moves it a little: about 100 of the 4M values lie
    /// beyond the optimum, and the clipping cost is their sum.
    #[test]
    fn mse_finds_the_optimal_clip_of_a_laplacian() {
        let b = 2.0;
        let h = histogram(&XorShift::new(3).laplace(4_000_000, b));
        let t = f64::from(Calibrator::Mse.threshold(&h));
        let best = laplace_optimum(b);
        assert!((t - best).abs() < 0.04 * best, "MSE {t}, optimum {best}");
        let excess = laplace_error(t, b) / laplace_error(best, b);
        assert!(excess < 1.01, "expected error {excess} x the optimum's");
    }

    /// Per unit of b^2, with u = T / b, both methods trade a rounding cost growing as u^2
    /// against a clipping cost falling as e^-u:
    /// - MSE: u^2 / (12 * 127^2) + 2 e^-u (an exponential tail overshoots T by 2b^2 in mean
    ///   square), minimal where u e^u = 12 * 127^2;
    /// - KL: flattening a density of log-slope -1/b over a level of width s costs about
    ///   (s/b)^2 / 24, so u^2 / (24 * 127^2); folding the tail mass e^-u into one bin of width w
    ///   whose Q holds only that bin's own mass, about (w/b) e^-u, costs e^-u ln(b/w). Minimal
    ///   where u e^u = 12 * 127^2 * ln(b/w).
    ///
    /// With 2048 bins over a Laplace sample's range, b/w is about 100, so ln(b/w) > 1 and the
    /// entropy threshold lies above the MSE one, while still clipping the tail (below the max).
    #[test]
    fn entropy_clips_a_laplacian_later_than_mse_but_inside_the_max() {
        let b = 2.0;
        let values = XorShift::new(5).laplace(2_000_000, b);
        let h = histogram(&values);
        assert!(b / h.width() > std::f64::consts::E, "width {}", h.width());
        let entropy = Calibrator::Entropy.threshold(&h);
        let mse = Calibrator::Mse.threshold(&h);
        assert!(entropy > mse, "entropy {entropy}, MSE {mse}");
        let clipped = values.iter().filter(|v| v.abs() > entropy).count();
        assert!(
            entropy < h.amax() && clipped > 0,
            "entropy {entropy} clips {clipped} of a range to {}",
            h.amax()
        );
    }

    /// On a uniform |x|, Q at the full range differs from P only by sampling noise within each
    /// level, while any clip folds the values beyond it into one bin that Q spreads over a
    /// whole level: KL is least at the full range.
    #[test]
    fn entropy_keeps_the_full_range_of_a_uniform_sample() {
        let h = histogram(&XorShift::new(7).uniform(1_000_000));
        assert_eq!(Calibrator::Entropy.threshold(&h), h.amax());
    }

    /// Values far from zero (PicoDet's attention map: uniform on [0.04, 0.46]): the KL search
    /// alone clips just above the smallest ones, where P and Q agree because both are nearly
    /// one spike; the threshold keeps at least 99% of the values.
    #[test]
    fn entropy_does_not_clip_values_that_lie_far_from_zero() {
        let values: Vec<f32> = XorShift::new(3)
            .uniform(1500)
            .iter()
            .map(|v| 0.25 + 0.21 * v)
            .collect();
        let h = histogram(&values);
        let bins = entropy_bins(h.bins());
        assert!(
            (bins as f64 * h.width()) < 0.06,
            "the search alone clips at {}: the case no longer shows the failure",
            bins as f64 * h.width()
        );
        let t = Calibrator::Entropy.threshold(&h);
        let clipped = values.iter().filter(|v| v.abs() > t).count();
        assert!(
            clipped * 100 <= values.len(),
            "threshold {t} clips {clipped} of {}",
            values.len()
        );
    }

    /// Scaling every value by a power of two scales the histogram's width and nothing else, so
    /// every calibrator's threshold scales exactly.
    #[test]
    fn thresholds_scale_with_the_data() {
        let values = XorShift::new(11).laplace(200_000, 1.0);
        let scaled: Vec<f32> = values.iter().map(|v| v * 8.0).collect();
        let (h, h8) = (histogram(&values), histogram(&scaled));
        for c in [
            Calibrator::MinMax,
            Calibrator::Percentile(99.9),
            Calibrator::Entropy,
            Calibrator::Mse,
        ] {
            assert_eq!(c.threshold(&h8), 8.0 * c.threshold(&h), "{c:?}");
        }
    }

    /// KL(P || Q) of every candidate clip `i` (index i - 128), bin by bin as the method states.
    fn kl_direct(bins: &[u64]) -> Vec<f64> {
        let total: u64 = bins.iter().sum();
        (LEVELS..=bins.len())
            .map(|i| {
                let beyond: u64 = bins[i..].iter().sum();
                let mut p: Vec<u64> = bins[..i].to_vec();
                p[i - 1] += beyond;
                let (mut count, mut used) = ([0u64; LEVELS], [0u64; LEVELS]);
                for (j, &c) in bins[..i].iter().enumerate() {
                    count[j * LEVELS / i] += c;
                    used[j * LEVELS / i] += u64::from(c > 0);
                }
                let kept = (total - beyond) as f64;
                let mut kl = 0.0;
                for (j, &pj) in p.iter().enumerate().filter(|(_, &pj)| pj > 0) {
                    let l = j * LEVELS / i;
                    let q = if bins[j] > 0 {
                        count[l] as f64 / used[l] as f64 / kept
                    } else {
                        0.0
                    };
                    let pj = pj as f64 / total as f64;
                    kl += pj * (pj / q).ln();
                }
                kl
            })
            .collect()
    }

    /// The expected squared error (times the count) of every candidate clip `i` (index i - 1),
    /// integrated bin by bin.
    fn mse_direct(hist: &Histogram) -> Vec<f64> {
        let (bins, w) = (hist.bins(), hist.width());
        (1..=bins.len())
            .map(|i| {
                let s = i as f64 * w / QMAX;
                bins.iter()
                    .enumerate()
                    .map(|(j, &c)| {
                        let (a, b) = (j as f64 * w, (j + 1) as f64 * w);
                        c as f64 / w * squared_error_integral(a, b, s)
                    })
                    .sum()
            })
            .collect()
    }

    /// The clip the prefix-sum searches choose is a minimum of the objective summed directly
    /// from its definition, on samples of several shapes: Laplace, uniform, a ReLU's (half
    /// zeros), and a preprocessed image's (256 distinct values, a spiky histogram).
    #[test]
    fn searches_minimize_the_objective_as_defined() {
        let mut r = XorShift::new(13);
        let relu: Vec<f32> = r.laplace(100_000, 1.0).iter().map(|v| v.max(0.0)).collect();
        let pixels: Vec<f32> = (0..100_000)
            .map(|_| ((r.unit() * 256.0).floor() / 255.0 - 0.5) as f32 / 0.226)
            .collect();
        let samples = [r.laplace(100_000, 3.0), r.uniform(100_000), relu, pixels];
        for values in &samples {
            let h = histogram(values);
            let close = |chosen: f64, all: &[f64]| {
                let least = all.iter().copied().fold(f64::INFINITY, f64::min);
                chosen <= least + 1e-9 * least.abs()
            };
            let kl = kl_direct(h.bins());
            let chosen = kl[entropy_bins(h.bins()) - LEVELS];
            assert!(close(chosen, &kl), "KL {chosen}");
            let mse = mse_direct(&h);
            let chosen = mse[mse_bins(&h) - 1];
            assert!(close(chosen, &mse), "MSE {chosen}");
        }
    }
}
