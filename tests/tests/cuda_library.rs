//! ops_lib's and the detection ops' lowerings on the CUDA backend's host emulator (yolo_box,
//! RoiAlign, DeformSample, DeformConv, GridSample): small hand-built graphs whose inputs are all
//! computed in the run, run by the emulated CUDA backend and by the CPU runtime on the same
//! values. Every output must match within relative L2 1e-4 (DeformConv's GEMMs sum in another
//! order than the CPU's), and no node may be left to the host. Then a generated PaddleDetection
//! YOLOv3 with deformable convolutions, compiled as `temblor compile` does.

use temblor_infer::StaticDims;
use temblor_ir::{
    validate, DType, DeformConvAttrs, Graph, GraphOutput, GridSampleMode, GridSamplePadding,
    Layout, LibOp, Node, Op, RoiAlignAttrs, Shape, TensorInfo, TensorType, ValueRef, YoloBoxAttrs,
};
use temblor_pipeline::{compile, Options, VerifyMode};
use temblor_runtime::{
    prepare, prepare_emulated_cuda, Device, Plan, PrepareOptions, Tensor, TensorData,
};
use temblor_tests::builder::Builder;
use temblor_tests::detections::{assert_same_detections, Detection};
use temblor_tests::{read_f32, rel_l2, shared, Rng};

fn ty(dtype: DType, dims: &[usize]) -> TensorType {
    TensorType {
        dtype,
        shape: Shape::from_known(dims),
        layout: Layout::Any,
    }
}

fn f32s(dims: &[usize]) -> TensorType {
    ty(DType::F32, dims)
}

/// A node of several outputs, `outputs` naming each with its type.
fn node(
    b: &mut Builder,
    op: Op,
    inputs: &[ValueRef],
    outputs: &[(&str, TensorType)],
) -> Vec<ValueRef> {
    let name = outputs[0].0;
    let infos = outputs
        .iter()
        .map(|(n, t)| TensorInfo {
            name: (*n).into(),
            ty: t.clone(),
        })
        .collect();
    let mut n = Node::new(name, op, infos);
    n.provenance = b.origin(name, "hand-built");
    let id = b.g.add_node(n);
    for (port, v) in inputs.iter().enumerate() {
        b.g.connect(*v, id, port);
    }
    (0..outputs.len()).map(|p| ValueRef::new(id, p)).collect()
}

/// Graph inputs of the given values, in order.
fn inputs(b: &mut Builder, feed: &[(&str, &Tensor)]) -> Vec<ValueRef> {
    feed.iter()
        .map(|(name, t)| b.input(name, ty(t.dtype(), &t.shape)))
        .collect()
}

fn finish(mut b: Builder, outputs: &[(&str, ValueRef)]) -> Graph {
    b.g.outputs = outputs
        .iter()
        .map(|(name, value)| GraphOutput {
            name: (*name).into(),
            value: *value,
        })
        .collect();
    validate(&b.g).expect("hand-built graph is valid");
    b.g
}

/// Runs `graph` on the CPU and, twice in one state, on the emulated CUDA backend, compares
/// every output, and returns the nodes left to the host, with why.
fn compare(graph: &Graph, feed: &[(&str, &Tensor)]) -> Vec<(String, String)> {
    let feed: Vec<(String, Tensor)> = feed
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).clone()))
        .collect();
    let cpu = prepare(graph, &Device::Cpu, &PrepareOptions::default()).unwrap();
    let want = cpu.run_once(&feed).unwrap();
    let cuda = prepare_emulated_cuda(graph).unwrap();
    let mut state = cuda.new_state();
    for round in 0..2 {
        let got = cuda.run(&mut state, &feed).unwrap();
        assert_eq!(got.len(), want.len());
        for ((name, g), (_, w)) in got.iter().zip(&want) {
            assert_eq!(g.shape, w.shape, "{}: {name}", graph.name);
            let (g, w) = (g.as_f32().unwrap(), w.as_f32().unwrap());
            let err = rel_l2(g, w);
            assert!(
                err <= 1e-4,
                "{}: {name}, run {round}: rel L2 {err:e}",
                graph.name
            );
        }
    }
    host_nodes(&cuda, &feed)
}

/// The nodes `cuda` ran on the host for `feed`'s shapes, which must have run.
fn host_nodes(cuda: &Plan, feed: &[(String, Tensor)]) -> Vec<(String, String)> {
    cuda.host_nodes(feed).expect("a program for these inputs")
}

/// Runs `graph` as [`compare`] does and checks that every node ran on the (emulated) GPU.
fn assert_runs_on_the_gpu(graph: &Graph, feed: &[(&str, &Tensor)]) {
    let host = compare(graph, feed);
    assert!(host.is_empty(), "{}: on the host: {host:?}", graph.name);
}

fn random(seed: u64, dims: &[usize], scale: f32) -> Tensor {
    let values = Rng(seed).values(dims.iter().product());
    Tensor::f32(
        dims.to_vec(),
        values.into_iter().map(|v| v * scale).collect(),
    )
}

fn yolo_attrs(iou_aware: bool) -> YoloBoxAttrs {
    YoloBoxAttrs {
        anchors: Some(vec![10, 13, 16, 30, 33, 23]),
        class_num: 4,
        conf_thresh: 0.3,
        downsample_ratio: 8,
        clip_bbox: true,
        scale_x_y: 1.05,
        iou_aware,
        iou_aware_factor: 0.4,
    }
}

#[test]
fn yolo_box_decodes_on_the_gpu_as_on_the_cpu() {
    // Three anchors of 5 + 4 channels (one more each when IoU-aware) over 6x7, two images;
    // about half the positions fall below the confidence threshold.
    for (iou_aware, sizes) in [
        (false, Tensor::i64(vec![2, 2], vec![48, 56, 40, 60])),
        (
            true,
            Tensor {
                shape: vec![2, 2],
                data: TensorData::I32(vec![48, 56, 30, 50]),
            },
        ),
    ] {
        let channels = 3 * (9 + usize::from(iou_aware));
        let x = random(7, &[2, channels, 6, 7], 3.0);
        let mut b = Builder::new("yolo_box", 1);
        let feed = [("x", &x), ("im_size", &sizes)];
        let ins = inputs(&mut b, &feed);
        let op = Op::Lib(LibOp::YoloBox(yolo_attrs(iou_aware)));
        let outs = node(
            &mut b,
            op,
            &ins,
            &[
                ("boxes", f32s(&[2, 126, 4])),
                ("scores", f32s(&[2, 126, 4])),
            ],
        );
        let g = finish(b, &[("boxes", outs[0]), ("scores", outs[1])]);
        assert_runs_on_the_gpu(&g, &feed);
    }
}

#[test]
fn roi_align_pools_on_the_gpu_as_on_the_cpu() {
    let x = random(3, &[2, 3, 12, 10], 1.0);
    // Regions in input pixels (spatial_scale 0.5 of a 24x20 image), one partly outside the
    // map, one inverted, of both images.
    let rois = Tensor::f32(
        vec![4, 4],
        vec![
            2.0, 3.0, 15.0, 20.0, //
            -4.0, -2.0, 6.0, 5.0, //
            10.0, 10.0, 4.0, 6.0, //
            0.0, 0.0, 19.5, 23.5,
        ],
    );
    let batch = Tensor::i64(vec![4], vec![1, 0, 1, 0]);
    for (max, half_pixel, sampling_ratio) in [(false, true, 0), (true, false, 2)] {
        let mut b = Builder::new("roi_align", 2);
        let feed = [("x", &x), ("rois", &rois), ("batch", &batch)];
        let ins = inputs(&mut b, &feed);
        let attrs = RoiAlignAttrs {
            max,
            output_height: 3,
            output_width: 4,
            sampling_ratio,
            spatial_scale: 0.5,
            half_pixel,
        };
        let y = b.node("roi_align", Op::RoiAlign(attrs), f32s(&[4, 3, 3, 4]), &ins);
        let g = finish(b, &[("y", y)]);
        assert_runs_on_the_gpu(&g, &feed);
    }
}

fn deform_attrs(group: usize, offset_group: usize) -> DeformConvAttrs {
    DeformConvAttrs {
        kernel: [3, 3],
        strides: [2, 2],
        dilations: [1, 1],
        pads: [1, 1, 1, 1],
        group,
        offset_group,
    }
}

/// x `[2, 4, 9, 9]` and, for stride 2 and 3x3 taps, offsets of up to 2.5 pixels (many taps
/// land between pixels, some outside the map) and a mask in [0, 1).
fn deform_feed(offset_group: usize) -> [Tensor; 3] {
    let x = random(5, &[2, 4, 9, 9], 1.0);
    let offset = random(6, &[2, offset_group * 18, 5, 5], 2.5);
    let mask = random(8, &[2, offset_group * 9, 5, 5], 0.5);
    let mask = Tensor::f32(
        mask.shape.clone(),
        mask.as_f32().unwrap().iter().map(|v| v + 0.5).collect(),
    );
    [x, offset, mask]
}

#[test]
fn deform_sample_gathers_on_the_gpu_as_on_the_cpu() {
    for (offset_group, masked) in [(1, false), (2, true)] {
        let [x, offset, mask] = deform_feed(offset_group);
        let mut feed = vec![("x", &x), ("offset", &offset)];
        if masked {
            feed.push(("mask", &mask));
        }
        let mut b = Builder::new("deform_sample", 3);
        let ins = inputs(&mut b, &feed);
        let op = Op::DeformSample(deform_attrs(1, offset_group));
        let y = b.node("sample", op, f32s(&[2, 36, 5, 5]), &ins);
        let g = finish(b, &[("y", y)]);
        assert_runs_on_the_gpu(&g, &feed);
    }
}

#[test]
fn deform_conv_runs_on_the_gpu_as_on_the_cpu() {
    for (group, offset_group, masked_with_bias) in [(1, 1, false), (2, 2, true), (1, 2, true)] {
        let [x, offset, mask] = deform_feed(offset_group);
        let mut feed = vec![("x", &x), ("offset", &offset)];
        if masked_with_bias {
            feed.push(("mask", &mask));
        }
        let mut b = Builder::new("deform_conv", 4);
        let ins = inputs(&mut b, &feed);
        let w = b.random("w", &[6, 4 / group, 3, 3], Layout::OIHW);
        let mut args = vec![ins[0], w, ins[1]];
        if masked_with_bias {
            args.push(b.random("bias", &[6], Layout::C));
            args.push(ins[2]);
        }
        let op = Op::DeformConv(deform_attrs(group, offset_group));
        let y = b.node("dcn", op, f32s(&[2, 6, 5, 5]), &args);
        let g = finish(b, &[("y", y)]);
        assert_runs_on_the_gpu(&g, &feed);
    }
}

#[test]
fn grid_sample_reads_on_the_gpu_as_on_the_cpu() {
    let x = random(9, &[2, 3, 7, 8], 1.0);
    // Points past [-1, 1] too, which read zeros.
    let grid = random(10, &[2, 5, 6, 2], 1.2);
    for align_corners in [false, true] {
        let mut b = Builder::new("grid_sample", 5);
        let feed = [("x", &x), ("grid", &grid)];
        let ins = inputs(&mut b, &feed);
        let op = Op::GridSample {
            mode: GridSampleMode::Linear,
            padding: GridSamplePadding::Zeros,
            align_corners,
        };
        let y = b.node("grid_sample", op, f32s(&[2, 3, 5, 6]), &ins);
        let g = finish(b, &[("y", y)]);
        assert_runs_on_the_gpu(&g, &feed);
    }
}

/// A generated PaddleDetection detector (ResNet18-vd with deformable convolutions, yolo_box,
/// an NMS) as `temblor compile` builds it, on Paddle's stored input: everything up to the NMS
/// on the GPU, the deformable convolutions and yolo_box among it; the NMS, whose box count
/// depends on the scores, and what reads its boxes on the host, besides the nodes whose reason
/// contains one of `other_gaps` (ops of other families not lowered yet).
fn assert_decodes_on_the_gpu_up_to_its_nms(model: &str, other_gaps: &[&str]) {
    let dir = shared().join("models/paddle").join(model);
    let feed: Vec<(String, Tensor)> = ["image", "im_shape", "scale_factor"]
        .iter()
        .map(|name| {
            let (dims, values) = read_f32(&dir.join(format!("input_{name}.npy")));
            (name.to_string(), Tensor::f32(dims, values))
        })
        .collect();
    let options = Options {
        input_dims: feed
            .iter()
            .map(|(n, t)| (n.clone(), t.shape.clone()))
            .collect(),
        static_dims: StaticDims::Override,
        verify: VerifyMode::Off,
        ..Options::default()
    };
    let graph = compile(&dir.join("model.pdmodel"), &options)
        .unwrap()
        .compile;
    let cpu = prepare(&graph, &Device::Cpu, &PrepareOptions::default()).unwrap();
    let want = cpu.run_once(&feed).unwrap();
    let cuda = prepare_emulated_cuda(&graph).unwrap();
    let got = cuda.run(&mut cuda.new_state(), &feed).unwrap();
    for ((name, g), (_, w)) in got.iter().zip(&want) {
        assert_eq!(g.shape, w.shape, "{name}");
        let detections = g.shape.len() == 2 && g.shape[1] == 6;
        match (g.as_f32(), w.as_f32()) {
            // Detections as sets: two candidates whose scores differ in the sixth digit (this
            // random-weight model scores many alike) may leave the NMS in either order when the
            // GPU and the CPU sum in different orders.
            (Some(g), Some(w)) if detections => {
                let rows = |v: &[f32]| -> Vec<Detection> {
                    v.chunks_exact(6)
                        .map(|c| std::array::from_fn(|i| f64::from(c[i])))
                        .collect()
                };
                let swapped = assert_same_detections(&rows(g), &rows(w), name);
                assert_eq!(swapped, 0, "{name}: detections swapped at the cut");
            }
            (Some(g), Some(w)) => assert!(rel_l2(g, w) <= 1e-4, "{name}: {:e}", rel_l2(g, w)),
            _ => assert_eq!(g, w, "{name}"),
        }
    }
    let host = host_nodes(&cuda, &feed);
    assert!(!host.is_empty(), "{model}: the NMS ran on the GPU");
    for (node, why) in &host {
        assert!(
            why.contains("data-dependent")
                || why.contains("depends on the data")
                || other_gaps.iter().any(|gap| why.contains(gap)),
            "{model}: {node} on the host: {why}"
        );
    }
    let lowered: Vec<&str> = graph
        .node_ids()
        .map(|id| graph.node(id))
        .filter(|n| {
            matches!(
                n.op,
                Op::Lib(LibOp::YoloBox(_)) | Op::DeformSample(_) | Op::DeformConv(_)
            )
        })
        .map(|n| n.name.as_str())
        .collect();
    assert!(
        lowered.len() >= 4,
        "yolo_box and deformable convs: {lowered:?}"
    );
    for name in lowered {
        assert!(
            host.iter().all(|(h, _)| h != name),
            "{model}: {name} ran on the host"
        );
    }
}

#[test]
fn yolov3_dcn_decodes_on_the_gpu_up_to_its_nms() {
    assert_decodes_on_the_gpu_up_to_its_nms("yolov3_r18vd_dcn", &[]);
}

/// PP-YOLO's NMS is a matrix NMS; the Pow and Log before its yolo_boxes (the IoU-aware head
/// blended into logits) run on the GPU too, with no other gap.
#[test]
fn ppyolo_dcn_decodes_on_the_gpu_up_to_its_nms() {
    assert_decodes_on_the_gpu_up_to_its_nms("ppyolo_r18vd_dcn", &[]);
}

/// The lowerings refuse what their kernels do not compute: a nearest GridSample stays on the
/// host, with the reason, and its output is still the CPU's.
#[test]
fn nearest_grid_sample_stays_on_the_host() {
    let x = random(9, &[1, 2, 4, 4], 1.0);
    let grid = random(10, &[1, 3, 3, 2], 1.0);
    let mut b = Builder::new("grid_sample_nearest", 6);
    let feed = [("x", &x), ("grid", &grid)];
    let ins = inputs(&mut b, &feed);
    let op = Op::GridSample {
        mode: GridSampleMode::Nearest,
        padding: GridSamplePadding::Zeros,
        align_corners: false,
    };
    let y = b.node("nearest", op, f32s(&[1, 2, 3, 3]), &ins);
    let g = finish(b, &[("y", y)]);
    let host = compare(&g, &feed);
    assert_eq!(host.len(), 1, "{host:?}");
    assert_eq!(host[0].0, "nearest");
    assert!(host[0].1.contains("Nearest"), "{}", host[0].1);
}
