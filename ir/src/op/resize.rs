//! What a Resize's operands mean for an input of known extents (ONNX Resize 11 to 19, as the
//! spec's reference implementation `onnx/reference/ops/op_resize.py` computes it): per axis, the
//! output extent, the scale the coordinate transform divides by, and the region of interest.
//! Shape inference (once the operands are constants) and the CPU kernel (at run time) both read
//! the operands through [`ResizeAttrs::plan`], so the two cannot disagree.

use super::{ResizeAspect, ResizeAttrs};

/// One axis of a resize.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResizeAxis {
    pub input: usize,
    pub output: usize,
    /// The scale of the coordinate transform: the given one, or `output / input` from sizes.
    pub scale: f32,
    /// tf_crop_and_resize's region of this axis, normalized (`0..1` is the whole axis).
    pub roi: (f32, f32),
}

impl ResizeAttrs {
    /// The axes roi, scales and sizes give values for, normalized: `axes`, or every axis.
    pub fn resized_axes(&self, rank: usize) -> Result<Vec<usize>, String> {
        let Some(axes) = &self.axes else {
            return Ok((0..rank).collect());
        };
        let r = rank as i64;
        let mut out = Vec::with_capacity(axes.len());
        for &a in axes {
            let k = if a < 0 { a + r } else { a };
            if !(0..r).contains(&k) || out.contains(&(k as usize)) {
                return Err(format!(
                    "axes {axes:?} are not distinct axes of a rank-{rank} input"
                ));
            }
            out.push(k as usize);
        }
        Ok(out)
    }

    /// Every axis of an input of extents `input`, from the operands' values (an empty operand
    /// counts as absent, as in ONNX).
    pub fn plan(
        &self,
        input: &[usize],
        roi: Option<&[f32]>,
        scales: Option<&[f32]>,
        sizes: Option<&[i64]>,
    ) -> Result<Vec<ResizeAxis>, String> {
        let axes = self.resized_axes(input.len())?;
        let given = |v: Option<usize>, what: &str| match v {
            Some(n) if n != axes.len() => Err(format!(
                "{n} {what} for {} resized axes of a rank-{} input",
                axes.len(),
                input.len()
            )),
            _ => Ok(()),
        };
        let roi = roi.filter(|v| !v.is_empty());
        let scales = scales.filter(|v| !v.is_empty());
        let sizes = sizes.filter(|v| !v.is_empty());
        given(roi.map(|r| r.len() / 2), "roi pairs")?;
        given(scales.map(<[f32]>::len), "scales")?;
        given(sizes.map(<[i64]>::len), "sizes")?;
        let mut out: Vec<ResizeAxis> = input
            .iter()
            .map(|&n| ResizeAxis {
                input: n,
                output: n,
                scale: 1.0,
                roi: (0.0, 1.0),
            })
            .collect();
        if let Some(roi) = roi {
            for (i, &a) in axes.iter().enumerate() {
                out[a].roi = (roi[i], roi[axes.len() + i]);
            }
        }
        match (scales, sizes) {
            (Some(scales), None) => {
                for (&a, &s) in axes.iter().zip(scales) {
                    if !(s.is_finite() && s > 0.0) {
                        return Err(format!("scale {s} is not a positive number"));
                    }
                    out[a].scale = s;
                    out[a].output = (input[a] as f32 * s).floor() as usize;
                }
            }
            (None, Some(sizes)) => {
                let sizes: Vec<usize> = sizes
                    .iter()
                    .map(|&s| usize::try_from(s).map_err(|_| format!("size {s} is negative")))
                    .collect::<Result<_, _>>()?;
                let ratios = axes
                    .iter()
                    .zip(&sizes)
                    .map(|(&a, &s)| s as f32 / input[a] as f32);
                let common = match self.aspect {
                    ResizeAspect::Stretch => None,
                    ResizeAspect::NotLarger => ratios.clone().reduce(f32::min),
                    ResizeAspect::NotSmaller => ratios.clone().reduce(f32::max),
                };
                for ((&a, &s), ratio) in axes.iter().zip(&sizes).zip(ratios) {
                    let (output, scale) = match common {
                        // Round half up, as the reference does.
                        Some(c) => ((c * input[a] as f32 + 0.5) as usize, c),
                        None => (s, ratio),
                    };
                    out[a].output = output;
                    out[a].scale = scale;
                }
            }
            (Some(_), Some(_)) => return Err("both scales and sizes are given".into()),
            (None, None) => return Err("neither scales nor sizes is given".into()),
        }
        Ok(out)
    }
}
