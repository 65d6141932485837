//! The photos of a directory, and photos as batches: a model compiled for a batch of `n` (its
//! image input's first dimension) is fed `n` preprocessed images stacked along that axis, with
//! their own sizes and scales.

use super::apply::Made;
use super::PreprocessConfig;
use std::path::{Path, PathBuf};
use temblor_ir::{Error, Graph, Result};
use temblor_ops_lib::preprocess::load_image;
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

/// The file extensions [`images_in`] lists.
const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The images of a directory (JPEG and PNG), sorted by name. Files are picked by their
/// extension, so that annotations or notes beside the photos are left alone, and decoded by
/// content, so a file named `.jpg` that is not a JPEG fails, named, instead of being skipped.
pub fn images_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::usage(format!(
            "{}: cannot read the image directory: {e}",
            dir.display()
        ))
    })?;
    let is_image = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
    };
    let mut images: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    images.sort();
    if images.is_empty() {
        return Err(Error::usage(format!(
            "{}: no images (.jpg, .jpeg, .png) in the directory",
            dir.display()
        )));
    }
    Ok(images)
}
