//! Photos in batches, as calibration feeds a model compiled for a batch larger than one: each
//! batch is the single-image inputs of its photos stacked, the last batch filled up with the
//! first photos, and photos of different sizes refused by name.

use std::path::{Path, PathBuf};
use temblor_ir::{DType, Graph, Layout, Shape, TensorType};
use temblor_runtime::{Tensor, TensorData};
use temblor_tests::builder::Builder;
use temblor_tests::shared;
use temblor_tools::preprocess_config::PreprocessConfig;

/// A graph whose only input is an image `x` of `batch` x 3 x 24 x 32.
fn image_graph(batch: usize) -> Graph {
    let mut b = Builder::new("batches", 1);
    let ty = TensorType {
        dtype: DType::F32,
        shape: Shape::from_known(&[batch, 3, 24, 32]),
        layout: Layout::NCHW,
    };
    b.input("x", ty);
    b.g
}

fn config(dir: &Path, yaml: &str) -> PreprocessConfig {
    let path = dir.join("preprocess.yml");
    std::fs::write(&path, yaml).unwrap();
    PreprocessConfig::load(&path).unwrap()
}

fn photos(names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|n| shared().join("images").join(n))
        .collect()
}

fn values(t: &Tensor) -> Vec<f32> {
    match &t.data {
        TensorData::F32(v) => v.clone(),
        _ => panic!("a float input, not {:?}", t.dtype()),
    }
}

#[test]
fn batches_stack_single_image_inputs_and_wrap_around() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        "resize: {size: [24, 32]}\nmean: [0.5, 0.4, 0.3]\nstd: [0.2, 0.25, 0.3]\n",
    );
    let images = photos(&["astronaut.png", "chelsea.png", "coffee.png"]);
    let (batched, single) = (image_graph(2), image_graph(1));
    assert_eq!(config.batch_size(&batched).unwrap(), 2);
    assert_eq!(config.batch_size(&single).unwrap(), 1);

    let batches = config.batches(&images, &batched).unwrap();
    assert_eq!(batches.len(), 2, "3 photos in batches of 2");
    let one = |i: usize| {
        let inputs = config.inputs(&images[i], &single).unwrap().inputs;
        values(&inputs[0].1)
    };
    // The last batch takes the first photo again.
    for (batch, members) in batches.iter().zip([[0, 1], [2, 0]]) {
        let (name, t) = &batch[0];
        assert_eq!(name, "x");
        assert_eq!(t.shape, vec![2, 3, 24, 32]);
        let expected: Vec<f32> = members.iter().flat_map(|&i| one(i)).collect();
        assert_eq!(values(t), expected, "batch of photos {members:?}");
    }
    // A batch of one is each photo alone.
    assert_eq!(config.batches(&images, &single).unwrap().len(), 3);
}

#[test]
fn photos_of_different_sizes_cannot_share_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    // Resized by the longer side only: the photos keep their own aspect ratios.
    let config = config(
        dir.path(),
        "resize: {size: [32, 32], keep_ratio: true}\npad: {stride: 8}\n",
    );
    let images = photos(&["astronaut.png", "page.png"]);
    let err = config
        .batches(&images, &image_graph(2))
        .expect_err("a batch of two sizes");
    let text = err.to_string();
    assert!(
        text.contains("page.png") && text.contains("one size"),
        "the error names the photo and the reason: {text}"
    );
}
