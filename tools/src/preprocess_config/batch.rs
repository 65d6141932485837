//! Images as batches: a model compiled for a batch of `n` (its image input's first dimension)
//! is fed `n` preprocessed images stacked along that axis, with their own sizes and scales.

use super::{load_image, Made, PreprocessConfig};
use std::path::PathBuf;
use temblor_ir::{Error, Graph, Result};
use temblor_runtime::Tensor;

impl PreprocessConfig {
    /// The batch size `graph` takes: the first dimension of its image input when the graph
    /// declares it, else 1.
    pub fn batch_size(&self, graph: &Graph) -> Result<usize> {
        let image = self.image_input(graph)?;
        let declared = graph
            .inputs
            .iter()
            .filter_map(|&id| graph.node(id).outputs.first())
            .find(|info| info.name == image)
            .and_then(|info| info.ty.shape.dims().first().and_then(|d| d.known()));
        Ok(declared.unwrap_or(1).max(1))
    }

    /// `images` in batches of [`PreprocessConfig::batch_size`], each the graph's inputs by
    /// name. The last batch is filled up with the first images again, so that every image is
    /// seen and every batch is whole (what calibration needs: its statistics are over all
    /// elements, so a repeated image only weighs more). Images whose preprocessing makes
    /// different sizes cannot share a batch, and are an error naming them.
    pub fn batches(&self, images: &[PathBuf], graph: &Graph) -> Result<Vec<Vec<(String, Tensor)>>> {
        let size = self.batch_size(graph)?;
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let count = images.len().div_ceil(size);
        let mut batches = Vec::with_capacity(count);
        for b in 0..count {
            let members: Vec<&PathBuf> = (0..size)
                .map(|i| &images[(b * size + i) % images.len()])
                .collect();
            let mut stacked: Option<Vec<Made>> = None;
            for image in &members {
                let img = load_image(image).map_err(|e| Error::bad_input(e.to_string()))?;
                let (made, _) = self.made(&img, image, graph)?;
                match stacked.as_mut() {
                    None => stacked = Some(made),
                    Some(stack) => {
                        for (s, m) in stack.iter_mut().zip(made) {
                            if s.shape[1..] != m.shape[1..] {
                                return Err(Error::usage(format!(
                                    "{}: the preprocessing makes input '{}' {:?}, and {:?} \
                                     for {}: images of one batch must have one size (give \
                                     the preprocessing a fixed resize or pad)",
                                    image.display(),
                                    m.name,
                                    m.shape,
                                    s.shape,
                                    members[0].display()
                                )));
                            }
                            s.shape[0] += 1;
                            s.values.extend(m.values);
                        }
                    }
                }
            }
            let first = members[0];
            let inputs = stacked
                .unwrap_or_default()
                .into_iter()
                .map(|m| m.tensor(first))
                .collect::<Result<_>>()?;
            batches.push(inputs);
        }
        Ok(batches)
    }
}
