//! `compile --verify`: real models verify, and a deliberately broken optimized graph is caught
//! with the first diverging layer named.

use temblor_ir::{GraphOutput, Op, UnaryOp};
use temblor_tests::builder::{act, Builder};
use temblor_tests::{output, real_model, shared, temblor};
use temblor_tools::verify::verify;

fn compile_verified(model: &std::path::Path, dims: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pkg");
    let mut cmd = temblor();
    cmd.arg("compile")
        .arg(model)
        .arg("--verify")
        .arg("-o")
        .arg(&out);
    for d in dims {
        cmd.arg("--input").arg(d);
    }
    let (code, stdout, err) = output(&mut cmd);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("verified"), "{stdout}");
    let report = std::fs::read_to_string(out.join("report.json")).unwrap();
    serde_json::from_str(&report).unwrap()
}

/// Every model with weights in ../shared/models: the optimized graph has fewer layers than the
/// parsed one and computes the same function.
#[test]
fn every_model_verifies_with_fewer_layers() {
    let detector = ["image:1x3x320x320", "im_shape:1x2", "scale_factor:1x2"];
    let mut cases: Vec<(std::path::PathBuf, Vec<&str>)> = vec![
        (
            real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx"),
            vec!["x:1x3x192x384"],
        ),
        (
            real_model("ppocrv4_rec_onnx", "ch_PP-OCRv4_rec_infer.onnx"),
            vec!["x:1x3x48x320"],
        ),
        (
            real_model("ppocr_cls_v2_onnx", "ch_ppocr_mobile_v2.0_cls_infer.onnx"),
            vec!["x:1x3x48x192"],
        ),
        (
            real_model("picodet_layout_onnx", "layout_cdla.onnx"),
            vec![],
        ),
        (
            shared().join("models/real/picodet_coco_onnx/model.onnx"),
            vec!["image:1x3x416x416"],
        ),
        (
            real_model("ppocrv4_det_paddle", "inference.pdmodel"),
            vec!["x:1x3x192x384"],
        ),
        (
            real_model("ppocrv4_rec_paddle", "inference.pdmodel"),
            vec!["x:1x3x48x320"],
        ),
        (
            real_model("ppocr_cls_v2_paddle", "inference.pdmodel"),
            vec!["x:1x3x48x192"],
        ),
        (
            real_model("picodet_coco_paddle", "model.pdmodel"),
            vec!["image:1x3x416x416", "scale_factor:1x2"],
        ),
        (
            shared().join("models/paddle/paddle_basic/model.pdmodel"),
            vec!["image:1x3x64x64"],
        ),
    ];
    for name in [
        "yolov3_r18vd_dcn",
        "ppyolo_r18vd_dcn",
        "retinanet_r18_fpn",
        "faster_rcnn_r18_fpn",
        "mask_rcnn_r18_fpn",
    ] {
        cases.push((
            shared()
                .join("models/paddle")
                .join(name)
                .join("model.pdmodel"),
            detector.to_vec(),
        ));
    }
    for (model, dims) in cases {
        let report = compile_verified(&model, &dims);
        assert_eq!(
            report["verification"]["status"],
            "passed",
            "{}",
            model.display()
        );
        let (parse, optimize) = (
            report["views"]["parse"]["layers"].as_u64().unwrap(),
            report["views"]["optimize"]["layers"].as_u64().unwrap(),
        );
        assert!(
            optimize < parse,
            "{}: {parse} -> {optimize}",
            model.display()
        );
    }
}

#[test]
fn verify_without_static_inputs_is_a_usage_error() {
    let det = real_model("ppocrv4_det_onnx", "ch_PP-OCRv4_det_infer.onnx");
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = output(
        temblor()
            .arg("compile")
            .arg(&det)
            .arg("--verify")
            .arg("-o")
            .arg(dir.path().join("pkg")),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("open extents"), "{err}");
}

/// With its output quantized (a QDQ model, where verification allows the larger
/// `QUANTIZED_TOLERANCE`) as without.
#[test]
fn a_broken_rewrite_is_caught_and_named() {
    for quantized in [false, true] {
        let mut b = Builder::new("broken", 5);
        let x = b.node("x", Op::Input { index: 0 }, act(3), &[]);
        b.g.inputs.push(x.node);
        let bn = b.conv_bn("block", x, 3, 4, true);
        let mut y = b.node("relu", Op::Unary(UnaryOp::Relu), act(4), &[bn]);
        if quantized {
            y = b.qdq("out", y, 4, 0.01, 0);
        }
        b.g.outputs = vec![GraphOutput {
            name: "y".into(),
            value: y,
        }];
        let parse = b.g.clone();
        let mut broken = parse.clone();
        // A "rewrite" that replaces the BatchNorm by a Sigmoid of the conv: its output, the
        // same tensor by name, is wrong from there on.
        broken.node_mut(bn.node).op = Op::Unary(UnaryOp::Sigmoid);
        for port in [1, 2, 3, 4] {
            broken.disconnect_input(bn.node, port);
        }
        let err = verify(&parse, &broken).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        let msg = err.to_string();
        assert!(msg.contains("output 'y'"), "{msg}");
        assert!(
            msg.contains("first layer to diverge is node 'block.bn'"),
            "{msg}"
        );
        let ok = verify(&parse, &parse).unwrap();
        assert_eq!(ok.status, temblor_ir::VerifyStatus::Passed);
    }
}
