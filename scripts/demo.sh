#!/usr/bin/env bash
# The main job, photo in, answer out: fetch a real PaddleDetection detector (PicoDet, COCO) and
# the real PP-OCRv4 text detector and recognizer, compile each into a package, then find the
# objects in a photo and read a photographed page on the CPU runtime. Leaves everything in
# ./demo/: the packages (with their Netron views), demo/detect/ and demo/ocr/, each holding
# results.json and the photo with the answer drawn.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${TEMBLOR_SHARED:-$root/../shared}
models=${TEMBLOR_MODELS:-$HOME/.cache/temblor/models}
cd "$root"
scripts/setup.sh
cargo build --release --bin temblor
temblor=${CARGO_TARGET_DIR:-target}/release/temblor
mkdir -p demo

# Objects: the package records the exporter's preprocessing and labels (infer_cfg.yml) and
# what its outputs mean, so `run --image` needs only the photo.
$temblor compile "$models/picodet_coco_paddle/model.pdmodel" -o demo/picodet.temblor
$temblor run demo/picodet.temblor --image "$shared/images/coffee.png" \
    --image "$shared/images/astronaut.png" -o demo/detect

# Text: DBNet finds the lines, each is cut out and straightened, SVTR reads it.
$temblor compile "$models/ppocrv4_det_onnx/ch_PP-OCRv4_det_infer.onnx" -o demo/ppocr_det.temblor \
    --postprocess text-detection
# The recognizer's dictionary comes from the model's own metadata (RapidOCR's `character`).
$temblor compile "$models/ppocrv4_rec_onnx/ch_PP-OCRv4_rec_infer.onnx" -o demo/ppocr_rec.temblor
$temblor ocr --det demo/ppocr_det.temblor --rec demo/ppocr_rec.temblor \
    "$shared/images/page.png" -o demo/ocr

echo "pictures: demo/detect/coffee.png demo/detect/astronaut.png demo/ocr/page.png"
echo "answers: demo/detect/results.json demo/ocr/results.json"
echo "views: demo/*.temblor/{parse,optimize,compile}.prototxt (open in Netron)"
