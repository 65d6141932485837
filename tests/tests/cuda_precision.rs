//! Precision plans on the CUDA backend without a GPU (issue 23): YOLOv8n compiled with fp16, bf16
//! and int8 plans, and hand-made quantizations, run by the CUDA backend on its host emulator
//! against the CPU runtime, every node on the GPU.
//!
//! - fp16 and bf16: a half layer computes in f32 and rounds its outputs to half on both backends
//!   (on the GPU, an f16 convolution or MatMul as an f16 x f16 GEMM summing in f32, whose
//!   products are exact; every other half layer, and every bf16 one, as its f32 kernel on widened
//!   inputs), so the only difference is the GEMMs' summation order, which an
//!   output's rounding either hides or turns into one half step (2^-11 relative for f16, 2^-8 for
//!   bf16), carried on by the layers after. Measured: 2.3e-4 (fp16) and 1.7e-3 (bf16), in the
//!   ratio of the two steps; the bounds are 4x and 3x those.
//! - int8: the CPU reference simulates the plan (QuantizeLinear and DequantizeLinear run as
//!   written, as the GPU runs them) instead of its native int8 convolutions, which round
//!   differently. Quantization is the CPU's to the bit (checked on its own below), but an
//!   activation within a GEMM rounding of a quantization step's midpoint takes the neighbouring
//!   step: one step of that layer's scale, carried on by the layers after.

use temblor_infer::StaticDims;
use temblor_ir::{DType, Layout, Op, Shape, TensorType, ValueRef, Weight};
use temblor_pipeline::{compile, Options, VerifyMode};
use temblor_precision::request::Request;
use temblor_precision::PlanMode;
use temblor_runtime::{
    prepare, prepare_emulated_cuda, Device, Int8Execution, PrepareOptions, Tensor, TensorData,
};
use temblor_tests::builder::{int8_weight, Builder};
use temblor_tests::{real_model, rel_l2, shared};

/// A photo as YOLOv8n's `[1, 3, 320, 320]` input, RGB in [0, 1].
fn photo() -> Tensor {
    let s = 320;
    let img = image::open(shared().join("images/astronaut.png"))
        .unwrap()
        .resize_exact(s as u32, s as u32, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let mut data = vec![0f32; 3 * s * s];
    for (x, y, p) in img.enumerate_pixels() {
        for c in 0..3 {
            data[c * s * s + y as usize * s + x as usize] = f32::from(p[c]) / 255.0;
        }
    }
    Tensor::f32(vec![1, 3, s, s], data)
}

/// YOLOv8n's preprocessing, for calibration: the photo stretched to 320 x 320, RGB in [0, 1].
const YOLO_PREPROCESS: &str = "\
mode: paddle
Preprocess:
- interp: 2
  keep_ratio: false
  target_size: [320, 320]
  type: Resize
- is_scale: true
  mean: [0.0, 0.0, 0.0]
  std: [1.0, 1.0, 1.0]
  type: NormalizeImage
- type: Permute
";

/// YOLOv8n compiled at 1x3x320x320 with `precision`, run on the CPU (with `int8` execution) and
/// on the emulated CUDA backend, twice in one state; the relative L2 error of its one output,
/// after checking that every node ran on the GPU and that the plan has `count` nodes of `op`.
fn yolov8n(precision: Request, int8: Int8Execution, op: &str, count: usize) -> f64 {
    let options = Options {
        input_dims: vec![("images".to_owned(), vec![1, 3, 320, 320])],
        static_dims: StaticDims::Override,
        verify: VerifyMode::Off,
        precision,
        ..Options::default()
    };
    let model = real_model("yolov8n_nudenet_onnx", "320n.onnx");
    let graph = compile(&model, &options).unwrap().compile;
    let found = graph
        .node_ids()
        .filter(|&id| graph.node(id).op.name() == op)
        .count();
    assert!(found >= count, "{found} {op} nodes in the plan");
    let inputs = vec![("images".to_owned(), photo())];
    let options = PrepareOptions {
        int8,
        ..PrepareOptions::default()
    };
    let want = prepare(&graph, &Device::Cpu, &options)
        .unwrap()
        .run_once(&inputs)
        .unwrap();
    let cuda = prepare_emulated_cuda(&graph).unwrap();
    let mut state = cuda.new_state();
    let mut worst = 0f64;
    for round in 0..2 {
        let got = cuda.run(&mut state, &inputs).unwrap();
        assert_eq!(got.len(), want.len());
        for ((name, g), (_, w)) in got.iter().zip(&want) {
            assert_eq!(
                (g.shape.as_slice(), g.dtype()),
                (w.shape.as_slice(), w.dtype()),
                "{name}"
            );
            let (g, w) = (widened(g), widened(w));
            let err = rel_l2(&g, &w) as f64;
            eprintln!("plan with {op} nodes, output {name}, run {round}: rel L2 {err:e}");
            worst = worst.max(err);
        }
    }
    let host = cuda
        .host_nodes(&inputs)
        .expect("a program for these inputs");
    assert!(host.is_empty(), "on the host: {host:?}");
    worst
}

/// A float output's values as f32.
fn widened(t: &Tensor) -> Vec<f32> {
    t.as_f32().map(<[f32]>::to_vec).unwrap_or_else(|| {
        let wide = temblor_runtime::run_op(
            &temblor_ir::Op::Cast {
                to: temblor_ir::DType::F32,
            },
            &[Some(t)],
            1,
        )
        .unwrap();
        wide[0].as_f32().unwrap().to_vec()
    })
}

#[test]
fn yolov8n_fp16_runs_on_the_emulated_gpu_as_on_the_cpu() {
    let request = Request {
        mode: PlanMode::Fp16,
        ..Request::default()
    };
    let err = yolov8n(request, Int8Execution::default(), "Cast", 1);
    assert!(err <= 1e-3, "fp16: rel L2 {err:e}");
}

/// bf16 as fp16, against the CPU's simulation of the bf16 convolutions (widened, convolved in
/// f32, rounded), not its bf16 dot products, which sum in another order.
#[test]
fn yolov8n_bf16_runs_on_the_emulated_gpu_as_the_cpu_simulates_it() {
    let request = Request {
        mode: PlanMode::Bf16,
        ..Request::default()
    };
    let err = yolov8n(request, Int8Execution::Simulate, "Cast", 1);
    assert!(err <= 5e-3, "bf16: rel L2 {err:e}");
}

#[test]
fn yolov8n_int8_runs_on_the_emulated_gpu_as_the_cpu_simulates_it() {
    let dir = tempfile::tempdir().unwrap();
    let (images, preprocess) = (dir.path().join("images"), dir.path().join("infer_cfg.yml"));
    std::fs::create_dir(&images).unwrap();
    for photo in ["astronaut.png", "coffee.png"] {
        std::fs::copy(shared().join("images").join(photo), images.join(photo)).unwrap();
    }
    std::fs::write(&preprocess, YOLO_PREPROCESS).unwrap();
    let request = Request {
        mode: PlanMode::Int8,
        calib: Some(images),
        preprocess: Some(preprocess),
        cache_dir: dir.path().join("cache"),
        ..Request::default()
    };
    let err = yolov8n(request, Int8Execution::Simulate, "QuantizeLinear", 1);
    // A convolution summed in another order moves a value across a quantization step now and
    // then, and the step's error travels on through the layers after it: measured 2.9e-4 while
    // both sides summed as GEMMs, 3.6e-3 since the CPU sums its small-plane convolutions over
    // channel blocks (`conv_blocked.rs`; fp32 stays within 1e-4 of the GPU, `cuda_backend.rs`).
    assert!(err <= 5e-3, "int8: rel L2 {err:e}");
}

fn typed(dtype: DType, dims: &[usize]) -> TensorType {
    TensorType {
        dtype,
        shape: Shape::from_known(dims),
        layout: Layout::Any,
    }
}

/// QuantizeLinear and DequantizeLinear of computed values, bit for bit against the CPU: per
/// tensor into int8 with a zero point, per channel into uint8, and per channel from an int8
/// input, on values at the rounding ties, past the saturation ends, infinite and NaN. Each
/// quantized value is an output too, so the CPU plan keeps it (it fuses a QuantizeLinear read
/// only by a DequantizeLinear into one step).
#[test]
fn quantization_runs_on_the_emulated_gpu_as_on_the_cpu_to_the_bit() {
    let dims = [1usize, 4, 5, 6];
    let n: usize = dims.iter().product();
    let mut b = Builder::new("qdq", 7);
    let x = b.input("x", typed(DType::F32, &dims));
    let codes = b.input("codes", typed(DType::I8, &dims));
    let scale = b.constant("scale", &[], vec![0.05], Layout::Any);
    let zero = b.weight("zero", int8_weight(vec![], &[-3]), Layout::Any);
    // Channel 0 at 0.25 puts 0.125 and -0.375 on exact ties.
    let channel_scales = vec![0.25, 0.1, 0.37, 1.5];
    let scales = b.constant("scales", &[4], channel_scales, Layout::C);
    let zeros = b.weight(
        "zeros",
        Weight {
            dtype: DType::U8,
            dims: vec![4],
            data: vec![0u8, 7, 128, 255].into(),
        },
        Layout::C,
    );
    let q = |axis| Op::QuantizeLinear {
        axis,
        saturate: true,
    };
    let dq = |axis| Op::DequantizeLinear { axis };
    let q1 = b.node("q1", q(1), typed(DType::I8, &dims), &[x, scale, zero]);
    let dq1 = b.node("dq1", dq(1), typed(DType::F32, &dims), &[q1, scale, zero]);
    let q2 = b.node("q2", q(1), typed(DType::U8, &dims), &[x, scales, zeros]);
    let dq2 = b.node("dq2", dq(1), typed(DType::F32, &dims), &[q2, scales, zeros]);
    let dq3 = b.node("dq3", dq(1), typed(DType::F32, &dims), &[codes, scales]);
    let outputs: [(&str, ValueRef); 5] = [
        ("q1", q1),
        ("dq1", dq1),
        ("q2", q2),
        ("dq2", dq2),
        ("dq3", dq3),
    ];
    for (name, value) in outputs {
        b.g.outputs.push(temblor_ir::GraphOutput {
            name: name.into(),
            value,
        });
    }
    let mut values: Vec<f32> = (0..n).map(|i| (i as f32 - 60.0) * 0.025).collect();
    values[..8].copy_from_slice(&[
        1e6,
        -1e6,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -0.0,
        0.125,
        -0.375,
    ]);
    let codes: Vec<i8> = (0..n).map(|i| (i * 37 % 256) as u8 as i8).collect();
    let inputs = vec![
        ("x".to_owned(), Tensor::f32(dims.to_vec(), values)),
        (
            "codes".to_owned(),
            Tensor {
                shape: dims.to_vec(),
                data: TensorData::I8(codes),
            },
        ),
    ];
    let options = PrepareOptions {
        int8: Int8Execution::Simulate,
        ..PrepareOptions::default()
    };
    let want = prepare(&b.g, &Device::Cpu, &options)
        .unwrap()
        .run_once(&inputs)
        .unwrap();
    let cuda = prepare_emulated_cuda(&b.g).unwrap();
    let got = cuda.run(&mut cuda.new_state(), &inputs).unwrap();
    let bits = |t: &Tensor| t.data.to_le_bytes();
    for ((name, g), (_, w)) in got.iter().zip(&want) {
        assert_eq!((&g.shape, g.dtype()), (&w.shape, w.dtype()), "{name}");
        assert_eq!(bits(g), bits(w), "{name}");
    }
    let host = cuda
        .host_nodes(&inputs)
        .expect("a program for these inputs");
    assert!(host.is_empty(), "on the host: {host:?}");
}
