#!/usr/bin/env bash
# The main job: fetch the real PP-OCRv4 text detector, compile it, and run it on a real photo
# of a printed page with the CPU runtime. Leaves everything in ./demo/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${TEMBLOR_SHARED:-$root/../shared}
cd "$root"
scripts/setup.sh
cargo build --release --bin temblor
temblor=${CARGO_TARGET_DIR:-target}/release/temblor
model=${TEMBLOR_MODELS:-$HOME/.cache/temblor/models}/ppocrv4_det_onnx/ch_PP-OCRv4_det_infer.onnx
mkdir -p demo
# PaddleOCR's preprocessing: BGR, (x/255 - 0.5) / 0.5, sides multiples of 32.
$temblor preprocess "$shared/images/page.png" --size 192x384 --bgr \
    --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 -o demo/page.npy
$temblor inspect "$model"
$temblor compile "$model" --input x:1x3x192x384 -o demo/ppocrv4_det.temblor
$temblor run demo/ppocrv4_det.temblor --input x=demo/page.npy -o demo/out
echo "views: demo/ppocrv4_det.temblor/{parse,optimize,compile}.prototxt (open in Netron)"
