//! Ultralytics YOLO decoding (`temblor_postprocess::yolo`) on two trained zoo models run by
//! temblor on real photos, against the same decode written in numpy from Ultralytics' code
//! (`non_max_suppression`, `process_mask`; torchvision's NMS written out) on the same raw
//! output tensors. The labels come from the models' own ONNX metadata.

use std::path::Path;
use std::process::Command;
use temblor_pipeline::{Options, VerifyMode};
use temblor_postprocess::{metadata, yolo, Geometry, Kind, Object};
use temblor_runtime::{prepare, Device, PrepareOptions};
use temblor_tests::{output, python, read_numbers, real_model, shared};
use temblor_tools::preprocess_config::defaults;

/// Ultralytics' defaults.
const IOU: f32 = 0.7;
const MAX_DETECTIONS: usize = 300;

/// The reference: argv is the directory holding pred.npy (and protos.npy), min_score, iou,
/// max_det, the input's H and W, the photo's H and W, the resize scale (y, x) and the resized
/// H and W. Prints the objects as JSON and writes their masks at the photo's size to masks.npy.
const REFERENCE: &str = r#"
import json, os, sys
import numpy as np
d = sys.argv[1]
conf, iou_t = np.float32(sys.argv[2]), np.float32(sys.argv[3])
max_det, ih, iw, h0, w0 = (int(v) for v in sys.argv[4:9])
sy, sx = np.float32(sys.argv[9]), np.float32(sys.argv[10])
rh, rw = int(sys.argv[11]), int(sys.argv[12])
pred = np.load(os.path.join(d, 'pred.npy'))[0]
pp = os.path.join(d, 'protos.npy')
protos = np.load(pp)[0] if os.path.exists(pp) else None
nm = 0 if protos is None else protos.shape[0]
nc = pred.shape[0] - 4 - nm

# non_max_suppression: xywh2xyxy, best class only, conf > conf_thres, max_nms, class offsets.
x = pred.T
xy, wh = x[:, :2], x[:, 2:4] / np.float32(2)
box = np.concatenate([xy - wh, xy + wh], 1)
cls = x[:, 4:4 + nc]
score, j = cls.max(1), cls.argmax(1)
keep = score > conf
box, score, j, coef = box[keep], score[keep], j[keep], x[keep, 4 + nc:]
order = np.argsort(-score, kind='stable')[:30000]
box, score, j, coef = box[order], score[order], j[order], coef[order]
b = box + (j.astype(np.float32) * np.float32(7680))[:, None]
area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
gone = np.zeros(len(b), bool)
kept = []
for i in range(len(b)):  # torchvision.ops.nms
    if gone[i]:
        continue
    kept.append(i)
    o = b[i + 1:]
    w = np.maximum(np.float32(0), np.minimum(b[i, 2], o[:, 2]) - np.maximum(b[i, 0], o[:, 0]))
    h = np.maximum(np.float32(0), np.minimum(b[i, 3], o[:, 3]) - np.maximum(b[i, 1], o[:, 1]))
    inter = w * h
    gone[i + 1:] |= inter / (area[i] + area[i + 1:] - inter) > iou_t
kept = np.array(kept[:max_det], dtype=np.int64)
box, score, j, coef = box[kept], score[kept], j[kept], coef[kept]

# scale_boxes with padding only at the bottom and right: divide by the gain, clip.
photo = box.copy()
photo[:, [0, 2]] = np.clip(box[:, [0, 2]] / sx, 0, w0)
photo[:, [1, 3]] = np.clip(box[:, [1, 3]] / sy, 0, h0)
print(json.dumps([{'class': int(c), 'score': float(s), 'box': [float(v) for v in p]}
                  for c, s, p in zip(j, score, photo)]))

if protos is not None:
    # process_mask (8.3): logits, crop_mask at the prototypes' size, bilinear upsample, > 0.
    mh, mw = protos.shape[1:]
    m = (coef @ protos.reshape(nm, -1)).reshape(-1, mh, mw)
    db = box * np.array([mw / iw, mh / ih, mw / iw, mh / ih], np.float32)
    r = np.arange(mw, dtype=np.float32)[None, None, :]
    c = np.arange(mh, dtype=np.float32)[None, :, None]
    x1, y1, x2, y2 = (db[:, k, None, None] for k in range(4))
    m = m * ((r >= x1) & (r < x2) & (c >= y1) & (c < y2))
    def taps(n_in, n_out):  # F.interpolate(mode='bilinear', align_corners=False)
        scale = np.float32(n_in) / np.float32(n_out)
        src = np.maximum(scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5))
                         - np.float32(0.5), np.float32(0))
        lo = np.minimum(src.astype(np.int64), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        w1 = src - lo.astype(np.float32)
        return lo, hi, np.float32(1) - w1, w1
    ylo, yhi, yw0, yw1 = taps(mh, ih)
    xlo, xhi, xw0, xw1 = taps(mw, iw)
    top = m[:, ylo][:, :, xlo] * xw0 + m[:, ylo][:, :, xhi] * xw1
    bottom = m[:, yhi][:, :, xlo] * xw0 + m[:, yhi][:, :, xhi] * xw1
    up = yw0[None, :, None] * top + yw1[None, :, None] * bottom > 0
    # The resized photo's region of the input, to the photo by nearest neighbour.
    ys = np.minimum(((np.arange(h0) + 0.5) * rh / h0).astype(np.int64), rh - 1)
    xs = np.minimum(((np.arange(w0) + 0.5) * rw / w0).astype(np.int64), rw - 1)
    np.save(os.path.join(d, 'masks.npy'), np.ascontiguousarray(up[:, ys][:, :, xs], np.int32))
"#;

/// What the reference found for one object.
#[derive(Debug)]
struct Reference {
    class: i64,
    score: f32,
    bbox: [f32; 4],
}

fn box_iou(a: &[f32; 4], b: &[f32; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0) as f64;
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0) as f64;
    let area = |r: &[f32; 4]| ((r[2] - r[0]) * (r[3] - r[1])) as f64;
    let inter = w * h;
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        // Two empty boxes are the same box when their corners are.
        return if a == b { 1.0 } else { 0.0 };
    }
    inter / union
}

/// Decodes `model` (input `side` x `side`) on each photo with its min_score, temblor against
/// the numpy reference; returns the graph's metadata and every photo's objects.
fn decode_matches_reference(
    model: &Path,
    side: usize,
    photos: &[(&str, f32)],
) -> (Vec<(String, String)>, Vec<Vec<Object>>) {
    let options = Options {
        input_dims: vec![("images".into(), vec![1, 3, side, side])],
        verify: VerifyMode::Off,
        ..Options::default()
    };
    let compiled = temblor_pipeline::compile(model, &options).expect("compile");
    let plan = prepare(&compiled.compile, &Device::Cpu, &PrepareOptions::default()).unwrap();
    // Ultralytics' letterbox: what `run --image` uses for a YOLO package.
    let config = defaults::for_kind(Kind::Yolo, &compiled.parse).expect("a static image size");
    let mut all = Vec::new();
    for &(photo, min_score) in photos {
        let dir = tempfile::tempdir().unwrap();
        let path = shared().join(format!("images/{photo}.png"));
        let prepared = config.inputs(&path, &compiled.parse).expect("preprocess");
        let outputs = plan.run_once(&prepared.inputs).expect("run");
        for (_, t) in &outputs {
            let file = if t.shape.len() == 3 { "pred" } else { "protos" };
            temblor_tools::npy::write(&dir.path().join(format!("{file}.npy")), t).unwrap();
        }
        let geometry = Geometry {
            original: prepared.original,
            scale: prepared.scale,
        };
        let ours =
            yolo::objects(&outputs, min_score, IOU, MAX_DETECTIONS, &geometry).expect("decode");
        let theirs = reference(dir.path(), min_score, side, &prepared);
        let what = format!("{} on {photo}", model.display());
        assert!(
            !ours.is_empty(),
            "{what}: nothing detected above {min_score}"
        );
        assert_eq!(ours.len(), theirs.len(), "{what}: object count");
        for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            let iou = box_iou(&o.bbox, &t.bbox);
            assert_eq!(o.class, t.class, "{what}: object {i}'s class");
            assert!(
                (o.score - t.score).abs() <= 1e-5,
                "{what}: object {i}'s score {} against {}",
                o.score,
                t.score
            );
            assert!(
                iou > 0.999,
                "{what}: object {i}: box {:?} against {:?}",
                o.bbox,
                t.bbox
            );
        }
        let masks = dir.path().join("masks.npy");
        if masks.exists() {
            same_masks(&ours, &masks, prepared.original, &what);
        } else {
            assert!(ours.iter().all(|o| o.mask.is_none()), "{what}: masks");
        }
        println!("{what}: {} objects agree", ours.len());
        all.push(ours);
    }
    (compiled.parse.metadata.clone(), all)
}

/// Runs [`REFERENCE`] on the outputs in `dir`.
fn reference(
    dir: &Path,
    min_score: f32,
    side: usize,
    prepared: &temblor_tools::preprocess_config::Prepared,
) -> Vec<Reference> {
    let args = [
        min_score.to_string(),
        IOU.to_string(),
        MAX_DETECTIONS.to_string(),
        side.to_string(),
        side.to_string(),
        prepared.original.0.to_string(),
        prepared.original.1.to_string(),
        prepared.scale.0.to_string(),
        prepared.scale.1.to_string(),
        prepared.resized.0.to_string(),
        prepared.resized.1.to_string(),
    ];
    let (code, out, err) = output(
        Command::new(python())
            .args(["-c", REFERENCE])
            .arg(dir)
            .args(&args),
    );
    assert_eq!(code, 0, "the numpy reference failed: {err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(out.trim()).expect("reference JSON");
    rows.iter()
        .map(|r| {
            let b: Vec<f32> = r["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            Reference {
                class: r["class"].as_i64().unwrap(),
                score: r["score"].as_f64().unwrap() as f32,
                bbox: [b[0], b[1], b[2], b[3]],
            }
        })
        .collect()
}

/// Each object's mask against the reference's `[n, H, W]` at the photo's size: the pixels
/// where they differ are at most 1% of the two masks' union (so at least 99% of the photo).
fn same_masks(ours: &[Object], masks: &Path, (h, w): (usize, usize), what: &str) {
    let (shape, bits) = read_numbers(masks);
    assert_eq!(shape, [ours.len(), h, w], "{what}: reference masks");
    let mut nonempty = 0;
    for (i, o) in ours.iter().enumerate() {
        let mask = o
            .mask
            .as_ref()
            .expect("a segmentation model's object has a mask");
        assert_eq!(mask.image, (h, w), "{what}: object {i}'s mask size");
        let theirs = &bits[i * h * w..(i + 1) * h * w];
        let (mut differ, mut union) = (0usize, 0usize);
        for y in 0..h {
            for x in 0..w {
                let (a, b) = (mask.contains(x, y), theirs[y * w + x] != 0.0);
                differ += usize::from(a != b);
                union += usize::from(a || b);
            }
        }
        println!(
            "{what}: object {i}: mask of {} pixels, {differ} differ of {union} in the union",
            mask.area()
        );
        assert!(
            differ * 100 <= union,
            "{what}: object {i}: {differ} of {union} mask pixels differ"
        );
        nonempty += usize::from(mask.area() > 0);
    }
    assert!(nonempty > 0, "{what}: every mask is empty");
}

#[test]
fn yolov8_detection_matches_ultralytics_decode() {
    let model = real_model("yolov8n_nudenet_onnx", "320n.onnx");
    // astronaut.png is square; chelsea.png is wider than tall (padding at the bottom) and its
    // best score is near 0.13, hence the lower threshold; at 0.001 hundreds of candidates of
    // many classes go through NMS.
    let photos = [
        ("astronaut", 0.25),
        ("camera", 0.25),
        ("chelsea", 0.05),
        ("astronaut", 0.001),
    ];
    let (meta, objects) = decode_matches_reference(&model, 320, &photos);
    let labels = metadata::labels(&meta).expect("Ultralytics names in the model's metadata");
    assert_eq!(labels.len(), 18);
    assert_eq!(labels[1], "FACE_FEMALE");
    assert_eq!(labels[12], "FACE_MALE");
    assert!(
        objects[0].iter().any(|o| o.class == 1),
        "the astronaut's face (FACE_FEMALE) is found: {:?}",
        objects[0]
    );
    assert!(
        objects[1].iter().any(|o| o.class == 12),
        "the cameraman's face (FACE_MALE) is found: {:?}",
        objects[1]
    );
    assert!(objects[3].len() > 20, "NMS had little to do at 0.001");
}

#[test]
fn yolo11_segmentation_matches_ultralytics_decode() {
    let model = real_model("yolo11seg_slider_onnx", "slider.onnx");
    // rocket.png is wider than tall, astronaut.png square; at 0.01 on chelsea.png overlapping
    // candidates go through NMS.
    let photos = [("rocket", 0.25), ("astronaut", 0.1), ("chelsea", 0.01)];
    let (meta, _) = decode_matches_reference(&model, 640, &photos);
    assert_eq!(metadata::labels(&meta).unwrap(), ["s"]);
}
