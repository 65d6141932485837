//! The CUDA backend without a GPU (issue 23): real models compiled as `temblor compile` does, run
//! by the CUDA backend on its host emulator (the backend's own specialization, lowering, memory
//! plan and argument bytes, and its kernel sources compiled for the CPU), against the CPU
//! runtime on the same photo. Every output must match within relative L2 1e-4 (the GEMMs sum in
//! another order than the CPU's convolutions), and the share of nodes left to the host is
//! bounded, so that a lowering that stops applying fails here rather than on a GPU.
//!
//! What this cannot check is the driver itself (cudarc, cuBLAS, graph capture), which
//! `scripts/gpu_check.sh` runs on a machine with a GPU.

use std::path::Path;
use std::time::Duration;
use temblor_infer::StaticDims;
use temblor_pipeline::{compile, Options, VerifyMode};
use temblor_runtime::{
    prepare, prepare_emulated_cuda, Device, Observer, PrepareOptions, RuntimeError, StepInfo,
    Tensor, ValueView,
};
use temblor_tests::{real_model, rel_l2, shared};

/// The astronaut as the model's `[1, 3, h, w]` input, RGB in [0, 1].
fn photo(h: usize, w: usize) -> Tensor {
    photos(&["astronaut.png"], h, w)
}

/// `names` of ../shared/images as one `[N, 3, h, w]` batch, RGB in [0, 1].
fn photos(names: &[&str], h: usize, w: usize) -> Tensor {
    let mut data = Vec::with_capacity(names.len() * 3 * h * w);
    for name in names {
        data.extend(one_photo(name, h, w));
    }
    Tensor::f32(vec![names.len(), 3, h, w], data)
}

fn one_photo(name: &str, h: usize, w: usize) -> Vec<f32> {
    let img = image::open(shared().join("images").join(name))
        .unwrap()
        .resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let mut data = vec![0f32; 3 * h * w];
    for (x, y, p) in img.enumerate_pixels() {
        for c in 0..3 {
            data[c * h * w + y as usize * w + x as usize] = f32::from(p[c]) / 255.0;
        }
    }
    data
}

/// Runs `model`, compiled for `inputs`' shapes, on the CPU and on the emulated CUDA backend,
/// checks every output, and returns the nodes the CUDA backend left to the host, with why.
fn compare(model: &Path, inputs: Vec<(&str, Tensor)>) -> Vec<(String, String)> {
    let options = Options {
        input_dims: inputs
            .iter()
            .map(|(n, t)| (n.to_string(), t.shape.clone()))
            .collect(),
        static_dims: StaticDims::Override,
        verify: VerifyMode::Off,
        ..Options::default()
    };
    let graph = compile(model, &options).unwrap().compile;
    let inputs: Vec<(String, Tensor)> =
        inputs.into_iter().map(|(n, t)| (n.to_owned(), t)).collect();
    let cpu = prepare(&graph, &Device::Cpu, &PrepareOptions::default()).unwrap();
    let want = cpu.run_once(&inputs).unwrap();
    let cuda = prepare_emulated_cuda(&graph).unwrap();
    let mut state = cuda.new_state();
    // Twice in one state: the second run reuses the arena and the resolved calls.
    for round in 0..2 {
        let got = cuda.run(&mut state, &inputs).unwrap();
        assert_eq!(got.len(), want.len());
        for ((name, g), (_, w)) in got.iter().zip(&want) {
            assert_eq!(g.shape, w.shape, "{name}");
            match (g.as_f32(), w.as_f32()) {
                (Some(g), Some(w)) => {
                    let err = rel_l2(g, w);
                    assert!(
                        err <= 1e-4,
                        "{} output {name}, run {round}: rel L2 {err:e}",
                        model.display()
                    );
                }
                _ => assert_eq!(g, w, "{name}"),
            }
        }
    }
    cuda.host_nodes(&inputs)
        .expect("a program for these inputs")
}

/// `[1, h, w, 3]` from `[1, 3, h, w]`.
fn nhwc(t: Tensor) -> Tensor {
    let (h, w) = (t.shape[2], t.shape[3]);
    let x = t.as_f32().unwrap();
    let mut data = vec![0f32; x.len()];
    for c in 0..3 {
        for p in 0..h * w {
            data[p * 3 + c] = x[c * h * w + p];
        }
    }
    Tensor::f32(vec![1, h, w, 3], data)
}

/// Every node on the GPU.
fn all_on_gpu(name: &str, file: &str, inputs: Vec<(&str, Tensor)>) {
    let host = compare(&real_model(name, file), inputs);
    assert!(host.is_empty(), "{name}: on the host: {host:?}");
}

#[test]
fn yolov8n_runs_on_the_emulated_gpu_as_on_the_cpu() {
    all_on_gpu(
        "yolov8n_nudenet_onnx",
        "320n.onnx",
        vec![("images", photo(320, 320))],
    );
}

/// Batch 2 of two different photos: the images must not mix in the batched GEMMs and kernels.
#[test]
fn yolov8n_runs_batches_on_the_emulated_gpu_as_on_the_cpu() {
    all_on_gpu(
        "yolov8n_nudenet_onnx",
        "320n.onnx",
        vec![("images", photos(&["astronaut.png", "coffee.png"], 320, 320))],
    );
}

#[test]
fn ppocr_det_and_rec_run_on_the_emulated_gpu_as_on_the_cpu() {
    all_on_gpu(
        "ppocrv4_det_onnx",
        "ch_PP-OCRv4_det_infer.onnx",
        vec![("x", photo(320, 320))],
    );
    all_on_gpu(
        "ppocrv4_rec_onnx",
        "ch_PP-OCRv4_rec_infer.onnx",
        vec![("x", photo(48, 320))],
    );
}

#[test]
fn second_zoo_runs_on_the_emulated_gpu_as_on_the_cpu() {
    all_on_gpu(
        "centerface_onnx",
        "centerface.onnx",
        vec![("input.1", photo(256, 256))],
    );
    all_on_gpu(
        "open_nsfw_nhwc_onnx",
        "open_nsfw.onnx",
        vec![("input_0", nhwc(photo(224, 224)))],
    );
    all_on_gpu(
        "u2netp_onnx",
        "u2netp.onnx",
        vec![("input.1", photo(320, 320))],
    );
    all_on_gpu(
        "vit_s_focus_onnx",
        "vit_s_focus.onnx",
        vec![("input_image", photo(224, 224))],
    );
    all_on_gpu(
        "orinet_orient_onnx",
        "orientation_orinet_fp32.onnx",
        vec![("x", photo(320, 320))],
    );
}

#[test]
fn picodet_postprocessing_runs_on_the_host_after_the_emulated_gpu() {
    let model = shared().join("models/real/picodet_coco_onnx/model.onnx");
    let host = compare(
        &model,
        vec![
            ("image", photo(416, 416)),
            ("scale_factor", Tensor::f32(vec![1, 2], vec![1.0, 1.0])),
        ],
    );
    // multiclass NMS keeps as many boxes as the scores allow: it and what reads its boxes run
    // on the host; everything before it on the GPU.
    assert!(!host.is_empty(), "the NMS ran on the GPU");
    for (node, why) in &host {
        assert!(
            why.contains("data-dependent") || why.contains("depends on the data"),
            "{node} on the host: {why}"
        );
    }
}

/// Every step's first output, by node name, as an observer sees it.
#[derive(Default)]
struct Outputs(Vec<(String, Tensor)>);

impl Observer for Outputs {
    fn step(
        &mut self,
        _: usize,
        step: &StepInfo,
        _: &[Option<ValueView<'_>>],
        outputs: &[ValueView<'_>],
        _: Duration,
    ) -> Result<(), RuntimeError> {
        self.0
            .push((step.node.clone(), outputs[0].to_host()?.into_owned()));
        Ok(())
    }
}

/// An observed run (what `profile` and layer comparisons use) runs the GPU work node by node
/// and shows each node's values, copied from the device: each the CPU's within the tolerance.
#[test]
fn observers_see_each_gpu_layer_as_the_cpu_computes_it() {
    let options = Options {
        input_dims: vec![("images".to_owned(), vec![1, 3, 320, 320])],
        verify: VerifyMode::Off,
        ..Options::default()
    };
    let graph = compile(&real_model("yolov8n_nudenet_onnx", "320n.onnx"), &options)
        .unwrap()
        .compile;
    let inputs = vec![("images".to_owned(), photo(320, 320))];
    let mut cpu = Outputs::default();
    let plan = prepare(&graph, &Device::Cpu, &PrepareOptions::default()).unwrap();
    plan.run_observed(&mut plan.new_state(), &inputs, &mut cpu)
        .unwrap();
    let cuda = prepare_emulated_cuda(&graph).unwrap();
    let mut gpu = Outputs::default();
    cuda.run_observed(&mut cuda.new_state(), &inputs, &mut gpu)
        .unwrap();
    // The CPU plan's steps, one for one: neither runs what weights alone determine.
    assert_eq!(gpu.0.len(), cpu.0.len(), "steps observed");
    let cpu: std::collections::HashMap<_, _> = cpu.0.into_iter().collect();
    for (node, g) in &gpu.0 {
        let w = &cpu[node];
        assert_eq!(g.shape, w.shape, "{node}");
        let err = rel_l2(g.as_f32().unwrap(), w.as_f32().unwrap());
        assert!(err <= 1e-4, "{node}: rel L2 {err:e}");
    }
}
