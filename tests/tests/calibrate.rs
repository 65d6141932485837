//! Calibration statistics on a real model: the range collected for every value over two real
//! images agrees with onnxruntime's on the same inputs, and the cache returns what was stored
//! under the same key and recomputes under another.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use temblor_ops_lib::preprocess::{load_image, resize_bilinear, to_chw, Normalize};
use temblor_precision::calibrate::{cache_key, collect, load_or_collect};
use temblor_runtime::Tensor;
use temblor_tests::{output, python, real_model, root, shared};
use temblor_tools::npy;

const SIDE: usize = 160;

fn model() -> PathBuf {
    real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx")
}

fn images() -> Vec<PathBuf> {
    ["page.png", "text.png"]
        .iter()
        .map(|f| shared().join("images").join(f))
        .collect()
}

/// PaddleOCR's preprocessing: BGR, `(x / 255 - 0.5) / 0.5`.
fn prepared(image: &Path) -> Tensor {
    let img = load_image(image).expect("PNG");
    let norm = Normalize {
        mean: [0.5; 3],
        std: [0.5; 3],
        bgr: true,
    };
    let chw = to_chw(&resize_bilinear(&img, SIDE, SIDE), &norm);
    Tensor::f32(vec![1, 3, SIDE, SIDE], chw)
}

fn graph() -> temblor_ir::Graph {
    temblor_pipeline::import(&model(), &[("x".into(), vec![1, 3, SIDE, SIDE])]).expect("import")
}

/// onnxruntime's `[min, max]` of every float value of the model over `batches`
/// (`tests/scripts/ort_ranges.py`), by value name.
fn ort_ranges(batches: &[Vec<(String, Tensor)>], dir: &Path) -> BTreeMap<String, (f32, f32)> {
    let mut ranges: BTreeMap<String, (f32, f32)> = BTreeMap::new();
    for (i, batch) in batches.iter().enumerate() {
        let input = dir.join(format!("x{i}.npy"));
        npy::write(&input, &batch[0].1).unwrap();
        let out = dir.join(format!("ranges{i}.json"));
        let mut cmd = Command::new(python());
        cmd.arg(root().join("tests/scripts/ort_ranges.py"))
            .arg(model())
            .arg(&out)
            .arg(format!("x={}", input.display()));
        let (code, _, err) = output(&mut cmd);
        assert_eq!(code, 0, "onnxruntime failed: {err}");
        let json: BTreeMap<String, (f32, f32)> =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        for (name, (lo, hi)) in json {
            let r = ranges.entry(name).or_insert((lo, hi));
            *r = (r.0.min(lo), r.1.max(hi));
        }
    }
    ranges
}

/// Every value the model computes, over two real images: the min and max collected agree with
/// onnxruntime's to 1e-4 of the value's magnitude.
#[test]
fn value_ranges_match_onnxruntime() {
    let g = graph();
    let dir = tempfile::tempdir().unwrap();
    let batches: Vec<Vec<(String, Tensor)>> = images()
        .iter()
        .map(|image| vec![("x".to_string(), prepared(image))])
        .collect();
    let stats = collect(&g, &batches, 2).expect("calibration");
    let reference = ort_ranges(&batches, dir.path());

    let mut wrong = Vec::new();
    for (name, &(lo, hi)) in &reference {
        let Some(s) = stats.get(name) else {
            wrong.push(format!("{name}: not collected"));
            continue;
        };
        let tolerance = 1e-4 * lo.abs().max(hi.abs());
        if (s.min - lo).abs() > tolerance || (s.max - hi).abs() > tolerance {
            wrong.push(format!("{name}: [{}, {}] vs [{lo}, {hi}]", s.min, s.max));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} values differ from onnxruntime's:\n{}",
        wrong.len(),
        reference.len(),
        wrong.join("\n")
    );

    let output = &g.value_info(g.outputs[0].value).name;
    let dims = g
        .value_type(g.outputs[0].value)
        .shape
        .known()
        .expect("static output");
    let elements: usize = dims.iter().product();
    let s = stats.get(output).expect("the output's statistics");
    assert_eq!(s.histogram.total() as usize, 2 * elements);
    // The input is recorded too: 3 channels of SIDE x SIDE per image.
    let x = stats.get("x").expect("the input's statistics");
    assert_eq!(x.histogram.total() as usize, 2 * 3 * SIDE * SIDE);
}

#[test]
fn cache_round_trips_and_misses_on_another_key() {
    let g = graph();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache/calibration.json");
    let batches = vec![vec![("x".to_string(), prepared(&images()[0]))]];
    let key = cache_key(&model(), "bgr 0.5", &images(), "x:1x3x160x160").unwrap();
    let fresh = load_or_collect(&cache, &key, &g, &batches, 2).unwrap();
    assert!(cache.is_file());
    assert!(fresh.get("x").is_some());

    // A hit is served from the file: with no batches to run, only the cache can give this.
    let hit = load_or_collect(&cache, &key, &g, &[], 2).unwrap();
    assert_eq!(hit, fresh);

    // Another key recomputes (here over no batches: nothing observed) and replaces the file.
    let other = cache_key(&model(), "bgr 0.5", &images(), "x:1x3x320x320").unwrap();
    assert_ne!(other, key);
    let missed = load_or_collect(&cache, &other, &g, &[], 2).unwrap();
    assert!(missed.get("x").is_none());
    assert!(load_or_collect(&cache, &key, &g, &[], 2)
        .unwrap()
        .get("x")
        .is_none());
}

#[test]
fn cache_key_follows_every_input() {
    let dir = tempfile::tempdir().unwrap();
    let copies: Vec<PathBuf> = images()
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let copy = dir.path().join(format!("{i}.png"));
            std::fs::copy(image, &copy).unwrap();
            copy
        })
        .collect();
    let key = |model: &Path, pre: &str, images: &[PathBuf], dims: &str| {
        cache_key(model, pre, images, dims).unwrap()
    };
    let base = key(&model(), "p", &copies, "d");
    assert_eq!(base, key(&model(), "p", &copies, "d"));
    assert_ne!(base, key(&model(), "q", &copies, "d"));
    assert_ne!(base, key(&model(), "p", &copies, "e"));
    assert_ne!(base, key(&model(), "p", &copies[..1], "d"));
    let other_model = real_model("ppocr_cls_v2_onnx", "ch_ppocr_mobile_v2.0_cls_infer.onnx");
    assert_ne!(base, key(&other_model, "p", &copies, "d"));
    let mut bytes = std::fs::read(&copies[1]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&copies[1], bytes).unwrap();
    assert_ne!(base, key(&model(), "p", &copies, "d"));
    assert!(cache_key(&model(), "p", &[dir.path().join("missing.png")], "d").is_err());
}
