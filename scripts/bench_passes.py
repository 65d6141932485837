"""What the optimizer buys on the CPU runtime: each model's optimized graph against its graph as
parsed (no rewrites), same binary, inputs and threads.

    python scripts/bench_passes.py [--threads 2] [--warmup 3] [--iters 20] [--runs 5] [--no-build]

Both sides are `temblor bench MODEL --json` in fresh processes, alternating, `--runs` times; the
unoptimized side adds `--unoptimized` (the parse graph). Inputs are the stored reference inputs of
each model. The table shows the median of the runs' p50s and ratio = optimized / unoptimized
(below 1: the passes made the model faster), plus the layer counts of the two graphs.
"""
import argparse
import json
import os
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TEMBLOR_SHARED", ROOT.parent / "shared"))
MODELS = Path(os.environ.get("TEMBLOR_MODELS", Path.home() / ".cache/temblor/models"))
PADDLE = SHARED / "models/paddle"
REAL = SHARED / "models/real"


def detector(name):
    d = PADDLE / name
    return (f"{name} (Paddle) 320", d / "model.pdmodel",
            {n: d / f"input_{n}.npy" for n in ["image", "im_shape", "scale_factor"]})


CASES = [
    ("PP-OCRv4 det (ONNX) 192x384", MODELS / "ppocrv4_det_onnx/ch_PP-OCRv4_det_infer.onnx",
     {"x": REAL / "ppocrv4_det_onnx/page/input_x.npy"}),
    ("PicoDet COCO (Paddle) 416", MODELS / "picodet_coco_paddle/model.pdmodel",
     {"image": REAL / "picodet_coco_paddle/astronaut/input_image.npy",
      "scale_factor": REAL / "picodet_coco_paddle/astronaut/input_scale_factor.npy"}),
    detector("yolov3_r18vd_dcn"),
    detector("ppyolo_r18vd_dcn"),
    detector("retinanet_r18_fpn"),
    detector("faster_rcnn_r18_fpn"),
]


def bench(temblor, model, inputs, args, unoptimized):
    cmd = [str(temblor), "bench", str(model), "--json", "--threads", str(args.threads),
           "--warmup", str(args.warmup), "--iters", str(args.iters)]
    for name, path in inputs.items():
        cmd += ["--input", f"{name}={path}"]
    if unoptimized:
        cmd.append("--unoptimized")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    doc = json.loads(out)
    return doc["p50_ms"] if "p50_ms" in doc else doc["rows"][0]["p50_ms"]


def layers(temblor, model, inputs):
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(temblor), "compile", str(model), "--no-verify", "-o", f"{tmp}/pkg"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    words = out.split()
    return words[words.index("parse") + 1], words[words.index("optimize") + 1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--temblor", default=str(ROOT / "target/release/temblor"))
    args = p.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--bin", "temblor"], cwd=ROOT, check=True)
    print(f"threads {args.threads}, {args.runs} runs of {args.iters} iterations "
          f"(after {args.warmup} warm-up); p50 in ms, median over runs")
    print("| model | layers parse -> optimize | unoptimized p50 | optimized p50 | ratio |")
    print("|---|---|---|---|---|")
    for label, model, inputs in CASES:
        before, after = [], []
        for _ in range(args.runs):
            before.append(bench(args.temblor, model, inputs, args, True))
            after.append(bench(args.temblor, model, inputs, args, False))
        b, a = statistics.median(before), statistics.median(after)
        lp, lo = layers(args.temblor, model, inputs)
        print(f"| {label} | {lp} -> {lo} | {b:.2f} | {a:.2f} | {a / b:.2f} |", flush=True)


if __name__ == "__main__":
    main()
