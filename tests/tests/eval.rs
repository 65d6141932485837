//! `temblor eval` and its parts: COCO AP checked against pycocotools (scripts/coco_ref.py) on
//! the same ground truth and detections, the preprocessing read from PaddleDetection's
//! infer_cfg.yml checked against the inputs Paddle's reference run was given, and bad input.

use serde_json::Value;
use std::path::{Path, PathBuf};
use temblor_tests::{output, python, read_f32, real_model, root, shared, temblor, Rng};
use temblor_tools::eval::coco_json::{write_dump, Category, DumpImage};
use temblor_tools::eval::{self, Detection, GtBox, Metrics};
use temblor_tools::preprocess_config::PreprocessConfig;

const TOL: f64 = 1e-4;

fn picodet_paddle() -> PathBuf {
    real_model("picodet_coco_paddle", "model.pdmodel")
}

fn picodet_onnx() -> PathBuf {
    shared().join("models/real/picodet_coco_onnx/model.onnx")
}

/// pycocotools' numbers for a dump written by `eval --dump` or [`write_dump`].
fn pycocotools(dump: &Path) -> Value {
    let (code, out, err) = output(
        std::process::Command::new(python())
            .arg(root().join("scripts/coco_ref.py"))
            .arg(dump),
    );
    assert_eq!(code, 0, "coco_ref.py failed: {err}");
    serde_json::from_str(&out).expect("coco_ref.py prints JSON")
}

fn close(ours: f64, theirs: &Value, what: &str) {
    let theirs = theirs
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number"));
    assert!(
        (ours - theirs).abs() <= TOL,
        "{what}: temblor {ours} vs pycocotools {theirs}"
    );
}

/// Every number of `ours` within [`TOL`] of pycocotools', over the same classes.
fn assert_agrees(ours: &Metrics, theirs: &Value) {
    close(ours.ap, &theirs["ap"], "AP");
    close(ours.ap50, &theirs["ap50"], "AP50");
    close(ours.ap75, &theirs["ap75"], "AP75");
    let classes = theirs["per_class"].as_array().expect("per_class");
    let ours_ids: Vec<i64> = ours.per_class.iter().map(|c| c.class).collect();
    let theirs_ids: Vec<i64> = classes
        .iter()
        .map(|c| c["class"].as_i64().unwrap())
        .collect();
    assert_eq!(ours_ids, theirs_ids, "classes with ground truth");
    for (c, t) in ours.per_class.iter().zip(classes) {
        close(c.ap, &t["ap"], &format!("class {} AP", c.class));
        close(c.ap50, &t["ap50"], &format!("class {} AP50", c.class));
        close(c.ap75, &t["ap75"], &format!("class {} AP75", c.class));
    }
}

fn metrics_from_json(v: &Value) -> Metrics {
    let f = |v: &Value| v.as_f64().expect("number");
    Metrics {
        ap: f(&v["ap"]),
        ap50: f(&v["ap50"]),
        ap75: f(&v["ap75"]),
        per_class: v["per_class"]
            .as_array()
            .expect("per_class")
            .iter()
            .map(|c| eval::ClassAp {
                class: c["class"].as_i64().expect("class"),
                name: c["name"].as_str().map(str::to_string),
                ap: f(&c["ap"]),
                ap50: f(&c["ap50"]),
                ap75: f(&c["ap75"]),
                ground_truth: c["ground_truth"].as_u64().unwrap_or(0) as usize,
                detections: c["detections"].as_u64().unwrap_or(0) as usize,
            })
            .collect(),
    }
}

/// The ONNX twin fed a 320x320 picture padded to its 416x416 input, scored against the Paddle
/// program at its own 416x416 preprocessing: a real loss of agreement, measured by temblor and
/// by pycocotools on the same dump.
#[test]
fn eval_of_a_downscaled_picodet_matches_pycocotools() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("picodet_320.yml");
    std::fs::write(
        &config,
        "resize: {size: [320, 320], interpolation: cubic}\n\
         pad: {size: [416, 416]}\n\
         mean: [0.485, 0.456, 0.406]\n\
         std: [0.229, 0.224, 0.225]\n",
    )
    .unwrap();
    let dump = dir.path().join("dump.json");
    let (code, out, err) = output(
        temblor()
            .arg("eval")
            .arg(picodet_onnx())
            .arg("--images")
            .arg(shared().join("images"))
            .arg("--preprocess")
            .arg(&config)
            .arg("--reference")
            .arg(picodet_paddle())
            .args(["--min-score", "0.3", "--json", "--dump"])
            .arg(&dump),
    );
    assert_eq!(code, 0, "eval failed: {err}");
    let report: Value = serde_json::from_str(&out).expect("--json prints JSON");
    let images = report["images"].as_array().expect("images");
    assert_eq!(
        images.len(),
        8,
        "every PNG of the shared images is evaluated"
    );
    let gt_boxes: u64 = images
        .iter()
        .map(|i| i["ground_truth"].as_u64().unwrap())
        .sum();
    assert!(
        gt_boxes >= 5,
        "only {gt_boxes} reference boxes: too few to measure with"
    );
    assert_eq!(
        report["reference"]["preprocess"].as_str(),
        Some(
            real_model("picodet_coco_paddle", "infer_cfg.yml")
                .to_str()
                .unwrap()
        ),
        "the reference is preprocessed with the infer_cfg.yml beside it"
    );
    let ours = metrics_from_json(&report);
    assert!(
        ours.ap > 0.2 && ours.ap < 0.95,
        "AP {} should show a real but partial agreement",
        ours.ap
    );
    assert!(ours.per_class.len() >= 3, "several classes are scored");
    assert!(
        ours.per_class.iter().any(|c| c.ap < 1.0 - TOL),
        "some class loses AP at the lower resolution"
    );
    assert_agrees(&ours, &pycocotools(&dump));
}

/// `--gt`: COCO ground truth whose category ids skip numbers (as COCO's do) and whose image ids
/// are not positions, made from the downscaled twin's confident detections; the Paddle program
/// (labels from its infer_cfg.yml) scored against it, with one box marked crowd.
#[test]
fn eval_against_coco_ground_truth_matches_pycocotools() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("picodet_320.yml");
    std::fs::write(
        &config,
        "resize: {size: [320, 320], interpolation: linear}\n\
         pad: {size: [416, 416]}\n\
         mean: [0.485, 0.456, 0.406]\n\
         std: [0.229, 0.224, 0.225]\n",
    )
    .unwrap();
    let first = dir.path().join("first.json");
    let (code, _, err) = output(
        temblor()
            .arg("eval")
            .arg(picodet_onnx())
            .arg("--images")
            .arg(shared().join("images"))
            .arg("--preprocess")
            .arg(&config)
            .arg("--reference")
            .arg(picodet_paddle())
            .arg("--dump")
            .arg(&first),
    );
    assert_eq!(code, 0, "eval failed: {err}");
    let first: Value = serde_json::from_str(&std::fs::read_to_string(&first).unwrap()).unwrap();
    let labels = PreprocessConfig::load(&real_model("picodet_coco_paddle", "infer_cfg.yml"))
        .unwrap()
        .labels;
    let coco_id = |class: &Value| 2 * class.as_i64().unwrap() + 1;
    let mut annotations: Vec<Value> = first["detections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["score"].as_f64().unwrap() >= 0.3)
        .enumerate()
        .map(|(i, d)| {
            serde_json::json!({
                "id": i + 1,
                "image_id": d["image_id"].as_i64().unwrap() * 10,
                "category_id": coco_id(&d["category_id"]),
                "bbox": d["bbox"],
                "area": d["bbox"][2].as_f64().unwrap() * d["bbox"][3].as_f64().unwrap(),
                "iscrowd": 0,
            })
        })
        .collect();
    assert!(
        annotations.len() >= 5,
        "{} ground truth boxes",
        annotations.len()
    );
    annotations[0]["iscrowd"] = 1.into();
    let images: Vec<Value> = first["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| serde_json::json!({"id": i["id"].as_i64().unwrap() * 10, "file_name": i["file_name"]}))
        .collect();
    let categories: Vec<Value> = (0..labels.len() as i64)
        .map(|c| serde_json::json!({"id": 2 * c + 1, "name": labels[c as usize]}))
        .collect();
    let gt = dir.path().join("gt.json");
    let gt_doc =
        serde_json::json!({"images": images, "annotations": annotations, "categories": categories});
    std::fs::write(&gt, gt_doc.to_string()).unwrap();

    let dump = dir.path().join("dump.json");
    let (code, out, err) = output(
        temblor()
            .arg("eval")
            .arg(picodet_paddle())
            .arg("--images")
            .arg(shared().join("images"))
            .arg("--gt")
            .arg(&gt)
            .arg("--json")
            .arg("--dump")
            .arg(&dump),
    );
    assert_eq!(code, 0, "eval --gt failed: {err}");
    let ours = metrics_from_json(&serde_json::from_str(&out).unwrap());
    assert!(ours.ap > 0.2 && ours.ap < 0.95, "AP {}", ours.ap);
    assert!(
        ours.per_class
            .iter()
            .all(|c| c.class % 2 == 1 && c.name.is_some()),
        "classes are the ground truth's category ids, named"
    );
    assert_agrees(&ours, &pycocotools(&dump));
}

fn det(class: i64, score: f32, bbox: [f32; 4]) -> Detection {
    Detection { class, score, bbox }
}

fn gt(class: i64, bbox: [f64; 4], crowd: bool) -> GtBox {
    GtBox {
        class,
        bbox,
        area: bbox[2] * bbox[3],
        crowd,
    }
}

fn dump_of(dir: &Path, truth: &[Vec<GtBox>], dets: &[Vec<Detection>]) -> PathBuf {
    let images: Vec<DumpImage> = (0..truth.len())
        .map(|i| DumpImage {
            id: i as i64 + 1,
            file_name: format!("{i}.png"),
            size: (480, 640),
        })
        .collect();
    let categories = (0..4)
        .map(|id| Category {
            id,
            name: format!("c{id}"),
        })
        .collect();
    let path = dir.join("case.json");
    write_dump(&path, &images, truth, dets, categories).unwrap();
    path
}

/// Crowd boxes, a detection between two boxes, tied scores, a class with detections and no
/// ground truth, an image with no detections, and one image with more than 100 detections (the
/// cut): temblor's numbers against pycocotools' on the same boxes.
#[test]
fn evaluate_matches_pycocotools_on_a_hand_written_case() {
    let truth = vec![
        vec![
            gt(1, [10.0, 10.0, 50.0, 40.0], false),
            gt(1, [40.0, 12.0, 50.0, 40.0], false),
            gt(1, [200.0, 200.0, 100.0, 100.0], true),
            gt(2, [300.0, 50.0, 20.0, 30.0], false),
        ],
        vec![gt(2, [0.0, 0.0, 30.0, 30.0], false)],
        vec![gt(1, [100.0, 100.0, 80.0, 60.0], false)],
    ];
    let mut dets = vec![
        vec![
            det(1, 0.9, [12.0, 11.0, 60.0, 50.0]),
            det(1, 0.9, [38.0, 12.0, 91.0, 53.0]),
            det(1, 0.8, [25.0, 11.0, 75.0, 51.0]),
            det(1, 0.7, [210.0, 210.0, 250.0, 250.0]),
            det(1, 0.6, [220.0, 190.0, 290.0, 260.0]),
            det(2, 0.5, [301.0, 52.0, 318.0, 78.0]),
            det(3, 0.95, [0.0, 0.0, 10.0, 10.0]),
        ],
        Vec::new(),
        vec![det(1, 0.3, [102.0, 98.0, 178.0, 162.0])],
    ];
    let mut rng = Rng(7);
    let unit = |rng: &mut Rng| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
    for _ in 0..120 {
        let (x, y) = (90.0 + 20.0 * unit(&mut rng), 90.0 + 20.0 * unit(&mut rng));
        let (w, h) = (60.0 + 30.0 * unit(&mut rng), 50.0 + 20.0 * unit(&mut rng));
        dets[2].push(det(1, unit(&mut rng), [x, y, x + w, y + h]));
    }
    let dir = tempfile::tempdir().unwrap();
    let ours = eval::evaluate(&truth, &dets);
    assert!(ours.ap > 0.0 && ours.ap < 1.0, "AP {}", ours.ap);
    assert_agrees(&ours, &pycocotools(&dump_of(dir.path(), &truth, &dets)));

    // agreement: the first list's confident detections are the truth for the second.
    let min_score = 0.5;
    let reference = dets.clone();
    let candidate: Vec<Vec<Detection>> = dets
        .iter()
        .map(|d| {
            d.iter()
                .map(|d| Detection {
                    bbox: d.bbox.map(|v| v * 1.03),
                    ..d.clone()
                })
                .collect()
        })
        .collect();
    let ours = eval::agreement(&reference, &candidate, min_score);
    let truth = eval::reference_truth(&reference, min_score);
    assert!(ours.ap > 0.0 && ours.ap < 1.0, "agreement AP {}", ours.ap);
    assert_agrees(
        &ours,
        &pycocotools(&dump_of(dir.path(), &truth, &candidate)),
    );
}

/// The infer_cfg.yml beside the Paddle model, applied by temblor, against the inputs the
/// reference run gave Paddle (OpenCV's bicubic resize, in 8-bit fixed point, against temblor's
/// in float: one 8-bit level apart at most, and rarely).
#[test]
fn infer_cfg_preprocessing_matches_the_reference_inputs() {
    let cfg = PreprocessConfig::beside(&picodet_paddle()).expect("infer_cfg.yml beside the model");
    let config = PreprocessConfig::load(&cfg).unwrap();
    assert_eq!(config.labels.len(), 80, "COCO's label list");
    let graph = temblor_pipeline::import(&picodet_paddle(), &[]).unwrap();
    let refs = shared().join("models/real/picodet_coco_onnx");
    for case in ["astronaut", "chelsea", "coffee"] {
        let image = shared().join(format!("images/{case}.png"));
        let prepared = config.inputs(&image, &graph).unwrap();
        for (name, tensor) in &prepared.inputs {
            let (shape, want) = read_f32(&refs.join(case).join(format!("input_{name}.npy")));
            assert_eq!(tensor.shape, shape, "{case} {name}: shape");
            let got = tensor.as_f32().unwrap();
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let mean = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>()
                / got.len() as f32;
            // One 8-bit level is 1 / (255 * std) in these units: 0.0175 for the smallest std here.
            assert!(worst <= 0.0176, "{case} {name}: largest difference {worst}");
            assert!(mean <= 1e-4, "{case} {name}: mean difference {mean}");
        }
    }
}

#[test]
fn the_key_follows_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        PreprocessConfig::load(&p).unwrap()
    };
    let a = write("a.yml", "resize: {size: [320, 320]}\nlabels: [cat]\n");
    let b = write("b.yml", "labels: [dog]\nresize:\n  size: [320, 320]\n");
    let c = write(
        "c.yml",
        "resize: {size: [320, 320], interpolation: cubic}\n",
    );
    assert_eq!(
        a.key(),
        b.key(),
        "labels and spelling do not change the tensors"
    );
    assert_ne!(a.key(), c.key(), "the interpolation does");
}

fn eval_cli(args: &[&str]) -> (i32, String) {
    let (code, _, err) = output(temblor().arg("eval").args(args));
    (code, err)
}

#[test]
fn bad_input_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = picodet_onnx();
    let onnx = onnx.to_str().unwrap();
    let images = shared().join("images");
    let images = images.to_str().unwrap();
    let cfg = real_model("picodet_coco_paddle", "infer_cfg.yml");
    let cfg = cfg.to_str().unwrap();

    let missing = dir.path().join("nowhere");
    let (code, err) = eval_cli(&[
        onnx,
        "--images",
        missing.to_str().unwrap(),
        "--preprocess",
        cfg,
        "--gt",
        "x.json",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nowhere"), "names the directory: {err}");

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, err) = eval_cli(&[
        onnx,
        "--images",
        empty.to_str().unwrap(),
        "--preprocess",
        cfg,
        "--gt",
        "x.json",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no images"), "{err}");

    let (code, err) = eval_cli(&[onnx, "--images", images, "--reference", onnx]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--preprocess"),
        "says how to give the preprocessing: {err}"
    );

    for (name, text, field) in [
        (
            "unknown.yml",
            "resize: {size: [320, 320], keep_ration: true}\n",
            "keep_ration",
        ),
        ("zero_std.yml", "std: [0.0, 1.0, 1.0]\n", "std"),
        ("pad.yml", "pad: {size: [416, 416], stride: 32}\n", "pad"),
        (
            "paddle.yml",
            "Preprocess:\n- type: WarpAffine\n",
            "WarpAffine",
        ),
        ("broken.yml", "resize: [\n", "broken.yml"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let (code, err) = eval_cli(&[
            onnx,
            "--images",
            images,
            "--preprocess",
            path.to_str().unwrap(),
            "--reference",
            onnx,
        ]);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(
            err.contains(name) && err.contains(field),
            "{name}: names the file and {field}: {err}"
        );
    }
}
