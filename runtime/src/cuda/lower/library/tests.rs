//! The launches and GEMMs of the library lowerings for concrete cases, their parameters worked
//! out by hand from the CPU kernels' definitions, and the cases that must stay on the host.
//! Their values are checked against the CPU by tests/tests/cuda_library.rs on the emulator.

use super::super::{Arg, At, Buf, Cx, Gemm, Lowering, Operand, Work};
use super::detection::YoloBoxParams;
use super::sample::DeformParams;
use super::{lower, ragged};
use crate::{Tensor, TensorData};
use temblor_ir::{
    DType, DeformConvAttrs, GridSampleMode, GridSamplePadding, LibOp, Op, RoiAlignAttrs,
    YoloBoxAttrs,
};

fn operand(dtype: DType, shape: &[usize]) -> Operand<'_> {
    Operand {
        dtype,
        shape,
        known: None,
    }
}

/// What a lowering asked for besides its work.
struct Asked {
    scratch: Vec<usize>,
    derived: Vec<Tensor>,
}

fn work(op: &Op, inputs: Vec<Option<Operand>>, outputs: Vec<Operand>) -> (Vec<Work>, Asked) {
    let mut cx = Cx::new(inputs, outputs);
    let Ok(Lowering::Work(w)) = lower(op, &mut cx) else {
        panic!("{op:?} was not lowered")
    };
    let asked = Asked {
        scratch: cx.scratch,
        derived: cx.derived,
    };
    (w, asked)
}

fn refused(op: &Op, inputs: Vec<Option<Operand>>, outputs: Vec<Operand>) -> String {
    let mut cx = Cx::new(inputs, outputs);
    match lower(op, &mut cx) {
        Err(e) => e.0,
        Ok(l) => panic!("{op:?} was lowered: {l:?}"),
    }
}

fn pod<T: Copy>(arg: &Arg) -> T {
    let Arg::Pod(bytes) = arg else {
        panic!("{arg:?}")
    };
    assert_eq!(bytes.len(), std::mem::size_of::<T>());
    // SAFETY: the mirrors are plain data of exactly these bytes.
    unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) }
}

fn yolo(anchors: Option<Vec<i64>>) -> Op {
    Op::Lib(LibOp::YoloBox(YoloBoxAttrs {
        anchors,
        class_num: 3,
        conf_thresh: 0.01,
        downsample_ratio: 32,
        clip_bbox: true,
        scale_x_y: 1.05,
        iou_aware: false,
        iou_aware_factor: 0.5,
    }))
}

#[test]
fn only_the_ops_whose_shapes_follow_the_data_are_ragged() {
    assert!(!ragged(&yolo(Some(vec![1, 2]))));
    assert!(ragged(&Op::Lib(LibOp::RoisBatchIndex)));
    assert!(ragged(&Op::NonZero));
    assert!(!ragged(&Op::DeformSample(deform(1, 1))));
}

#[test]
fn yolo_box_decodes_every_position_with_its_anchors_made_int32() {
    // Two anchors of 5 + 3 channels over a 4x5 map, two images.
    let op = yolo(Some(vec![10, 13, 16, 30]));
    let (x, img) = ([2, 16, 4, 5], [2, 2]);
    let (boxes, scores) = ([2, 40, 4], [2, 40, 3]);
    let inputs = vec![
        Some(operand(DType::F32, &x)),
        Some(operand(DType::I64, &img)),
    ];
    let outputs = vec![operand(DType::F32, &boxes), operand(DType::F32, &scores)];
    let (w, cx) = work(&op, inputs, outputs);
    let [Work::Launch(l)] = &w[..] else {
        panic!("{w:?}")
    };
    assert_eq!(l.function, "ops_lib_yolo_box_i64");
    // 2 * 2 * 4 * 5 positions, one thread each.
    assert_eq!(l.grid, [1, 1, 1]);
    assert_eq!(l.args[2], Arg::Ptr(Buf::Derived(0).at()));
    let table = &cx.derived[0];
    assert_eq!(table.shape, [2, 2]);
    assert_eq!(table.data, TensorData::I32(vec![10, 13, 16, 30]));
    let p: YoloBoxParams = pod(&l.args[3]);
    assert_eq!((p.n, p.h, p.w, p.anchors, p.classes), (2, 4, 5, 2, 3));
    assert_eq!((p.downsample_ratio, p.clip_bbox, p.iou_aware), (32, 1, 0));
    assert_eq!((p.scale_x_y, p.conf_thresh), (1.05, 0.01));
}

#[test]
fn yolo_box_with_a_head_of_other_channels_stays_on_the_host() {
    let op = yolo(Some(vec![10, 13]));
    let (x, img, boxes, scores) = ([1, 9, 4, 5], [1, 2], [1, 20, 4], [1, 20, 3]);
    let inputs = vec![
        Some(operand(DType::F32, &x)),
        Some(operand(DType::I32, &img)),
    ];
    let outputs = vec![operand(DType::F32, &boxes), operand(DType::F32, &scores)];
    assert!(refused(&op, inputs, outputs).contains("9 channels"));
}

#[test]
fn yolo_box_anchors_from_a_known_input_are_narrowed() {
    let anchors = Tensor::i64(vec![1, 2], vec![7, 9]);
    let op = yolo(None);
    let (x, img, a, boxes, scores) = ([1, 8, 2, 2], [1, 2], [1, 2], [1, 4, 4], [1, 4, 3]);
    let inputs = vec![
        Some(operand(DType::F32, &x)),
        Some(operand(DType::I32, &img)),
        Some(Operand {
            dtype: DType::I64,
            shape: &a,
            known: Some(&anchors),
        }),
    ];
    let outputs = vec![operand(DType::F32, &boxes), operand(DType::F32, &scores)];
    let (w, cx) = work(&op, inputs, outputs);
    let [Work::Launch(l)] = &w[..] else {
        panic!("{w:?}")
    };
    assert_eq!(l.function, "ops_lib_yolo_box");
    assert_eq!(cx.derived[0].data, TensorData::I32(vec![7, 9]));
}

fn deform(group: usize, offset_group: usize) -> DeformConvAttrs {
    DeformConvAttrs {
        kernel: [3, 3],
        strides: [2, 2],
        dilations: [1, 1],
        pads: [1, 1, 1, 1],
        group,
        offset_group,
    }
}

#[test]
fn deform_conv_samples_then_multiplies_per_image_and_group_then_adds_the_bias() {
    // x [2, 4, 7, 7], weight [6, 2, 3, 3] in 2 groups, stride 2 pad 1: 4x4 outputs.
    let weight = Tensor::f32(vec![6, 2, 3, 3], vec![0.5; 108]);
    let (x, w, off, b, mask, out) = (
        [2, 4, 7, 7],
        [6, 2, 3, 3],
        [2, 36, 4, 4],
        [6],
        [2, 18, 4, 4],
        [2, 6, 4, 4],
    );
    let inputs = vec![
        Some(operand(DType::F32, &x)),
        Some(Operand {
            dtype: DType::F32,
            shape: &w,
            known: Some(&weight),
        }),
        Some(operand(DType::F32, &off)),
        Some(operand(DType::F32, &b)),
        Some(operand(DType::F32, &mask)),
    ];
    let (w, cx) = work(
        &Op::DeformConv(deform(2, 2)),
        inputs,
        vec![operand(DType::F32, &out)],
    );
    // Columns: [2 images, 4 channels * 9 taps, 16 positions].
    assert_eq!(cx.scratch, [2 * 36 * 16 * 4]);
    let Work::Launch(sample) = &w[0] else {
        panic!("{w:?}")
    };
    assert_eq!(sample.function, "ops_lib_deform_sample");
    assert_eq!(sample.args[2], Arg::Ptr(Buf::Input(4).at()));
    assert_eq!(sample.args[3], Arg::I32(2));
    let p: DeformParams = pod(&sample.args[4]);
    assert_eq!((p.out_h, p.out_w, p.offset_groups, p.pad_top), (4, 4, 2, 1));
    // Image 1, groups batched: weight rows [3, 18] of group 0 then 1, columns from row 36.
    let Work::Gemm(g) = &w[2] else {
        panic!("{w:?}")
    };
    let cols = Buf::Scratch(0);
    let want = Gemm {
        m: 3,
        n: 16,
        k: 18,
        batch: 2,
        a: Buf::Input(1).at(),
        a_transposed: false,
        lda: 18,
        stride_a: 54,
        b: At {
            buf: cols,
            bytes: 36 * 16 * 4,
        },
        b_transposed: false,
        ldb: 16,
        stride_b: 18 * 16,
        c: At {
            buf: Buf::Output(0),
            bytes: 6 * 16 * 4,
        },
        ldc: 16,
        stride_c: 3 * 16,
        alpha: 1.0,
        beta: 0.0,
        inputs: super::super::GemmInputs::F32,
    };
    assert_eq!(g, &want);
    let Work::Launch(bias) = &w[3] else {
        panic!("{w:?}")
    };
    assert_eq!(bias.function, "runtime_conv_epilogue");
    assert_eq!(bias.args[1], Arg::Ptr(Buf::Input(3).at()));
    assert_eq!(w.len(), 4);
}

#[test]
fn deform_sample_with_an_offset_of_the_wrong_shape_stays_on_the_host() {
    let (x, off, out) = ([1, 4, 7, 7], [1, 18, 4, 4], [1, 36, 4, 4]);
    let why = refused(
        &Op::DeformSample(deform(1, 2)),
        vec![
            Some(operand(DType::F32, &x)),
            Some(operand(DType::F32, &off)),
        ],
        vec![operand(DType::F32, &out)],
    );
    assert!(why.contains("offset"), "{why}");
}

#[test]
fn grid_sample_other_than_bilinear_with_zeros_stays_on_the_host() {
    let (x, grid, out) = ([1, 2, 5, 5], [1, 3, 3, 2], [1, 2, 3, 3]);
    for (mode, padding) in [
        (GridSampleMode::Nearest, GridSamplePadding::Zeros),
        (GridSampleMode::Linear, GridSamplePadding::Border),
    ] {
        let op = Op::GridSample {
            mode,
            padding,
            align_corners: false,
        };
        let inputs = vec![
            Some(operand(DType::F32, &x)),
            Some(operand(DType::F32, &grid)),
        ];
        refused(&op, inputs, vec![operand(DType::F32, &out)]);
    }
}

#[test]
fn roi_align_takes_either_index_type_and_refuses_half_precision() {
    let op = Op::RoiAlign(RoiAlignAttrs {
        max: false,
        output_height: 2,
        output_width: 3,
        sampling_ratio: 0,
        spatial_scale: 0.25,
        half_pixel: true,
    });
    let (x, rois, batch, out) = ([2, 4, 8, 8], [5, 4], [5], [5, 4, 2, 3]);
    for (dtype, function) in [
        (DType::I32, "ops_lib_roi_align_i32"),
        (DType::I64, "ops_lib_roi_align_i64"),
    ] {
        let inputs = vec![
            Some(operand(DType::F32, &x)),
            Some(operand(DType::F32, &rois)),
            Some(operand(dtype, &batch)),
        ];
        let (w, _) = work(&op, inputs, vec![operand(DType::F32, &out)]);
        let [Work::Launch(l)] = &w[..] else {
            panic!("{w:?}")
        };
        assert_eq!(l.function, function);
        assert_eq!((&l.args[3], &l.args[4]), (&Arg::I32(2), &Arg::I32(5)));
    }
    let inputs = vec![
        Some(operand(DType::F16, &x)),
        Some(operand(DType::F32, &rois)),
        Some(operand(DType::I64, &batch)),
    ];
    refused(&op, inputs, vec![operand(DType::F32, &out)]);
}
