//! The detection kernels against Paddle 2.6's own CPU kernels, on the cases that
//! scripts/ops_lib_refs.py wrote under tests/data/ops_lib/.

mod common;

use common::{assert_close, cases, load_case, tensor_type, view, Case};
use temblor_ir::AttrValue;
use temblor_ops_lib::{LibData, LibOp, LibTensor};

/// Parses the case's op, checks its declared parameters against the ones Paddle's kernel took,
/// runs shape inference and the kernel, and compares every output with Paddle's.
fn check(case: &Case) {
    let name = &case.name;
    assert!(LibOp::known(&case.op), "{name}: {} not known", case.op);
    let op = LibOp::parse(&case.op, &case.attrs).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(op.name(), case.op);

    // Paddle's parameters come first; any after them are temblor's own and optional.
    assert!(
        op.inputs().len() >= case.input_names.len(),
        "{name}: input count"
    );
    for (i, (param, optional)) in op.inputs().iter().enumerate() {
        match case.input_names.get(i) {
            Some(Some(g)) => assert_eq!(param, g, "{name}: input parameter"),
            _ => assert!(optional, "{name}: {param} omitted but required"),
        }
    }
    let outputs: Vec<(String, usize)> = op
        .outputs()
        .iter()
        .map(|(n, c)| (n.to_string(), *c))
        .collect();
    assert_eq!(outputs, case.output_names, "{name}: output parameters");

    let types: Vec<_> = case
        .inputs
        .iter()
        .map(|t| t.as_ref().map(tensor_type))
        .collect();
    let inferred =
        temblor_ops_lib::infer(&op, &types).unwrap_or_else(|e| panic!("{name}: infer: {e}"));
    assert_eq!(
        inferred.len(),
        case.outputs.len(),
        "{name}: inferred output count"
    );
    for (i, (ty, want)) in inferred.iter().zip(&case.outputs).enumerate() {
        assert_eq!(
            ty.dtype,
            tensor_type(want).dtype,
            "{name}: output {i} dtype"
        );
        assert_eq!(ty.shape.rank(), want.dims.len(), "{name}: output {i} rank");
        for (d, &w) in ty.shape.dims().iter().zip(&want.dims) {
            if let Some(k) = d.known() {
                assert_eq!(k, w, "{name}: output {i} inferred shape {}", ty.shape);
            }
        }
    }

    let views: Vec<_> = case.inputs.iter().map(|t| t.as_ref().map(view)).collect();
    let got = temblor_ops_lib::run(&op, &views).unwrap_or_else(|e| panic!("{name}: run: {e}"));
    assert_eq!(got.len(), case.outputs.len(), "{name}: output count");
    for (i, (g, w)) in got.iter().zip(&case.outputs).enumerate() {
        assert_close(name, &format!("output {i}"), g, w);
    }
}

fn check_all(prefix: &str) {
    for name in cases(prefix) {
        check(&load_case(&name));
    }
}

#[test]
fn yolo_box_matches_paddle() {
    check_all("yolo_box_");
}

#[test]
fn multiclass_nms3_matches_paddle() {
    check_all("mnms_");
}

#[test]
fn matrix_nms_matches_paddle() {
    check_all("matrix_nms_");
}

#[test]
fn generate_proposals_v2_matches_paddle() {
    check_all("proposals_");
}

#[test]
fn distribute_fpn_proposals_matches_paddle() {
    check_all("fpn_");
}

/// The reference cases cover what the kernels must get right beyond plain arithmetic.
#[test]
fn reference_cases_cover_suppression_truncation_and_empty_results() {
    let rows = |case: &str| load_case(case).outputs[0].dims[0];
    assert_eq!(rows("mnms_empty"), 0);
    assert_eq!(rows("matrix_nms_empty"), 0);
    // keep_top_k = 12 per image over 2 images.
    assert_eq!(rows("mnms_keep_top_k"), 24);
    // keep_top_k = 15 per image over 2 images.
    assert_eq!(rows("matrix_nms_linear_keep_top_k"), 30);
    // 2 images x 40 boxes x 2 foreground classes, most of them suppressed.
    assert!(rows("mnms_suppress_ties") < 80);
    let none = load_case("yolo_box_none_confident");
    let LibData::F32(scores) = &none.outputs[1].data else {
        panic!("scores are float")
    };
    assert!(scores.iter().all(|&s| s == 0.0));
}

/// Within one image and class, boxes multiclass_nms3 keeps never overlap above the threshold.
#[test]
fn multiclass_nms3_kept_boxes_do_not_overlap() {
    let case = load_case("mnms_suppress_ties");
    let op = LibOp::parse(&case.op, &case.attrs).unwrap();
    let views: Vec<_> = case.inputs.iter().map(|t| t.as_ref().map(view)).collect();
    let out = temblor_ops_lib::run(&op, &views).unwrap();
    let (LibData::F32(rows), LibData::I32(counts)) = (&out[0].data, &out[2].data) else {
        panic!("Out is float, NmsRoisNum int32")
    };
    let mut start = 0;
    for &count in counts {
        let image: Vec<&[f32]> = rows[start * 6..(start + count as usize) * 6]
            .chunks(6)
            .collect();
        for (i, a) in image.iter().enumerate() {
            for b in &image[..i] {
                if a[0] == b[0] {
                    assert!(pixel_iou(&a[2..], &b[2..]) <= 0.3, "{a:?} overlaps {b:?}");
                }
            }
        }
        start += count as usize;
    }
}

fn pixel_iou(a: &[f32], b: &[f32]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
    let area = |r: &[f32]| (r[2] - r[0] + 1.0) * (r[3] - r[1] + 1.0);
    iw * ih / (area(a) + area(b) - iw * ih)
}

/// Dropping a required attribute gives an error that names it.
#[test]
fn missing_attribute_is_named() {
    for (case, attr) in [
        ("yolo_box_clip", "class_num"),
        ("mnms_keep_top_k", "keep_top_k"),
        ("mnms_keep_top_k", "score_threshold"),
        ("matrix_nms_gaussian", "post_threshold"),
        ("proposals_pixel_offset", "pre_nms_topN"),
        ("fpn_three_images", "refer_scale"),
    ] {
        let c = load_case(case);
        let attrs: Vec<(String, AttrValue)> =
            c.attrs.into_iter().filter(|(n, _)| n != attr).collect();
        let err = LibOp::parse(&c.op, &attrs).expect_err(attr);
        assert!(
            err.contains(attr),
            "{case}: error `{err}` does not name {attr}"
        );
    }
}

/// A wrongly typed attribute is named too, and an unknown op type is refused.
#[test]
fn wrong_attribute_and_unknown_op_are_errors() {
    let c = load_case("yolo_box_clip");
    let attrs: Vec<(String, AttrValue)> = c
        .attrs
        .into_iter()
        .map(|(n, v)| match n.as_str() {
            "anchors" => (n, AttrValue::Float(1.0)),
            _ => (n, v),
        })
        .collect();
    let err = LibOp::parse("yolo_box", &attrs).unwrap_err();
    assert!(err.contains("anchors"), "{err}");
    assert!(!LibOp::known("conv2d"));
    assert!(LibOp::parse("conv2d", &[]).is_err());
}

/// Inputs whose extents disagree are errors, not panics.
#[test]
fn mismatched_inputs_are_errors() {
    let c = load_case("mnms_keep_top_k");
    let op = LibOp::parse(&c.op, &c.attrs).unwrap();
    let bboxes = c.inputs[0].as_ref().unwrap();
    let short = LibTensor {
        dims: vec![bboxes.dims[0], bboxes.dims[1] - 1, 4],
        data: match &bboxes.data {
            LibData::F32(v) => LibData::F32(v[..v.len() - 4 * bboxes.dims[0]].to_vec()),
            other => other.clone(),
        },
    };
    let scores = c.inputs[1].as_ref().unwrap();
    let err = temblor_ops_lib::run(&op, &[Some(view(&short)), Some(view(scores))]).unwrap_err();
    assert!(err.contains("BBoxes"), "{err}");
    let err = temblor_ops_lib::run(&op, &[Some(view(&short))]).unwrap_err();
    assert!(err.contains("Scores"), "{err}");
}
