//! A histogram of |x| over the values a tensor takes across calibration batches.
//!
//! The range is the smallest power of two above every |x| seen, so the bin width is a power of
//! two too and binning, `floor(|x| / width)`, is exact. When a batch holds a larger |x|, the
//! range doubles until it covers it, each doubling merging adjacent pairs of bins (bins `2k`
//! and `2k+1` at width `w` are bin `k` at width `2w`). The result is therefore exactly the
//! histogram of all values at the final width, whatever the batches and their order, collected
//! in one pass over the data. The price is resolution: the largest |x| lies in the upper half
//! of the range, so between `BINS / 2` and `BINS` bins cover `[0, amax]`.
//!
//! Exact zeros are counted apart from the bins: quantization represents 0 exactly at every
//! scale, and a ReLU's spike at 0 would otherwise dominate the lowest bin. Non-finite values
//! are left out (they have no threshold to find).

use serde::{Deserialize, Serialize};

/// Bins per histogram: 16 per int8 level, so a threshold can be placed between levels.
pub const BINS: usize = 2048;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Counts of nonzero |x|: bin `i` holds `[i * width, (i + 1) * width)`.
    bins: Vec<u64>,
    /// `bins.len() * width`, a power of two; 0 until a nonzero value arrives.
    range: f64,
    zeros: u64,
    /// The largest |x| seen.
    amax: f32,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            bins: vec![0; BINS],
            range: 0.0,
            zeros: 0,
            amax: 0.0,
        }
    }
}

impl Histogram {
    /// Adds the absolute values of one batch.
    pub fn add(&mut self, values: &[f32]) {
        let batch_max = values
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f32, |m, v| m.max(v.abs()));
        if batch_max > 0.0 {
            let batch_max = f64::from(batch_max);
            if self.range == 0.0 {
                self.range = 2f64.powi(batch_max.log2().floor() as i32);
            }
            while self.range <= batch_max {
                self.double();
            }
        }
        self.amax = self.amax.max(batch_max);
        // A power of two, so `|x| * per_unit` is exact.
        let per_unit = self.bins.len() as f64 / self.range;
        let last = self.bins.len() - 1;
        for v in values.iter().filter(|v| v.is_finite()) {
            let a = f64::from(v.abs());
            if a == 0.0 {
                self.zeros += 1;
            } else {
                self.bins[((a * per_unit) as usize).min(last)] += 1;
            }
        }
    }

    /// Halves the resolution: the range doubles and each pair of bins becomes one.
    fn double(&mut self) {
        let n = self.bins.len();
        for k in 0..n / 2 {
            self.bins[k] = self.bins[2 * k] + self.bins[2 * k + 1];
        }
        self.bins[n / 2..].fill(0);
        self.range *= 2.0;
    }

    /// Counts of nonzero |x| per bin.
    pub fn bins(&self) -> &[u64] {
        &self.bins
    }

    /// The width of one bin (0 while only zeros were seen).
    pub fn width(&self) -> f64 {
        self.range / self.bins.len() as f64
    }

    /// How many values were exactly 0.
    pub fn zeros(&self) -> u64 {
        self.zeros
    }

    /// The largest |x| seen.
    pub fn amax(&self) -> f32 {
        self.amax
    }

    /// How many finite values were added, zeros included.
    pub fn total(&self) -> u64 {
        self.zeros + self.bins.iter().sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values in (0, 1] from a xorshift generator.
    fn uniform(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 + 1.0) / (1u64 << 24) as f32
            })
            .collect()
    }

    /// A range grown by doubling bins every value where binning at the final width directly
    /// puts it: `floor(|x| / width)`, with the range the smallest power of two above the max.
    #[test]
    fn growing_the_range_rebins_exactly() {
        let small: Vec<f32> = uniform(7, 5000).iter().map(|v| -v).collect();
        let large: Vec<f32> = uniform(9, 5000).iter().map(|v| v * 3.0).collect();
        let mut h = Histogram::default();
        h.add(&small);
        h.add(&[0.0, f32::NAN, f32::INFINITY]);
        h.add(&large);
        let amax_small = small.iter().fold(0f32, |m, v| m.max(v.abs()));
        let amax = large.iter().fold(amax_small, |m, v| m.max(v.abs()));
        let mut range = 1.0;
        while range <= f64::from(amax) {
            range *= 2.0;
        }
        while range / 2.0 > f64::from(amax) {
            range /= 2.0;
        }
        let width = range / BINS as f64;
        assert_eq!(h.width(), width);
        let mut expected = vec![0u64; BINS];
        for v in small.iter().chain(&large) {
            let bin = (f64::from(v.abs()) / width).floor() as usize;
            expected[bin.min(BINS - 1)] += 1;
        }
        assert_eq!(h.bins(), &expected[..]);
        assert_eq!(h.zeros(), 1);
        assert_eq!(h.total(), 10001);
        assert_eq!(h.amax(), amax);
    }

    #[test]
    fn zeros_alone_leave_the_range_unset() {
        let mut h = Histogram::default();
        h.add(&[0.0, -0.0]);
        assert_eq!((h.zeros(), h.width(), h.amax()), (2, 0.0, 0.0));
        h.add(&[0.5]);
        assert_eq!(h.bins()[BINS / 2], 1);
        assert_eq!(h.width(), 1.0 / BINS as f64);
    }
}
