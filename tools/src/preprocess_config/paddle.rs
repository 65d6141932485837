//! PaddleDetection's `infer_cfg.yml`: its `Preprocess` list, read with the defaults and meanings
//! of PaddleDetection's deploy code (`deploy/python/preprocess.py`), and its `label_list`.

use super::{ChannelOrder, InputNames, Interpolation, Layout, Pad, PreprocessConfig, Resize};
use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct InferCfg {
    #[serde(rename = "Preprocess")]
    preprocess: Vec<Op>,
    #[serde(default)]
    label_list: Vec<String>,
}

/// One entry of `Preprocess`; which keys matter depends on `type`.
#[derive(Deserialize)]
struct Op {
    #[serde(rename = "type")]
    kind: String,
    target_size: Option<Vec<usize>>,
    keep_ratio: Option<bool>,
    interp: Option<i64>,
    mean: Option<Vec<f32>>,
    std: Option<Vec<f32>>,
    is_scale: Option<bool>,
    norm_type: Option<String>,
    stride: Option<usize>,
    size: Option<Vec<usize>>,
    fill_value: Option<Vec<f32>>,
}

/// A pad as the list states it: its fill in pixel units when it comes before the normalization.
struct PendingPad {
    size: Option<[usize; 2]>,
    stride: Option<usize>,
    fill: [f32; 3],
    before_normalize: bool,
}

impl InferCfg {
    pub(super) fn into_config(self) -> Result<PreprocessConfig, String> {
        let mut config = PreprocessConfig {
            resize: None,
            pad: None,
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            channels: ChannelOrder::Rgb,
            layout: Layout::Nhwc,
            inputs: InputNames::default(),
            labels: self.label_list,
        };
        let mut normalized = false;
        let mut pad: Option<PendingPad> = None;
        for (i, op) in self.preprocess.iter().enumerate() {
            let at = |what: &str| format!("Preprocess[{i}] ({}): {what}", op.kind);
            match op.kind.as_str() {
                "Resize" => {
                    let size = two(op.target_size.as_deref())
                        .ok_or_else(|| at("target_size must be [height, width]"))?;
                    // PaddleDetection's defaults: keep_ratio true, cv2.INTER_LINEAR.
                    let interpolation = match op.interp.unwrap_or(1) {
                        0 => Interpolation::Nearest,
                        1 => Interpolation::Linear,
                        2 => Interpolation::Cubic,
                        other => {
                            return Err(at(&format!(
                                "interp {other} is not supported (0 nearest, 1 linear, 2 cubic)"
                            )))
                        }
                    };
                    config.resize = Some(Resize {
                        keep_ratio: op.keep_ratio.unwrap_or(true),
                        ..Resize::to(size, interpolation)
                    });
                }
                "NormalizeImage" => {
                    if op.is_scale.unwrap_or(true) {
                        config.scale = 1.0 / 255.0;
                    }
                    if op.norm_type.as_deref().unwrap_or("mean_std") == "mean_std" {
                        config.mean = three(op.mean.as_deref())
                            .ok_or_else(|| at("mean must hold 3 values"))?;
                        config.std =
                            three(op.std.as_deref()).ok_or_else(|| at("std must hold 3 values"))?;
                    }
                    normalized = true;
                }
                "Permute" => config.layout = Layout::Nchw,
                // stride 0 is PaddleDetection's "no padding".
                "PadStride" => match op.stride.unwrap_or(0) {
                    0 => {}
                    s => {
                        pad = Some(PendingPad {
                            size: None,
                            stride: Some(s),
                            fill: [0.0; 3],
                            before_normalize: !normalized,
                        })
                    }
                },
                "Pad" => {
                    let size = two(op.size.as_deref())
                        .ok_or_else(|| at("size must be [height, width]"))?;
                    let fill = match &op.fill_value {
                        None => [114.0; 3],
                        Some(v) => {
                            three(Some(v)).ok_or_else(|| at("fill_value must hold 3 values"))?
                        }
                    };
                    pad = Some(PendingPad {
                        size: Some(size),
                        stride: None,
                        fill,
                        before_normalize: !normalized,
                    });
                }
                other => {
                    return Err(format!(
                        "Preprocess[{i}]: op type '{other}' is not supported (Resize, \
                         NormalizeImage, Permute, PadStride, Pad are); write a temblor \
                         preprocessing YAML and pass it with --preprocess"
                    ))
                }
            }
        }
        config.pad = pad.map(|p| Pad {
            size: p.size,
            stride: p.stride,
            value: if p.before_normalize {
                std::array::from_fn(|c| (p.fill[c] * config.scale - config.mean[c]) / config.std[c])
            } else {
                p.fill
            },
        });
        Ok(config)
    }
}

/// `[n]` (a square) or `[h, w]`.
fn two(v: Option<&[usize]>) -> Option<[usize; 2]> {
    match v? {
        [n] => Some([*n, *n]),
        [h, w] => Some([*h, *w]),
        _ => None,
    }
}

fn three(v: Option<&[f32]>) -> Option<[f32; 3]> {
    v?.try_into().ok()
}
