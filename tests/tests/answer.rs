//! `run --image`: from a photo to an answer. PicoDet COCO, as PaddleDetection exported it and as
//! its ONNX twin, on the shared photos converted to JPEG here: the objects in results.json are
//! those of the stored references (paddle.inference and onnxruntime on the PNGs), and the drawn
//! picture has each box's outline where the JSON puts it.

use serde_json::Value;
use std::path::{Path, PathBuf};
use temblor_tests::detections::{detections, iou, Detection};
use temblor_tests::{output, real_model, shared, temblor};

const PHOTOS: [&str; 3] = ["astronaut", "chelsea", "coffee"];

/// Below this the reference's detections are not compared: a JPEG's few changed pixels may move
/// a guess across any threshold.
const COMPARED_SCORE: f64 = 0.6;

/// The shared PNG photos as JPEGs (quality 95) in `dir`.
fn jpegs(dir: &Path) -> Vec<PathBuf> {
    PHOTOS
        .iter()
        .map(|name| {
            let png = image::open(shared().join(format!("images/{name}.png"))).unwrap();
            let path = dir.join(format!("{name}.jpg"));
            let file = std::fs::File::create(&path).unwrap();
            let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(file, 95);
            encoder.encode_image(&png.to_rgb8()).unwrap();
            path
        })
        .collect()
}

fn compile(model: &Path, out: &Path, extra: &[&str]) {
    let (code, _, err) = output(
        temblor()
            .arg("compile")
            .arg(model)
            .arg("-o")
            .arg(out)
            .args(["--no-measure", "--no-verify"])
            .args(extra),
    );
    assert_eq!(code, 0, "compile failed: {err}");
}

/// `run --image` of every photo; results.json.
fn run_images(pkg: &Path, photos: &[PathBuf], out: &Path) -> Value {
    let mut cmd = temblor();
    cmd.arg("run").arg(pkg).arg("-o").arg(out);
    for p in photos {
        cmd.arg("--image").arg(p);
    }
    let (code, stdout, err) = output(&mut cmd);
    assert_eq!(code, 0, "run --image failed: {err}");
    assert!(stdout.contains("results.json"), "{stdout}");
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

fn object_row(o: &Value) -> Detection {
    let b: Vec<f64> = o["box"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    [
        o["class"].as_f64().unwrap(),
        o["score"].as_f64().unwrap(),
        b[0],
        b[1],
        b[2],
        b[3],
    ]
}

/// Each reference detection scoring at least [`COMPARED_SCORE`] is in the answer: same class,
/// IoU at least 0.9, score within 0.03.
fn check_against_reference(results: &Value, refs: &Path) {
    for (i, name) in PHOTOS.iter().enumerate() {
        let image = &results["images"][i];
        assert!(image["image"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{name}.jpg")));
        let ours: Vec<Detection> = image["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(object_row)
            .collect();
        let reference = detections(&refs.join(name).join("ref_multiclass_nms3_0.tmp_0.npy"));
        let compared: Vec<&Detection> = reference
            .iter()
            .filter(|r| r[1] >= COMPARED_SCORE)
            .collect();
        assert!(
            !compared.is_empty(),
            "{name}: the reference finds something"
        );
        for r in compared {
            let found = ours
                .iter()
                .any(|o| o[0] == r[0] && iou(o, r) >= 0.9 && (o[1] - r[1]).abs() <= 0.03);
            assert!(found, "{name}: reference {r:?} not among {ours:?}");
        }
        assert!(
            ours.iter().all(|o| o[1] >= 0.5),
            "{name}: the default min score is 0.5"
        );
    }
}

/// The top object of `image` by label, with its score.
fn labelled(image: &Value) -> Vec<(String, f64)> {
    image["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["label"].as_str().unwrap().to_string(),
                o["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// At least half of each box's outline pixels (some are covered by other boxes and their
/// label tabs) have its class's colour in the drawn picture.
fn check_drawn(results: &Value, out: &Path) {
    for (i, name) in PHOTOS.iter().enumerate() {
        let picture = image::open(out.join(format!("{name}.png")))
            .unwrap()
            .to_rgb8();
        let image = &results["images"][i];
        assert_eq!(u64::from(picture.width()), image["width"].as_u64().unwrap());
        assert_eq!(
            u64::from(picture.height()),
            image["height"].as_u64().unwrap()
        );
        for o in image["objects"].as_array().unwrap() {
            let [class, _, x1, y1, x2, y2] = object_row(o);
            let colour = temblor_postprocess::draw::colour(class as i64);
            let (w, h) = (picture.width() as f64, picture.height() as f64);
            let [x1, y1] = [x1.round().max(0.0), y1.round().max(0.0)].map(|v| v as u32);
            let [x2, y2] = [x2.round().min(w), y2.round().min(h)].map(|v| v as u32 - 1);
            let mut edge = Vec::new();
            for x in x1..=x2 {
                edge.extend([(x, y1), (x, y2)]);
            }
            for y in y1..=y2 {
                edge.extend([(x1, y), (x2, y)]);
            }
            let coloured = edge
                .iter()
                .filter(|&&(x, y)| picture.get_pixel(x, y).0 == colour)
                .count();
            assert!(
                coloured * 2 >= edge.len(),
                "{name}: only {coloured} of {} outline pixels of {o} are drawn",
                edge.len()
            );
        }
    }
}

#[test]
fn picodet_paddle_finds_the_objects_of_the_reference_and_draws_them() {
    let dir = tempfile::tempdir().unwrap();
    let photos = jpegs(dir.path());
    let pkg = dir.path().join("picodet.temblor");
    compile(
        &real_model("picodet_coco_paddle", "model.pdmodel"),
        &pkg,
        &[],
    );
    assert!(
        pkg.join("postprocess.yml").is_file(),
        "the kind is recorded"
    );
    let out = dir.path().join("out");
    let results = run_images(&pkg, &photos, &out);
    check_against_reference(&results, &shared().join("models/real/picodet_coco_paddle"));
    check_drawn(&results, &out);

    let astronaut = labelled(&results["images"][0]);
    assert!(
        astronaut.iter().any(|(l, s)| l == "person" && *s >= 0.95),
        "{astronaut:?}"
    );
    let chelsea = labelled(&results["images"][1]);
    assert!(chelsea.iter().any(|(l, _)| l == "cat"), "{chelsea:?}");
    let coffee = labelled(&results["images"][2]);
    for label in ["cup", "dining table"] {
        assert!(
            coffee.iter().any(|(l, _)| l == label),
            "{label} in {coffee:?}"
        );
    }
}

#[test]
fn the_onnx_twin_answers_as_the_paddle_model_does() {
    let dir = tempfile::tempdir().unwrap();
    let photos = jpegs(dir.path());
    let pkg = dir.path().join("twin.temblor");
    let infer_cfg = real_model("picodet_coco_paddle", "infer_cfg.yml");
    compile(
        &shared().join("models/real/picodet_coco_onnx/model.onnx"),
        &pkg,
        &["--preprocess", infer_cfg.to_str().unwrap()],
    );
    let out = dir.path().join("out");
    let results = run_images(&pkg, &photos, &out);
    check_against_reference(&results, &shared().join("models/real/picodet_coco_onnx"));
    check_drawn(&results, &out);
    assert_eq!(results["images"][0]["objects"][0]["label"], "person");
}

/// PicoDet as PaddleX / PaddleDetection 3 hand it over: the PIR `inference.json`, its
/// parameters and an `inference.yml` (infer_cfg.yml's keys beside PaddleX's own sections). The
/// package reads the preprocessing and labels from it and answers as the legacy export does.
#[test]
fn the_paddle3_export_with_its_inference_yml_answers_as_the_legacy_model_does() {
    let dir = tempfile::tempdir().unwrap();
    let photos = jpegs(dir.path());
    let model = dir.path().join("PicoDet-S_infer");
    std::fs::create_dir(&model).unwrap();
    std::os::unix::fs::symlink(
        shared().join("models/pir/picodet_coco_paddle/inference.json"),
        model.join("inference.json"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        real_model("picodet_coco_paddle", "model.pdiparams"),
        model.join("inference.pdiparams"),
    )
    .unwrap();
    let infer_cfg =
        std::fs::read_to_string(real_model("picodet_coco_paddle", "infer_cfg.yml")).unwrap();
    std::fs::write(
        model.join("inference.yml"),
        format!("Global:\n  model_name: PicoDet-S\nHpi:\n  backend_configs: {{}}\n{infer_cfg}"),
    )
    .unwrap();
    let pkg = dir.path().join("picodet3.temblor");
    compile(&model, &pkg, &[]);
    let out = dir.path().join("out");
    let results = run_images(&pkg, &photos, &out);
    check_against_reference(&results, &shared().join("models/real/picodet_coco_paddle"));
    assert_eq!(results["images"][0]["objects"][0]["label"], "person");
}

#[test]
fn a_photo_that_is_not_one_is_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, b"not a photo\n").unwrap();
    for bad in [&empty, &text] {
        let (code, _, err) = output(
            temblor()
                .arg("run")
                .arg(real_model("picodet_coco_paddle", "model.pdmodel"))
                .arg("--image")
                .arg(bad)
                .arg("-o")
                .arg(dir.path().join("out")),
        );
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(bad.to_str().unwrap()), "{err}");
        assert!(
            !dir.path().join("out/results.json").exists(),
            "no results for a failed run"
        );
    }
}

/// Masks as results.json holds them are the RLE pycocotools writes for the same pixels, for
/// masks touching the border, the empty mask and irregular ones.
#[test]
fn masks_are_encoded_as_pycocotools_encodes_them() {
    use temblor_postprocess::{Mask, Rle};
    let (h, w) = (37, 53);
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut planes: Vec<Vec<bool>> = vec![vec![false; h * w], vec![true; h * w]];
    for _ in 0..4 {
        let (y0, x0) = (next() % h, next() % w);
        let (y1, x1) = (y0 + next() % (h - y0) + 1, x0 + next() % (w - x0) + 1);
        let mut p = vec![false; h * w];
        for y in y0..y1 {
            for x in x0..x1 {
                p[y * w + x] = next() % 4 != 0;
            }
        }
        planes.push(p);
    }
    let dir = tempfile::tempdir().unwrap();
    let flat: Vec<u8> = planes.iter().flatten().map(|&b| u8::from(b)).collect();
    let tensor = temblor_runtime::Tensor {
        shape: vec![planes.len(), h, w],
        data: temblor_runtime::TensorData::U8(flat),
    };
    temblor_tools::npy::write(&dir.path().join("masks.npy"), &tensor).unwrap();
    let script = "import sys, json, numpy as np\n\
                  from pycocotools import mask\n\
                  m = np.load(sys.argv[1])\n\
                  print(json.dumps([mask.encode(np.asfortranarray(p))['counts'].decode() for p in m]))";
    let (code, out, err) = output(
        std::process::Command::new(temblor_tests::python())
            .args(["-c", script])
            .arg(dir.path().join("masks.npy")),
    );
    assert_eq!(code, 0, "pycocotools: {err}");
    let expected: Vec<String> = serde_json::from_str(&out).unwrap();
    for (plane, counts) in planes.iter().zip(expected) {
        let rle = Rle::of_mask(&Mask::tight((h, w), plane));
        assert_eq!(rle.size, [h, w]);
        assert_eq!(rle.counts, counts);
    }
}

/// The generated Mask R-CNN's preprocessing (its meta.yml: cv2 cubic resize to 320x320,
/// ImageNet mean and std).
const MASK_RCNN_PREPROCESS: &str = "resize:\n  size: [320, 320]\n  interpolation: cubic\n\
    mean: [0.485, 0.456, 0.406]\nstd: [0.229, 0.224, 0.225]\n";

/// Each object's mask decoded from results.json (pycocotools), as row-major 0/1 planes.
fn decoded_masks(results: &Path) -> Vec<Vec<u8>> {
    let script = "import sys, json\nfrom pycocotools import mask\n\
                  r = json.load(open(sys.argv[1]))\n\
                  print(json.dumps([mask.decode({'size': o['mask']['size'], \
                  'counts': o['mask']['counts'].encode()}).flatten().tolist() \
                  for o in r['images'][0]['objects']]))";
    let (code, out, err) = output(
        std::process::Command::new(temblor_tests::python())
            .args(["-c", script])
            .arg(results),
    );
    assert_eq!(code, 0, "pycocotools: {err}");
    serde_json::from_str(&out).unwrap()
}

/// `--raw-masks` leaves pasting to `run --image`, in each box's region: the masks are those
/// the graph pastes at the photo's size (at most 1% of their pixels differ).
#[test]
fn raw_masks_pasted_per_box_are_the_graphs_pasted_masks() {
    let dir = tempfile::tempdir().unwrap();
    let model = shared().join("models/paddle/mask_rcnn_r18_fpn/model.pdmodel");
    let preprocess = dir.path().join("pre.yml");
    std::fs::write(&preprocess, MASK_RCNN_PREPROCESS).unwrap();
    let photo = shared().join("images/chelsea.png");
    let mut answers = Vec::new();
    for (form, extra) in [("pasted", &[][..]), ("raw", &["--raw-masks"][..])] {
        let pkg = dir.path().join(format!("{form}.temblor"));
        compile(
            &model,
            &pkg,
            &[&["--preprocess", preprocess.to_str().unwrap()], extra].concat(),
        );
        let out = dir.path().join(form);
        let (code, _, err) = output(
            temblor()
                .arg("run")
                .arg(&pkg)
                .arg("--image")
                .arg(&photo)
                .args(["--min-score", "0"])
                .arg("-o")
                .arg(&out),
        );
        assert_eq!(code, 0, "{form}: {err}");
        let results = out.join("results.json");
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
        let boxes: Vec<Detection> = json["images"][0]["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(object_row)
            .collect();
        answers.push((boxes, decoded_masks(&results)));
    }
    let (pasted_boxes, pasted) = &answers[0];
    let (raw_boxes, raw) = &answers[1];
    assert!(!pasted.is_empty(), "the model finds objects");
    assert_eq!(pasted_boxes, raw_boxes, "cutting the paste changes no box");
    let (mut differ, mut covered) = (0, 0);
    for (a, b) in pasted.iter().zip(raw) {
        differ += a.iter().zip(b).filter(|(x, y)| x != y).count();
        covered += a
            .iter()
            .zip(b)
            .filter(|(x, y)| **x != 0 || **y != 0)
            .count();
    }
    assert!(covered > 0, "the masks cover something");
    assert!(
        differ * 100 <= covered,
        "{differ} of the {covered} mask pixels differ"
    );
}

#[test]
fn raw_masks_of_a_model_without_masks_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = output(
        temblor()
            .arg("compile")
            .arg(real_model("picodet_coco_paddle", "model.pdmodel"))
            .arg("--raw-masks")
            .arg("-o")
            .arg(dir.path().join("p.temblor")),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--raw-masks"), "{err}");
}
