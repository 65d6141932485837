//! Shape rules with symbolic extents, and rois_batch_index (temblor's own op, which no framework
//! provides a reference for).

use temblor_ir::{AttrValue, DType, Dim, Shape, TensorType};
use temblor_ops_lib::{LibData, LibOp, LibSlice, LibView};

fn ty(dtype: DType, dims: Vec<Dim>) -> TensorType {
    TensorType::new(dtype, Shape(dims))
}

#[test]
fn yolo_box_infer_keeps_symbolic_batch() {
    let attrs = vec![
        ("anchors".to_string(), AttrValue::Ints(vec![10, 13, 16, 30])),
        ("class_num".to_string(), AttrValue::Int(80)),
        ("conf_thresh".to_string(), AttrValue::Float(0.01)),
        ("downsample_ratio".to_string(), AttrValue::Int(32)),
    ];
    let op = LibOp::parse("yolo_box", &attrs).unwrap();
    let batch = Dim::Symbol("N".into());
    let x = ty(
        DType::F32,
        vec![
            batch.clone(),
            Dim::Known(170),
            Dim::Known(19),
            Dim::Known(19),
        ],
    );
    let img = ty(DType::I32, vec![batch.clone(), Dim::Known(2)]);
    let out = temblor_ops_lib::infer(&op, &[Some(x.clone()), Some(img.clone())]).unwrap();
    assert_eq!(
        out[0].shape.dims(),
        &[batch.clone(), Dim::Known(2 * 19 * 19), Dim::Known(4)]
    );
    assert_eq!(
        out[1].shape.dims(),
        &[batch.clone(), Dim::Known(2 * 19 * 19), Dim::Known(80)]
    );
    // 170 channels are 2 anchors x (5 + 80); 3 anchors would need 255.
    let wrong = ty(
        DType::F32,
        vec![batch, Dim::Known(255), Dim::Known(19), Dim::Known(19)],
    );
    let err = temblor_ops_lib::infer(&op, &[Some(wrong), Some(img.clone())]).unwrap_err();
    assert!(err.contains("X"), "{err}");

    // Anchors as an [A, 2] input instead of the attribute give the same types; neither is an
    // error that names them.
    let no_attr: Vec<(String, AttrValue)> = attrs[1..].to_vec();
    let explicit = LibOp::parse("yolo_box", &no_attr).unwrap();
    let anchors = ty(DType::I32, vec![Dim::Known(2), Dim::Known(2)]);
    let same = temblor_ops_lib::infer(
        &explicit,
        &[Some(x.clone()), Some(img.clone()), Some(anchors)],
    )
    .unwrap();
    assert_eq!(same, out);
    let err = temblor_ops_lib::infer(&explicit, &[Some(x), Some(img)]).unwrap_err();
    assert!(err.contains("anchors"), "{err}");
}

#[test]
fn distribute_fpn_proposals_outputs_one_tensor_per_level() {
    let attrs: Vec<(String, AttrValue)> = [
        ("min_level", 2),
        ("max_level", 5),
        ("refer_level", 4),
        ("refer_scale", 224),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), AttrValue::Int(v)))
    .collect();
    let op = LibOp::parse("distribute_fpn_proposals", &attrs).unwrap();
    assert_eq!(
        op.outputs(),
        vec![
            ("MultiFpnRois", 4),
            ("MultiLevelRoIsNum", 4),
            ("RestoreIndex", 1)
        ]
    );
    let rois = ty(DType::F32, vec![Dim::Unknown, Dim::Known(4)]);
    let out = temblor_ops_lib::infer(&op, &[Some(rois), None]).unwrap();
    assert_eq!(out.len(), 9);
    assert_eq!(out[8].dtype, DType::I32);
}

#[test]
fn multiclass_nms3_per_roi_form_needs_rois_num() {
    let attrs: Vec<(String, AttrValue)> = vec![
        ("score_threshold".into(), AttrValue::Float(0.05)),
        ("nms_top_k".into(), AttrValue::Int(100)),
        ("keep_top_k".into(), AttrValue::Int(10)),
    ];
    let op = LibOp::parse("multiclass_nms3", &attrs).unwrap();
    let bboxes = ty(DType::F32, vec![Dim::Unknown, Dim::Known(3), Dim::Known(4)]);
    let scores = ty(DType::F32, vec![Dim::Unknown, Dim::Known(3)]);
    let err = temblor_ops_lib::infer(&op, &[Some(bboxes.clone()), Some(scores.clone()), None])
        .unwrap_err();
    assert!(err.contains("RoisNum"), "{err}");
    let num = ty(DType::I32, vec![Dim::Known(2)]);
    let out = temblor_ops_lib::infer(&op, &[Some(bboxes), Some(scores), Some(num)]).unwrap();
    assert_eq!(out[2].shape.dims(), &[Dim::Known(2)]);
}

/// Each image index appears as many times as that image has RoIs, in image order, for either
/// integer width of RoisNum.
#[test]
fn rois_batch_index_repeats_each_image_by_its_count() {
    let op = LibOp::parse("rois_batch_index", &[]).unwrap();
    let counts32 = [3i32, 0, 2, 1];
    let counts64: Vec<i64> = counts32.iter().map(|&c| i64::from(c)).collect();
    let dims = [4usize];
    for data in [LibSlice::I32(&counts32), LibSlice::I64(&counts64)] {
        let out = temblor_ops_lib::run(&op, &[Some(LibView { dims: &dims, data })]).unwrap();
        let LibData::I64(idx) = &out[0].data else {
            panic!("batch index is int64")
        };
        assert_eq!(out[0].dims, vec![6]);
        assert!(idx.windows(2).all(|w| w[0] <= w[1]));
        for (image, &c) in counts64.iter().enumerate() {
            let n = idx.iter().filter(|&&i| i == image as i64).count();
            assert_eq!(n as i64, c);
        }
    }
    let negative = [-1i32];
    let err = temblor_ops_lib::run(
        &op,
        &[Some(LibView {
            dims: &[1],
            data: LibSlice::I32(&negative),
        })],
    )
    .unwrap_err();
    assert!(err.contains("RoisNum"), "{err}");
}
