//! The resolved window of a pooling: three spatial axes (fewer are lifted with unit ones), and
//! per axis and output position the run of input taps it reads.

use crate::RuntimeError;
use temblor_ir::PoolAttrs;

/// The taps of one output position along one axis: input positions `first + i * step` for
/// `i < valid`, and how many taps fall inside the explicitly padded extent.
#[derive(Clone, Copy, Debug)]
pub(super) struct Run {
    pub first: usize,
    pub valid: usize,
    pub padded: usize,
}

/// One spatial axis of the (lifted) window.
#[derive(Debug)]
pub(super) struct Axis {
    pub extent: usize,
    pub kernel: usize,
    pub stride: usize,
    /// The dilation: the distance between taps.
    pub step: usize,
    pub pad_begin: usize,
    pub runs: Vec<Run>,
    /// The outputs whose windows lie wholly inside the input: one contiguous range, found
    /// once here rather than on every line.
    pub full: std::ops::Range<usize>,
}

impl Axis {
    /// A unit window that maps every position to itself, so a pass over it is a copy.
    pub fn is_identity(&self) -> bool {
        self.kernel == 1
            && self.stride == 1
            && self.pad_begin == 0
            && self.runs.len() == self.extent
    }
}

/// The output width below which [`Geometry::narrow_stride_one`] holds. YOLO's SPPF block
/// (three 5x5 MaxPools at stride 1 over 10x10 to 20x20 planes) took 40 cycles an output on the
/// separable path.
const NARROW: usize = 32;

/// The resolved window: three spatial axes (leading unit ones for 1-D and 2-D).
#[derive(Debug)]
pub(super) struct Geometry {
    pub planes: usize,
    pub axes: [Axis; 3],
    pub out_shape: Vec<usize>,
}

/// The output extent of one axis, as ONNX defines it: in ceil mode the last window must still
/// start inside the input or its leading padding.
pub(crate) fn out_extent(
    input: usize,
    eff: usize,
    stride: usize,
    pads: (usize, usize),
    ceil: bool,
) -> Option<usize> {
    let span = (input + pads.0 + pads.1).checked_sub(eff)?;
    let mut out = if ceil {
        span.div_ceil(stride) + 1
    } else {
        span / stride + 1
    };
    if ceil && (out - 1) * stride >= input + pads.0 {
        out -= 1;
    }
    Some(out)
}

impl Geometry {
    pub fn new(a: &PoolAttrs, shape: &[usize]) -> Result<Geometry, RuntimeError> {
        let k = a.kernel.len();
        let consistent = a.strides.len() == k && a.dilations.len() == k && a.pads.len() == 2 * k;
        if !consistent || shape.len() != k + 2 || !(1..=3).contains(&k) {
            return Err(RuntimeError::bad_input(format!(
                "a {k}-D window (strides {:?}, dilations {:?}, pads {:?}) does not fit an input \
                 of shape {shape:?}",
                a.strides, a.dilations, a.pads
            )));
        }
        if a.kernel.contains(&0) || a.strides.contains(&0) || a.dilations.contains(&0) {
            return Err(RuntimeError::bad_input(
                "kernel, strides and dilations must be positive",
            ));
        }
        // Past 2^31 no window is meaningful, and below it no extent arithmetic overflows.
        let limit = i32::MAX as usize;
        let window = [&a.kernel, &a.strides, &a.dilations, &a.pads];
        if window.iter().any(|v| v.iter().any(|&e| e > limit)) {
            return Err(RuntimeError::bad_input(format!(
                "a window of kernel {:?}, strides {:?}, dilations {:?} and pads {:?} exceeds \
                 {limit} on some axis",
                a.kernel, a.strides, a.dilations, a.pads
            )));
        }
        let unit = || Axis {
            extent: 1,
            kernel: 1,
            stride: 1,
            step: 1,
            pad_begin: 0,
            runs: vec![Run {
                first: 0,
                valid: 1,
                padded: 1,
            }],
            full: 0..1,
        };
        let mut axes = [unit(), unit(), unit()];
        let mut out_shape = shape[..2].to_vec();
        for i in 0..k {
            let input = shape[2 + i];
            let (kernel, s, d) = (a.kernel[i], a.strides[i], a.dilations[i]);
            let pads = (a.pads[i], a.pads[k + i]);
            let eff = (kernel - 1) * d + 1;
            let out = out_extent(input, eff, s, pads, a.ceil_mode).ok_or_else(|| {
                RuntimeError::bad_input(format!(
                    "window extent {eff} exceeds the padded input extent {} on spatial axis {i}",
                    input + pads.0 + pads.1
                ))
            })?;
            out_shape.push(out);
            // Tap counts are computed, not counted: a window may be far larger than the input.
            let taps_below = |start: i128, bound: i128| {
                let span = bound - start;
                if span <= 0 {
                    0
                } else {
                    ((span as u128).div_ceil(d as u128) as usize).min(kernel)
                }
            };
            let runs = (0..out)
                .map(|o| {
                    let start = (o * s) as i128 - pads.0 as i128;
                    let lo = taps_below(start, 0);
                    let hi = taps_below(start, input as i128).max(lo);
                    Run {
                        first: (start + (lo * d) as i128).max(0) as usize,
                        valid: hi - lo,
                        padded: taps_below(start, (input + pads.1) as i128),
                    }
                })
                .collect::<Vec<Run>>();
            let whole = |r: &Run| r.valid == kernel;
            let lo = runs.iter().position(whole).unwrap_or(runs.len());
            let hi = runs.iter().rposition(whole).map_or(lo, |i| i + 1);
            axes[3 - k + i] = Axis {
                extent: input,
                kernel,
                stride: s,
                step: d,
                pad_begin: pads.0,
                runs,
                full: lo..hi,
            };
        }
        Ok(Geometry {
            planes: shape[0] * shape[1],
            axes,
            out_shape,
        })
    }

    pub fn in_plane(&self) -> usize {
        self.axes.iter().map(|a| a.extent).product()
    }

    pub fn out_plane(&self) -> usize {
        self.axes.iter().map(|a| a.runs.len()).product()
    }

    /// Whether the window is 2x2 at stride 2 over whole windows only (no padding, no partial
    /// window at the end): the usual downsampling, which [`super::max_of_squares`] takes in one pass.
    pub fn halves(&self) -> bool {
        let [ad, ah, aw] = &self.axes;
        let half = |a: &Axis| {
            a.kernel == 2
                && a.stride == 2
                && a.step == 1
                && a.pad_begin == 0
                && a.full == (0..a.runs.len())
        };
        ad.is_identity() && half(ah) && half(aw)
    }

    /// Whether the window is 2-D at stride 1 without dilation over rows narrower than
    /// [`NARROW`]: [`super::max_of_padded`] then folds a padded copy of the whole plane in
    /// long contiguous passes, where the separable path's passes over short rows hardly
    /// vectorize. The copy, `(oh + kh - 1) x (ow + kw - 1)`, must stay within four planes: a
    /// window far wider than its input (padding as wide) would otherwise size it.
    pub fn narrow_stride_one(&self) -> bool {
        let [ad, ah, aw] = &self.axes;
        let one = |a: &Axis| a.stride == 1 && a.step == 1;
        let copy = (ah.runs.len() + ah.kernel - 1).saturating_mul(aw.runs.len() + aw.kernel - 1);
        ad.is_identity()
            && one(ah)
            && one(aw)
            && aw.runs.len() < NARROW
            && copy <= 4 * self.in_plane().max(self.out_plane())
    }

    /// Folds every output position's window of a plane: `tap` takes each flat in-plane input
    /// position of the window, `done` gets the output index and the result.
    pub fn each_window<A: Copy>(
        &self,
        init: A,
        tap: impl Fn(A, usize) -> A,
        mut done: impl FnMut(usize, A),
    ) {
        let [ad, ah, aw] = &self.axes;
        let (h, w) = (ah.extent, aw.extent);
        let mut o = 0;
        for rd in &ad.runs {
            for rh in &ah.runs {
                for rw in &aw.runs {
                    let mut acc = init;
                    for i in 0..rd.valid {
                        let d = rd.first + i * ad.step;
                        for j in 0..rh.valid {
                            let row = (d * h + rh.first + j * ah.step) * w + rw.first;
                            for l in 0..rw.valid {
                                acc = tap(acc, row + l * aw.step);
                            }
                        }
                    }
                    done(o, acc);
                    o += 1;
                }
            }
        }
    }
}
