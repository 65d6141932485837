//! GridSample: reads the input at the normalized positions a grid gives, for any number of
//! spatial axes. Each output position becomes a list of (flat input position, weight) pairs,
//! the product of one-axis taps, computed once and applied to every channel. Padding applies to
//! each tap, as in onnxruntime and PyTorch. The ONNX reference first moves the coordinate
//! inside, which gives the same values except for cubic sampling with border padding, where it
//! flattens the curve; the runtimes that models come from do not.

use super::{f32s, strides};
use crate::RuntimeError;
use crate::Tensor;
use temblor_ir::{GridSampleMode, GridSamplePadding};

/// The attributes of one GridSample.
pub(crate) struct Sampling {
    pub mode: GridSampleMode,
    pub padding: GridSamplePadding,
    pub align_corners: bool,
}

/// One spatial axis of the input: its extent and the two lines reflection padding mirrors at.
struct Axis {
    len: usize,
    lo: f32,
    hi: f32,
}

impl Axis {
    fn new(len: usize, align_corners: bool) -> Axis {
        let n = len as f32;
        if align_corners {
            Axis {
                len,
                lo: 0.0,
                hi: n - 1.0,
            }
        } else {
            Axis {
                len,
                lo: -0.5,
                hi: n - 0.5,
            }
        }
    }

    /// From `[-1, 1]` to input coordinates.
    fn denormalize(&self, v: f32, align_corners: bool) -> f32 {
        let n = self.len as f32;
        if align_corners {
            (v + 1.0) / 2.0 * (n - 1.0)
        } else {
            ((v + 1.0) * n - 1.0) / 2.0
        }
    }

    /// Folds `x` back into `lo..=hi` as a mirror would.
    fn reflect(&self, x: f32) -> f32 {
        let range = self.hi - self.lo;
        if range <= 0.0 {
            return self.lo;
        }
        let fold = |dx: f32, near: f32, far: f32, toward: f32| {
            let n = (dx / range).trunc();
            let r = dx - n * range;
            if n % 2.0 == 0.0 {
                near + toward * r
            } else {
                far - toward * r
            }
        };
        if x < self.lo {
            fold(self.lo - x, self.lo, self.hi, 1.0)
        } else if x > self.hi {
            fold(x - self.hi, self.hi, self.lo, -1.0)
        } else {
            x
        }
    }

    /// The cell an integer tap position reads, or `None` for a zero.
    fn cell(&self, i: f32, padding: GridSamplePadding) -> Option<usize> {
        // An empty axis has no cell to clamp or reflect into: every tap reads zero.
        if self.len == 0 {
            return None;
        }
        let last = self.len as f32 - 1.0;
        let i = match padding {
            GridSamplePadding::Zeros => i,
            GridSamplePadding::Border => i.clamp(0.0, last),
            GridSamplePadding::Reflection => self.reflect(i).trunc(),
        };
        (i >= 0.0 && i <= last).then_some(i as usize)
    }
}

/// Keys' cubic convolution weights (alpha -0.75) of the four cells around fraction `t`.
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let outer = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let inner = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    [outer(t + 1.0), inner(t), inner(1.0 - t), outer(2.0 - t)]
}

/// The taps along one axis: (cell, weight) pairs; a cell of `None` reads zero.
fn axis_taps(s: &Sampling, axis: &Axis, v: f32, out: &mut Vec<(Option<usize>, f32)>) {
    out.clear();
    let x = axis.denormalize(v, s.align_corners);
    match s.mode {
        // Halfway cases go to the even cell, as PyTorch rounds.
        GridSampleMode::Nearest => out.push((axis.cell(x.round_ties_even(), s.padding), 1.0)),
        GridSampleMode::Linear => {
            let x0 = x.floor();
            let t = x - x0;
            out.push((axis.cell(x0, s.padding), 1.0 - t));
            out.push((axis.cell(x0 + 1.0, s.padding), t));
        }
        GridSampleMode::Cubic => {
            let x0 = x.floor();
            for (k, w) in cubic_weights(x - x0).into_iter().enumerate() {
                out.push((axis.cell(x0 + k as f32 - 1.0, s.padding), w));
            }
        }
    }
}

/// Inputs: x `[N,C,D1..Dr]`, grid `[N,O1..Or,r]` whose last axis lists the coordinates of the
/// spatial axes in reverse order (x, then y, then z).
pub(crate) fn execute(s: &Sampling, x: &Tensor, grid: &Tensor) -> Result<Tensor, RuntimeError> {
    let (xv, gv) = (f32s(x, "input")?, f32s(grid, "grid")?);
    let rank = x.shape.len();
    if rank < 3 {
        return Err(RuntimeError::bad_input(format!(
            "input has shape {:?}, expected [N, C, spatial...]",
            x.shape
        )));
    }
    let r = rank - 2;
    let (n, c) = (x.shape[0], x.shape[1]);
    if grid.shape.len() != rank || grid.shape[0] != n || grid.shape[rank - 1] != r {
        return Err(RuntimeError::bad_input(format!(
            "grid has shape {:?}, expected [{n}, {}, {r}] for input {:?}",
            grid.shape,
            vec!["_"; r].join(", "),
            x.shape
        )));
    }
    let axes: Vec<Axis> = x.shape[2..]
        .iter()
        .map(|&len| Axis::new(len, s.align_corners))
        .collect();
    let in_strides = strides(&x.shape[2..]);
    let in_plane: usize = x.shape[2..].iter().product();
    let out_plane: usize = grid.shape[1..rank - 1].iter().product();
    let mut out = Vec::with_capacity(n * c * out_plane);
    let mut taps = Vec::new();
    let (mut point, mut next) = (Vec::new(), Vec::new());
    // The reads of every output position, back to back; position `p` owns
    // `reads[starts[p]..starts[p + 1]]`.
    let (mut reads, mut starts) = (Vec::new(), Vec::with_capacity(out_plane + 1));
    for b in 0..n {
        reads.clear();
        starts.clear();
        starts.push(0);
        for coords in gv[b * out_plane * r..(b + 1) * out_plane * r].chunks_exact(r) {
            point.clear();
            point.push((0usize, 1.0f32));
            for (d, axis) in axes.iter().enumerate() {
                axis_taps(s, axis, coords[r - 1 - d], &mut taps);
                next.clear();
                for &(p, w) in &point {
                    next.extend(
                        taps.iter().filter_map(|&(cell, tw)| {
                            cell.map(|i| (p + i * in_strides[d], w * tw))
                        }),
                    );
                }
                std::mem::swap(&mut point, &mut next);
            }
            reads.extend_from_slice(&point);
            starts.push(reads.len());
        }
        for ci in 0..c {
            let plane = &xv[(b * c + ci) * in_plane..][..in_plane];
            out.extend(starts.windows(2).map(|span| {
                reads[span[0]..span[1]]
                    .iter()
                    .map(|&(p, w)| w * plane[p])
                    .sum::<f32>()
            }));
        }
    }
    let mut shape = vec![n, c];
    shape.extend_from_slice(&grid.shape[1..rank - 1]);
    Ok(Tensor::f32(shape, out))
}
