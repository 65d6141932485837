#!/usr/bin/env bash
# Prepares the folder that scripts/gpu_check.sh and scripts/bench_gpu.py take to a GPU machine
# with no network: the release binary, the ONNX models from the local caches, their .npy inputs
# (made here with `temblor preprocess` from ../shared/images), a few calibration photos and a
# manifest. Runs here; needs no GPU.
#
#   scripts/gpu_kit.sh [KIT]        # default gpu-kit/ (inside the repository, so it travels)
#
# Environment: TEMBLOR (the binary; default target/release/temblor, else
# $CARGO_TARGET_DIR/release/temblor, else /work/target-main/release/temblor), TEMBLOR_MODELS
# (default ~/.cache/temblor/models), TEMBLOR_SHARED (default ../shared), KIT_MAX_MB (default 60).
# Models are added in priority order while the kit stays under KIT_MAX_MB; the rest are listed
# as skipped. The binary is copied stripped when `strip` exists.
#
# KIT/manifest.tsv, one model a line, tab-separated:
#   name  model (relative to KIT)  compile dims (space-separated NAME:DIMS)
#   inputs (space-separated NAME=FILE relative to KIT)  extra compile flags
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KIT="${1:-gpu-kit}"
MODELS="${TEMBLOR_MODELS:-$HOME/.cache/temblor/models}"
SHARED="${TEMBLOR_SHARED:-$ROOT/../shared}"
MAX_MB="${KIT_MAX_MB:-60}"

find_temblor() {
    local c
    for c in "${TEMBLOR:-}" "$ROOT/target/release/temblor" \
        "${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/release/temblor}" \
        /work/target-main/release/temblor; do
        if [[ -n "$c" && -x "$c" ]]; then echo "$c"; return 0; fi
    done
    return 1
}
BIN="$(find_temblor)" || { echo "gpu_kit: no temblor binary; run cargo build --release" >&2; exit 1; }
[[ -d "$MODELS" ]] || { echo "gpu_kit: no model cache at $MODELS (run scripts/setup.sh)" >&2; exit 1; }
[[ -d "$SHARED/images" ]] || { echo "gpu_kit: no $SHARED/images" >&2; exit 1; }

case "$KIT" in /*) ;; *) KIT="$PWD/$KIT" ;; esac
rm -rf "$KIT"
mkdir -p "$KIT/models" "$KIT/inputs" "$KIT/calib" "$KIT/out"
echo "gpu_kit: binary $BIN"
if command -v strip >/dev/null; then
    strip -o "$KIT/temblor" "$BIN"
else
    cp "$BIN" "$KIT/temblor"
fi
chmod +x "$KIT/temblor"
# Calibration photos (int8 and auto plans) and the photo that bench_gpu.py preprocesses.
for img in camera chelsea clock_motion page; do cp "$SHARED/images/$img.png" "$KIT/calib/"; done
cp "$SHARED/images/coffee.png" "$KIT/photo.png"
: >"$KIT/manifest.tsv"

kit_bytes() { du -sb "$KIT" | cut -f1; }
SKIPPED=()
PPOCR=(--bgr --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5)

# add NAME MODEL_FILE "DIMS" "INPUTS" "FLAGS"; INPUTS: NAME=SOURCE where SOURCE is a .npy file
# or IMAGE@HxW[@preprocess flags, comma-joined with ';'] made with `temblor preprocess`.
add() {
    local name="$1" src="$2" dims="$3" inputs="$4" flags="$5"
    if [[ ! -f "$src" ]]; then SKIPPED+=("$name (not in the cache: $src)"); return; fi
    local need; need=$(stat -c %s "$src")
    local tmp; tmp="$(mktemp -d)"
    local spec iname source rel=() image size pflags
    for spec in $inputs; do
        iname="${spec%%=*}"; source="${spec#*=}"
        if [[ "$source" == *.npy ]]; then
            cp "$source" "$tmp/$iname.npy"
        else
            IFS=@ read -r image size pflags <<<"$source"
            # shellcheck disable=SC2086
            "$BIN" preprocess "$SHARED/images/$image" --size "$size" -o "$tmp/$iname.npy" \
                ${pflags//;/ } >/dev/null
        fi
        need=$((need + $(stat -c %s "$tmp/$iname.npy")))
        rel+=("$iname=inputs/$name/$iname.npy")
    done
    local total=$(( $(kit_bytes) + need ))
    if (( total > MAX_MB * 1000000 )); then
        SKIPPED+=("$name ($((need / 1000000)) MB would take the kit to $((total / 1000000)) MB > $MAX_MB MB)")
        rm -rf "$tmp"; return
    fi
    mkdir -p "$KIT/models/$name" "$KIT/inputs/$name"
    cp "$src" "$KIT/models/$name/"
    [[ -f "$src.data" ]] && cp "$src.data" "$KIT/models/$name/"
    mv "$tmp"/*.npy "$KIT/inputs/$name/"
    rm -rf "$tmp"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "models/$name/$(basename "$src")" "$dims" \
        "${rel[*]}" "$flags" >>"$KIT/manifest.tsv"
    echo "gpu_kit: + $name ($((need / 1000)) kB)"
}

P="$(IFS=';'; echo "${PPOCR[*]}")"
PICO="$SHARED/models/real/picodet_coco_onnx"
add yolov8n_nudenet_onnx "$MODELS/yolov8n_nudenet_onnx/320n.onnx" "images:1x3x320x320" \
    "images=astronaut.png@320x320@--mean;0,0,0;--std;1,1,1" ""
add picodet_coco_onnx "$PICO/model.onnx" "image:1x3x416x416" \
    "image=$PICO/astronaut/input_image.npy scale_factor=$PICO/astronaut/input_scale_factor.npy" ""
add ppocrv4_det_onnx "$MODELS/ppocrv4_det_onnx/ch_PP-OCRv4_det_infer.onnx" "x:1x3x480x480" \
    "x=page.png@480x480@$P" ""
add ppocrv4_rec_onnx "$MODELS/ppocrv4_rec_onnx/ch_PP-OCRv4_rec_infer.onnx" "x:1x3x48x320" \
    "x=text.png@48x320@$P" ""
add ppocr_cls_v2_onnx "$MODELS/ppocr_cls_v2_onnx/ch_ppocr_mobile_v2.0_cls_infer.onnx" \
    "x:1x3x48x192" "x=text.png@48x192@$P" ""
add picodet_layout_onnx "$MODELS/picodet_layout_onnx/layout_cdla.onnx" "image:1x3x800x608" \
    "image=page.png@800x608" ""
add u2netp_onnx "$MODELS/u2netp_onnx/u2netp.onnx" "input.1:1x3x320x320" \
    "input.1=astronaut.png@320x320" ""
add orinet_orient_onnx "$MODELS/orinet_orient_onnx/orientation_orinet_fp32.onnx" \
    "x:1x3x320x320" "x=page.png@320x320" ""
add centerface_onnx "$MODELS/centerface_onnx/centerface.onnx" "input.1:1x3x480x640" \
    "input.1=astronaut.png@480x640" "--override-shapes"
add open_nsfw_nhwc_onnx "$MODELS/open_nsfw_nhwc_onnx/open_nsfw.onnx" "input_0:1x224x224x3" "" ""
add yolo11seg_slider_onnx "$MODELS/yolo11seg_slider_onnx/slider.onnx" "images:1x3x640x640" \
    "images=astronaut.png@640x640@--mean;0,0,0;--std;1,1,1" ""
add vit_s_focus_onnx "$MODELS/vit_s_focus_onnx/vit_s_focus.onnx" "input_image:1x3x224x224" "" ""

{
    echo "temblor GPU kit, made $(date -u +%Y-%m-%dT%H:%MZ) from $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "binary: $BIN ($("$KIT/temblor" --version 2>/dev/null || echo 'no --version'))"
    echo "run on the GPU machine: scripts/gpu_check.sh $(basename "$KIT")"
    echo "models: $(cut -f1 "$KIT/manifest.tsv" | tr '\n' ' ')"
    for s in "${SKIPPED[@]}"; do echo "skipped: $s"; done
} >"$KIT/README.txt"
for s in "${SKIPPED[@]}"; do echo "gpu_kit: skipped $s"; done
echo "gpu_kit: $KIT holds $(($(kit_bytes) / 1000000)) MB, $(wc -l <"$KIT/manifest.tsv") models"
