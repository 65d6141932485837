//! How a model wants its images: resize, pad, normalize, channel order, layout, and the extra
//! inputs detection exporters add (`im_shape`, `scale_factor`). Written by a person as temblor's
//! own YAML, or read from the `infer_cfg.yml` that PaddleDetection's exporter leaves beside a
//! model, so nobody restates what the exporter already wrote.
//!
//! temblor's format (every key optional; the defaults are in brackets):
//!
//! ```yaml
//! resize:                    # [none: keep the image's size]
//!   size: [416, 416]         # target H, W ...
//!   keep_ratio: false        # true: one scale, PaddleDetection's rule (see `resized`)
//!   limit_side: 960          # ... or: the longer side at most this, never enlarged (PaddleOCR det)
//!   height: 48               # ... or: this height, the width keeping the ratio (PaddleOCR rec);
//!                            #     with limit_side, the width at most limit_side
//!   multiple: 32             # each side then rounded to a multiple of this, at least one  [1]
//!   interpolation: cubic     # nearest | linear | cubic  [linear]
//! pad:                       # [none]
//!   size: [416, 416]         # pad to H, W (bottom and right) ...
//!   stride: 32               # ... or up to a multiple of the stride
//!   value: [0, 0, 0]         # per channel, in the tensor's units (after normalization)  [0]
//! scale: 0.00392156862745098 # multiplies the 8-bit pixel  [1/255]
//! mean: [0.485, 0.456, 0.406]  # (pixel * scale - mean) / std, output channel order  [0]
//! std: [0.229, 0.224, 0.225]   # [1]
//! channels: rgb              # rgb | bgr  [rgb]
//! layout: nchw               # nchw | nhwc  [nchw]
//! inputs:                    # graph input names  [image: the rank-4 float input]
//!   image: image
//!   im_shape: im_shape       # [1, 2]: the resized H, W
//!   scale_factor: scale_factor  # [1, 2]: resized / original, (y, x)
//! labels: [person, bicycle]  # class names, by class id  [none]
//! ```

mod apply;
mod batch;
pub mod defaults;
mod package;
mod paddle;

pub use batch::images_in;
pub use package::{package_labels, read_labels, write_labels};

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use temblor_ir::{Error, Result};
use temblor_runtime::Tensor;

/// The file PaddleDetection's exporter writes beside `model.pdmodel`.
pub const PADDLE_INFER_CFG: &str = "infer_cfg.yml";

/// The deployment config PaddleX and PaddleDetection 3 write beside a PIR `inference.json`.
/// For a detector it holds infer_cfg.yml's `Preprocess` and `label_list` (beside `Global` and
/// `Hpi` sections of its own); other model kinds write other sections, which temblor does not
/// read.
pub const PADDLEX_INFERENCE_YML: &str = "inference.yml";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessConfig {
    #[serde(default)]
    pub resize: Option<Resize>,
    #[serde(default)]
    pub pad: Option<Pad>,
    #[serde(default = "default_scale")]
    pub scale: f32,
    #[serde(default)]
    pub mean: [f32; 3],
    #[serde(default = "ones")]
    pub std: [f32; 3],
    #[serde(default)]
    pub channels: ChannelOrder,
    #[serde(default)]
    pub layout: Layout,
    #[serde(default)]
    pub inputs: InputNames,
    #[serde(default)]
    pub labels: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    /// Target height, width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<[usize; 2]>,
    #[serde(default)]
    pub keep_ratio: bool,
    /// The longer side at most this (scaled down, never up), as PaddleOCR's `DetResizeForTest`
    /// with `limit_type: max`; with `height`, the width's bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_side: Option<usize>,
    /// This height, the width scaled by the same factor (rounded up), as PaddleOCR's
    /// recognizers take a text line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<usize>,
    /// Each resized side rounded to the nearest multiple of this, at least one multiple.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple: Option<usize>,
    #[serde(default)]
    pub interpolation: Interpolation,
}

impl Resize {
    /// A resize to `size` (height, width), not keeping the ratio.
    pub fn to(size: [usize; 2], interpolation: Interpolation) -> Resize {
        Resize {
            size: Some(size),
            keep_ratio: false,
            limit_side: None,
            height: None,
            multiple: None,
            interpolation,
        }
    }

    /// Values a file may hold but no image can be resized with.
    fn check(&self) -> std::result::Result<(), String> {
        let positive = |what: &str, v: Option<usize>| match v {
            Some(0) => Err(format!("resize.{what} must be positive")),
            _ => Ok(()),
        };
        positive("limit_side", self.limit_side)?;
        positive("height", self.height)?;
        positive("multiple", self.multiple)?;
        match (self.size, self.limit_side, self.height) {
            (Some(s), _, _) if s.contains(&0) => {
                Err(format!("resize.size {s:?}: sizes must be positive"))
            }
            (Some(_), None, None) => Ok(()),
            (Some(_), _, _) => {
                Err("resize: give size, or limit_side and/or height, not both".into())
            }
            (None, None, None) => Err("resize: give size, limit_side or height".into()),
            (None, ..) if self.keep_ratio => Err(
                "resize.keep_ratio goes with size (limit_side and height keep the ratio)".into(),
            ),
            (None, ..) => Ok(()),
        }
    }

    /// PaddleDetection's `keep_ratio` scale: the one that brings the short side to the target's
    /// short side, unless the long side would then exceed the target's long side.
    fn uniform_scale(&self, height: usize, width: usize) -> Option<f64> {
        let [th, tw] = self.size.filter(|_| self.keep_ratio)?;
        let (h, w) = (height as f64, width as f64);
        let (im_min, im_max) = (h.min(w), h.max(w));
        let (t_min, t_max) = (th.min(tw) as f64, th.max(tw) as f64);
        let s = t_min / im_min;
        Some(if (s * im_max).round() > t_max {
            t_max / im_max
        } else {
            s
        })
    }

    /// The height, width an `height` x `width` image is resized to.
    fn target(&self, height: usize, width: usize) -> (usize, usize) {
        let (h, w) = (height as f64, width as f64);
        let (rh, rw) = match (self.size, self.height, self.limit_side) {
            (Some([th, tw]), ..) if !self.keep_ratio => (th, tw),
            (Some(_), ..) => {
                let s = self.uniform_scale(height, width).unwrap_or(1.0);
                let side = |n: f64| ((n * s).round() as usize).max(1);
                (side(h), side(w))
            }
            (None, Some(th), limit) => {
                let rw = (th as f64 * w / h).ceil() as usize;
                (th, limit.map_or(rw, |l| rw.min(l)).max(1))
            }
            (None, None, limit) => {
                // DetResizeForTest: int() of the scaled sides.
                let l = limit.unwrap_or(usize::MAX) as f64;
                let s = if h.max(w) > l { l / h.max(w) } else { 1.0 };
                (((h * s) as usize).max(1), ((w * s) as usize).max(1))
            }
        };
        match self.multiple {
            None | Some(1) => (rh, rw),
            Some(m) => {
                // Python's round(): half to even.
                let round =
                    |n: usize| (((n as f64 / m as f64).round_ties_even() as usize) * m).max(m);
                (round(rh), round(rw))
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pad {
    #[serde(default)]
    pub size: Option<[usize; 2]>,
    #[serde(default)]
    pub stride: Option<usize>,
    #[serde(default)]
    pub value: [f32; 3],
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    Nearest,
    #[default]
    Linear,
    Cubic,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    #[default]
    Rgb,
    Bgr,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Nchw,
    Nhwc,
}

/// Which graph inputs receive what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputNames {
    /// The image input; by default the graph's only rank-4 float input.
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default = "im_shape_name")]
    pub im_shape: String,
    #[serde(default = "scale_factor_name")]
    pub scale_factor: String,
}

impl Default for InputNames {
    fn default() -> InputNames {
        InputNames {
            image: None,
            im_shape: im_shape_name(),
            scale_factor: scale_factor_name(),
        }
    }
}

fn default_scale() -> f32 {
    1.0 / 255.0
}

fn ones() -> [f32; 3] {
    [1.0; 3]
}

fn im_shape_name() -> String {
    "im_shape".into()
}

fn scale_factor_name() -> String {
    "scale_factor".into()
}

/// One image made into a model's inputs.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Every graph input, by name.
    pub inputs: Vec<(String, Tensor)>,
    /// The image's height, width as decoded.
    pub original: (usize, usize),
    /// Its height, width after the resize (before padding).
    pub resized: (usize, usize),
    /// The resize's scale, (y, x): resized pixels per original pixel.
    pub scale: (f32, f32),
}

/// Only the key a file needs to be told apart: `Preprocess` marks PaddleDetection's format.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "Preprocess", default)]
    preprocess: Option<serde::de::IgnoredAny>,
}

impl PreprocessConfig {
    /// Reads temblor's YAML or PaddleDetection's `infer_cfg.yml` (told apart by its `Preprocess`
    /// list).
    pub fn load(path: &Path) -> Result<PreprocessConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::usage(format!(
                "{}: cannot read the preprocessing config: {e}",
                path.display()
            ))
        })?;
        let bad = |e: serde_saphyr::Error| {
            let e = e.to_string();
            Error::usage(format!(
                "{}: {}",
                path.display(),
                e.trim_start_matches("error: ")
            ))
        };
        let probe: Probe = serde_saphyr::from_str(&text).map_err(bad)?;
        let config = if probe.preprocess.is_some() {
            let cfg: paddle::InferCfg = serde_saphyr::from_str(&text).map_err(bad)?;
            cfg.into_config()
                .map_err(|e| Error::usage(format!("{}: {e}", path.display())))?
        } else {
            serde_saphyr::from_str(&text).map_err(bad)?
        };
        config
            .check()
            .map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
        Ok(config)
    }

    /// The preprocessing a package recorded, else PaddleDetection's `infer_cfg.yml` in the
    /// model's directory (or in a package directory), else a PaddleX `inference.yml` there that
    /// holds a `Preprocess` list.
    pub fn beside(model: &Path) -> Option<PathBuf> {
        let recorded = model.join(temblor_ir::package::PREPROCESS);
        if temblor_ir::package::is_package(model) && recorded.is_file() {
            return Some(recorded);
        }
        let dir = if model.is_dir() {
            model
        } else {
            model.parent()?
        };
        let path = dir.join(PADDLE_INFER_CFG);
        if path.is_file() {
            return Some(path);
        }
        let path = dir.join(PADDLEX_INFERENCE_YML);
        let probe = |text: String| serde_saphyr::from_str::<Probe>(&text).ok();
        std::fs::read_to_string(&path)
            .ok()
            .and_then(probe)
            .is_some_and(|p| p.preprocess.is_some())
            .then_some(path)
    }

    /// A stable text of everything that decides the tensors (not the labels): for cache keys.
    pub fn key(&self) -> String {
        let tensors_only = PreprocessConfig {
            labels: Vec::new(),
            ..self.clone()
        };
        serde_json::to_string(&tensors_only).unwrap_or_else(|e| format!("{tensors_only:?}: {e}"))
    }

    /// Values a file may hold but no image can be made with.
    fn check(&self) -> std::result::Result<(), String> {
        if let Some(r) = &self.resize {
            r.check()?;
        }
        if let Some(p) = &self.pad {
            match (p.size, p.stride) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err("pad: give exactly one of size and stride".into())
                }
                (Some(s), None) if s.contains(&0) => {
                    return Err(format!("pad.size {s:?}: sizes must be positive"))
                }
                (None, Some(0)) => return Err("pad.stride must be positive".into()),
                _ => {}
            }
        }
        if self.std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return Err(format!(
                "std {:?}: every value must be finite and non-zero",
                self.std
            ));
        }
        if !self.scale.is_finite() || self.mean.iter().any(|m| !m.is_finite()) {
            return Err("scale and mean must be finite".into());
        }
        Ok(())
    }

    /// The height, width after the resize and the scale (y, x) it applied.
    ///
    /// `keep_ratio` follows PaddleDetection's `Resize`: the scale that brings the short side to
    /// the target's short side, unless the long side would then exceed the target's long side,
    /// in which case the scale that brings the long side there. `limit_side` and `height` follow
    /// PaddleOCR (see [`Resize`]); their scale is per axis, the sides being rounded apart.
    pub fn resized(&self, height: usize, width: usize) -> ((usize, usize), (f32, f32)) {
        let Some(r) = &self.resize else {
            return ((height, width), (1.0, 1.0));
        };
        let (rh, rw) = r.target(height, width);
        match r.uniform_scale(height, width) {
            // One scale for both axes, as PaddleDetection reports it in scale_factor.
            Some(s) if r.multiple.is_none_or(|m| m == 1) => ((rh, rw), (s as f32, s as f32)),
            _ => (
                (rh, rw),
                (rh as f32 / height as f32, rw as f32 / width as f32),
            ),
        }
    }
}
