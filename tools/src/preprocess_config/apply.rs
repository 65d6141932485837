//! The config applied to one image: decode, resize, pad and normalize it, and make each of the
//! graph's inputs from it (the image, `im_shape`, `scale_factor`), checked against the
//! dimensions and element type the graph declares.

use super::{ChannelOrder, Interpolation, Layout, Prepared, PreprocessConfig};
use std::path::Path;
use temblor_ir::{DType, Dim, Error, Graph, Result};
use temblor_ops_lib::preprocess::{
    load_image, resize_bilinear, resize_cubic, resize_nearest, Image,
};
use temblor_runtime::{bf16, f16, Tensor, TensorData};

impl PreprocessConfig {
    /// The model's inputs for one image, matched to `graph`'s inputs by name.
    pub fn inputs(&self, image: &Path, graph: &Graph) -> Result<Prepared> {
        let img = load_image(image).map_err(|e| Error::bad_input(e.to_string()))?;
        self.image_inputs(&img, image, graph)
    }

    /// [`PreprocessConfig::inputs`] of an image already decoded (a crop of a photo), `image`
    /// naming it in errors.
    pub fn image_inputs(&self, img: &Image, image: &Path, graph: &Graph) -> Result<Prepared> {
        let (made, prepared) = self.made(img, image, graph)?;
        let inputs = made
            .into_iter()
            .map(|m| m.tensor(image))
            .collect::<Result<_>>()?;
        Ok(Prepared { inputs, ..prepared })
    }

    /// What the preprocessing makes of one image for each of `graph`'s inputs, as a batch of
    /// one, before it is checked against the graph, and the image's geometry (`inputs` empty).
    pub(super) fn made(
        &self,
        img: &Image,
        image: &Path,
        graph: &Graph,
    ) -> Result<(Vec<Made>, Prepared)> {
        let original = (img.height, img.width);
        let ((rh, rw), scale) = self.resized(img.height, img.width);
        let resized = match self.resize.as_ref().map(|r| r.interpolation) {
            None => None,
            Some(Interpolation::Nearest) => Some(resize_nearest(img, rw, rh)),
            Some(Interpolation::Linear) => Some(resize_bilinear(img, rw, rh)),
            Some(Interpolation::Cubic) => Some(resize_cubic(img, rw, rh)),
        };
        let (ph, pw) = self.padded(rh, rw, image)?;
        let pixels = self.normalize(resized.as_ref().unwrap_or(img), ph, pw);
        let shape = match self.layout {
            Layout::Nchw => vec![1, 3, ph, pw],
            Layout::Nhwc => vec![1, ph, pw, 3],
        };
        let image_name = self.image_input(graph)?;
        let mut made = Vec::with_capacity(graph.inputs.len());
        for &id in &graph.inputs {
            let Some(info) = graph.node(id).outputs.first() else {
                continue;
            };
            let name = info.name.as_str();
            let (shape, values) = if name == image_name {
                (shape.clone(), pixels.clone())
            } else if name == self.inputs.im_shape {
                (vec![1, 2], vec![rh as f32, rw as f32])
            } else if name == self.inputs.scale_factor {
                (vec![1, 2], vec![scale.0, scale.1])
            } else {
                return Err(Error::usage(format!(
                    "the model's input '{name}' is neither the image ('{image_name}') nor one \
                     the preprocessing computes ('{}', '{}'); name it under `inputs:` in the \
                     preprocessing config",
                    self.inputs.im_shape, self.inputs.scale_factor
                )));
            };
            made.push(Made {
                name: name.to_string(),
                dtype: info.ty.dtype,
                declared: info.ty.shape.dims().to_vec(),
                shape,
                values,
            });
        }
        let prepared = Prepared {
            inputs: Vec::new(),
            original,
            resized: (rh, rw),
            scale,
        };
        Ok((made, prepared))
    }

    /// The graph's image input: the configured name, or its only rank-4 float input.
    pub(super) fn image_input<'g>(&'g self, graph: &'g Graph) -> Result<&'g str> {
        let declared = graph
            .inputs
            .iter()
            .filter_map(|&id| graph.node(id).outputs.first());
        if let Some(name) = &self.inputs.image {
            return declared
                .map(|i| i.name.as_str())
                .find(|n| n == name)
                .ok_or_else(|| {
                    Error::usage(format!(
                        "the preprocessing names '{name}' as the image input; the model has none"
                    ))
                });
        }
        let images: Vec<&str> = declared
            .filter(|i| {
                i.ty.shape.rank() == 4
                    && matches!(i.ty.dtype, DType::F32 | DType::F16 | DType::BF16)
            })
            .map(|i| i.name.as_str())
            .collect();
        match images.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::usage(
                "the model has no rank-4 float input to take the image",
            )),
            many => Err(Error::usage(format!(
                "the model has several rank-4 float inputs ({}); name the image one under \
                 `inputs: image:` in the preprocessing config",
                many.join(", ")
            ))),
        }
    }

    /// The tensor's height, width after padding a `rh` x `rw` image.
    fn padded(&self, rh: usize, rw: usize, image: &Path) -> Result<(usize, usize)> {
        let Some(pad) = &self.pad else {
            return Ok((rh, rw));
        };
        match (pad.size, pad.stride) {
            (Some([h, w]), _) if h < rh || w < rw => Err(Error::usage(format!(
                "{}: resized to {rh}x{rw}, larger than pad.size {h}x{w}",
                image.display()
            ))),
            (Some([h, w]), _) => Ok((h, w)),
            (None, Some(s)) => Ok((rh.div_ceil(s) * s, rw.div_ceil(s) * s)),
            (None, None) => Ok((rh, rw)),
        }
    }

    /// `(pixel * scale - mean) / std` in the configured channel order and layout, the image at
    /// the top left of a `ph` x `pw` canvas filled with the pad value.
    fn normalize(&self, img: &Image, ph: usize, pw: usize) -> Vec<f32> {
        let fill = self.pad.as_ref().map_or([0.0; 3], |p| p.value);
        let plane = ph * pw;
        let mut out = vec![0f32; 3 * plane];
        let at = |c: usize, y: usize, x: usize| match self.layout {
            Layout::Nchw => c * plane + y * pw + x,
            Layout::Nhwc => (y * pw + x) * 3 + c,
        };
        for y in 0..ph {
            for x in 0..pw {
                for (c, &f) in fill.iter().enumerate() {
                    out[at(c, y, x)] = f;
                }
            }
        }
        for (i, px) in img.rgb.chunks_exact(3).enumerate() {
            let (y, x) = (i / img.width, i % img.width);
            for c in 0..3 {
                let src = match self.channels {
                    ChannelOrder::Rgb => c,
                    ChannelOrder::Bgr => 2 - c,
                };
                out[at(c, y, x)] = (px[src] as f32 * self.scale - self.mean[c]) / self.std[c];
            }
        }
        out
    }
}

/// One input as the preprocessing made it, with the dimensions the graph declares for it.
pub(super) struct Made {
    pub name: String,
    pub dtype: DType,
    pub declared: Vec<Dim>,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl Made {
    /// The input, checked against the graph's declaration (`image` names it in errors).
    pub(super) fn tensor(self, image: &Path) -> Result<(String, Tensor)> {
        check_dims(&self.name, &self.declared, &self.shape, image)?;
        let t = tensor(&self.name, self.dtype, self.shape, self.values)?;
        Ok((self.name, t))
    }
}

fn check_dims(name: &str, declared: &[Dim], made: &[usize], image: &Path) -> Result<()> {
    let fits = declared.len() == made.len()
        && declared
            .iter()
            .zip(made)
            .all(|(d, m)| d.known().is_none_or(|k| k == *m));
    if fits {
        return Ok(());
    }
    let declared: Vec<String> = declared.iter().map(|d| d.to_string()).collect();
    Err(Error::usage(format!(
        "{}: the preprocessing makes input '{name}' {made:?}, but the model declares [{}]; \
         adjust resize/pad (or compile the model with --input {name}:DIMS)",
        image.display(),
        declared.join(", ")
    )))
}

fn tensor(name: &str, dtype: DType, shape: Vec<usize>, values: Vec<f32>) -> Result<Tensor> {
    let data = match dtype {
        DType::F32 => TensorData::F32(values),
        DType::F16 => TensorData::F16(values.into_iter().map(f16::from_f32).collect()),
        DType::BF16 => TensorData::BF16(values.into_iter().map(bf16::from_f32).collect()),
        DType::F64 => TensorData::F64(values.into_iter().map(f64::from).collect()),
        other => {
            return Err(Error::usage(format!(
                "the model's input '{name}' is {other}; the preprocessing makes float values"
            )))
        }
    };
    Ok(Tensor { shape, data })
}
