"""Steady-state latency of two temblor binaries, before and after a change, side by side.

    python scripts/bench_ab.py BEFORE AFTER [--threads 2] [--pairs 6] [--iters 40] [--zoo]

Each binary compiles the real models itself (its own package format), then `temblor bench
PACKAGE --json` runs alternately for each binary, `--pairs` times, in fresh processes (the order
flips every pair, so drift on a shared machine hits both alike). Prints a Markdown row per model:
the median of each side's p50, their ratio (after / before: below 1 is faster), and the range of
each side's p50s, which says how noisy the machine was.
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TEMBLOR_SHARED", ROOT.parent / "shared"))
MODELS = Path(os.environ.get("TEMBLOR_MODELS", Path.home() / ".cache/temblor/models"))

# label, model, dims to compile with
CASES = [
    ("PicoDet COCO twin 416 (ONNX)", SHARED / "models/real/picodet_coco_onnx/model.onnx",
     "image:1x3x416x416"),
    ("PP-OCRv4 det 640 (ONNX)", MODELS / "ppocrv4_det_onnx/ch_PP-OCRv4_det_infer.onnx",
     "x:1x3x640x640"),
    ("PicoDet COCO 416 (Paddle)", MODELS / "picodet_coco_paddle", "image:1x3x416x416"),
    # The second zoo's models, which temblor was not tuned on ("--zoo").
]
ZOO = [
    ("open_nsfw NHWC 224 (Keras)", MODELS / "open_nsfw_nhwc_onnx/open_nsfw.onnx",
     "input_0:1x224x224x3"),
    ("YOLOv8n nudenet 320", MODELS / "yolov8n_nudenet_onnx/320n.onnx", "images:1x3x320x320"),
    ("orinet 320", MODELS / "orinet_orient_onnx/orientation_orinet_fp32.onnx", "x:1x3x320x320"),
    ("YOLO11s-seg 640", MODELS / "yolo11seg_slider_onnx/slider.onnx", None),
    ("U^2-Net-p 320", MODELS / "u2netp_onnx/u2netp.onnx", "input.1:1x3x320x320"),
    ("ViT-S/14 224", MODELS / "vit_s_focus_onnx/vit_s_focus.onnx", "input_image:1x3x224x224"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--threads", default="2")
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--zoo", action="store_true", help="the second zoo instead of the tuned set")
    args = ap.parse_args()
    sides = {"before": args.before, "after": args.after}
    print(f"| model | threads | before p50 (ms) | after p50 (ms) | after / before "
          f"| before range | after range |")
    print("|---|---|---:|---:|---:|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, model, dims in ZOO if args.zoo else CASES:
            packages = {}
            for side, binary in sides.items():
                packages[side] = Path(tmp) / f"{side}-{len(packages)}-{model.stem}.temblor"
                given = ["--input", dims] if dims else []
                subprocess.run([binary, "compile", model, *given, "--no-measure",
                                "-o", packages[side]], check=True, capture_output=True)
            p50 = {side: [] for side in sides}
            for i in range(args.pairs):
                order = list(sides) if i % 2 == 0 else list(reversed(sides))
                for side in order:
                    out = subprocess.run(
                        [sides[side], "bench", packages[side], "--threads", args.threads,
                         "--iters", str(args.iters), "--warmup", "5", "--json"],
                        check=True, capture_output=True, text=True)
                    p50[side].append(json.loads(out.stdout)["p50_ms"])
            b, a = statistics.median(p50["before"]), statistics.median(p50["after"])
            span = {s: f"{min(v):.1f}-{max(v):.1f}" for s, v in p50.items()}
            print(f"| {label} | {args.threads} | {b:.1f} | {a:.1f} | {a / b:.2f} "
                  f"| {span['before']} | {span['after']} |", flush=True)


if __name__ == "__main__":
    main()
