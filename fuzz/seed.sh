#!/usr/bin/env bash
# Builds the fuzz corpora (fuzz/corpus/<target>/, not committed) from the cached real models
# and the ONNX node test suite: small models whole, Paddle and PIR programs joined with their parameters as the two-file targets split them (a
# little-endian u32 length, the first file, the second), a compiled package, .npy inputs,
# preprocessing YAML and images made small. Needs `scripts/setup.sh` (venv, models) and a
# built `temblor` (TEMBLOR, default target/debug/temblor).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/.."
models="${TEMBLOR_MODELS:-$HOME/.cache/temblor/models}"
shared="$root/../shared"
py="${TEMBLOR_PYTHON:-$HOME/.cache/temblor/venv/bin/python}"
temblor="${TEMBLOR:-${CARGO_TARGET_DIR:-$root/target}/debug/temblor}"
corpus="$here/corpus"
mkdir -p "$corpus"/{onnx_import,end_to_end,paddle_program,pir_json,package,npy,preprocess_yaml,image}

# (`sed -n`, not `head`: head closing the pipe early kills `find` with SIGPIPE under pipefail.)

# Two files as one input: what temblor_fuzz::split takes apart.
join() {
    "$py" - "$1" "$2" "$3" <<'PY'
import struct, sys
a, b = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
open(sys.argv[3], "wb").write(struct.pack("<I", len(a)) + a + b)
PY
}

# ONNX: the real models under 1 MB whole (an ONNX model without its weights does not import,
# so larger ones are left out), and every model of the ONNX backend node test suite in the
# `onnx` wheel: one small model per op and attribute variant, the odd shapes included.
find "$models" -path '*_onnx/*.onnx' -size -1M -exec cp {} "$corpus/onnx_import/" \;
node="$("$py" -c 'import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "backend/test/data/node"))')"
for d in "$node"/*/; do
    cp "$d/model.onnx" "$corpus/onnx_import/$(basename "$d").onnx"
    cp "$d/model.onnx" "$corpus/end_to_end/$(basename "$d").onnx"
done

for m in paddle_basic; do
    join "$shared/models/paddle/$m/model.pdmodel" "$shared/models/paddle/$m/model.pdiparams" \
        "$corpus/paddle_program/$m"
done
for m in native_control_flow native_det paddle_basic; do
    d="$shared/models/pir/$m"
    [ -f "$d/inference.json" ] && join "$d/inference.json" "$d/inference.pdiparams" "$corpus/pir_json/$m"
done

pkg="$(mktemp -d)"
"$temblor" compile "$models/ppocr_cls_v2_onnx/ch_ppocr_mobile_v2.0_cls_infer.onnx" \
    --input x:1x3x48x192 --no-verify --no-measure -o "$pkg/cls" >/dev/null
join "$pkg/cls/package.json" "$pkg/cls/weights.bin" "$corpus/package/cls"
# Small packages too: the classifier's 800 KB makes each execution slow, and the loader's paths
# (control-flow bodies, every op family's attributes) do not need big weights.
for m in test_conv_with_strides_padding test_maxpool_2d_pads test_resize_upsample_scales_linear \
    test_gemm_default_vector_bias test_loop11 test_if test_layer_normalization_2d_axis0 \
    test_dequantizelinear test_gather_0 test_slice test_instancenorm_example; do
    if "$temblor" compile "$node/$m/model.onnx" --no-verify --no-measure -o "$pkg/$m" >/dev/null 2>&1; then
        join "$pkg/$m/package.json" "$pkg/$m/weights.bin" "$corpus/package/$m"
    fi
done
cp "$pkg/cls/preprocess.yml" "$corpus/preprocess_yaml/cls.yml" 2>/dev/null || true
rm -rf "$pkg"

find "$shared/models" -type f -name '*.npy' -size -8k | sed -n '1,40p' | while read -r f; do
    cp "$f" "$corpus/npy/$(echo "$f" | md5sum | cut -c1-12).npy"
done
find "$models" "$shared/models/pir" -type f -name '*.yml' -size -16k | sed -n '1,20p' | while read -r f; do
    cp "$f" "$corpus/preprocess_yaml/$(echo "$f" | md5sum | cut -c1-12).yml"
done

# Images: small PNGs (RGB, gray, palette-free) written with the standard library, and the
# smallest photo whole; JPEG seeds come from the mutation test's encoder (tests/tests/mutation.rs).
"$py" - "$corpus/image" <<'PY'
import os, struct, sys, zlib
out = sys.argv[1]
def png(path, w, h, color, pixel):
    raw = b"".join(b"\0" + b"".join(pixel(x, y) for x in range(w)) for y in range(h))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
png(os.path.join(out, "rgb.png"), 16, 12, 2, lambda x, y: bytes([x * 15, y * 20, 99]))
png(os.path.join(out, "gray.png"), 9, 7, 0, lambda x, y: bytes([x * y]))
png(os.path.join(out, "rgba.png"), 5, 5, 6, lambda x, y: bytes([x, y, 7, 255]))
PY
cp "$shared/images/page.png" "$corpus/image/page.png"
echo "corpora in $corpus:"
for d in "$corpus"/*; do echo "  $(basename "$d"): $(ls "$d" | wc -l) files"; done
