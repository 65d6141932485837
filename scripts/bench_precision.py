#!/usr/bin/env python3
"""Precision plans on the CPU: each model compiled fp32, fp16, int8 and auto (calibrated on
../shared/images), timed with `temblor bench` at batch 1; the int8 plan also with its int8 layers
run as written (`--int8 simulate`: quantize, dequantize, float convolution); onnxruntime on the
fp32 model and on the int8 package's own Q/DQ graph (`compile.ort.onnx`, which onnxruntime fuses
into its int8 kernels).

    ~/.cache/temblor/venv/bin/python scripts/bench_precision.py [--threads 2] [--rounds 3]

Each round runs every side once, in a fresh process, in the same order; the table gives the
median of each side's p50 over the rounds and the speedups against temblor's fp32.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TEMBLOR_SHARED", ROOT.parent / "shared"))
MODELS = Path(os.environ.get("TEMBLOR_MODELS", Path.home() / ".cache/temblor/models"))

YOLO_PREPROCESS = "resize: {size: [320, 320]}\nmean: [0.0, 0.0, 0.0]\nstd: [1.0, 1.0, 1.0]\n"


def cases(tmp):
    """(label, model, compile flags, preprocess file, inputs as name -> .npy)."""
    picodet_case = SHARED / "models/real/picodet_coco_onnx/chelsea"
    yolo_cfg = tmp / "yolo.yml"
    yolo_cfg.write_text(YOLO_PREPROCESS)
    return [
        ("PicoDet COCO twin 416", SHARED / "models/real/picodet_coco_onnx/model.onnx",
         ["--input", "image:1x3x416x416"], MODELS / "picodet_coco_paddle/infer_cfg.yml",
         {"image": picodet_case / "input_image.npy",
          "scale_factor": picodet_case / "input_scale_factor.npy"}),
        ("YOLOv8n nudenet 320", MODELS / "yolov8n_nudenet_onnx/320n.onnx",
         ["--input", "images:1x3x320x320"], yolo_cfg, {"images": None}),
    ]


def compile_package(temblor, model, flags, preprocess, out, precision):
    cmd = [temblor, "compile", model, "-o", out, "--no-measure", *flags]
    if precision != "fp32":
        cmd += ["--precision", precision, "--calib", SHARED / "images", "--preprocess", preprocess]
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True)


def temblor_p50(temblor, package, threads, iters, mode):
    out = subprocess.run(
        [str(temblor), "bench", str(package), "--threads", str(threads), "--iters", str(iters),
         "--warmup", "5", "--int8", mode, "--json"],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out)["p50_ms"]


def ort_p50(model, inputs, threads, iters):
    cmd = [sys.executable, ROOT / "scripts/bench_cpu.py", "--peer-worker", "ort", "--model", model,
           "--threads", str(threads), "--warmup", "5", "--iters", str(iters)]
    for name, path in inputs.items():
        cmd += ["--input", f"{name}={path}"]
    out = subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["p50_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--temblor", type=Path, default=ROOT / "target/release/temblor")
    args = ap.parse_args()
    print(f"threads {args.threads}, {args.rounds} rounds of {args.iters} runs; p50 ms, median "
          "over rounds\n")
    print("| model | plan | temblor ms | images/s | speedup vs fp32 | onnxruntime ms | "
          "temblor / onnxruntime |")
    print("|---|---|---:|---:|---:|---:|---:|")
    plans = ["fp32", "fp16", "int8", "auto"]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for label, model, flags, preprocess, inputs in cases(tmp):
            packages = {p: tmp / f"{label}.{p}" for p in plans}
            for plan, package in packages.items():
                compile_package(args.temblor, model, flags, preprocess, package, plan)
            feed = {}
            for name, path in inputs.items():
                if path is None:
                    path = tmp / f"{name}.npy"
                    subprocess.run([str(args.temblor), "preprocess",
                                    str(SHARED / "images/astronaut.png"), "--size", "320x320",
                                    "--mean", "0,0,0", "--std", "1,1,1", "-o",
                                    str(path)], check=True, capture_output=True)
                feed[name] = path
            sides = {p: (lambda p=p: temblor_p50(args.temblor, packages[p], args.threads,
                                                 args.iters, "native")) for p in plans}
            sides["int8 simulated"] = lambda: temblor_p50(args.temblor, packages["int8"],
                                                          args.threads, args.iters, "simulate")
            peers = {
                "fp32": lambda: ort_p50(model, feed, args.threads, args.iters),
                "int8": lambda: ort_p50(packages["int8"] / "compile.ort.onnx", feed,
                                        args.threads, args.iters),
            }
            times = {k: [] for k in [*sides, *(f"ort {k}" for k in peers)]}
            for _ in range(args.rounds):
                for k, f in sides.items():
                    times[k].append(f())
                for k, f in peers.items():
                    times[f"ort {k}"].append(f())
            m = {k: statistics.median(v) for k, v in times.items()}
            for plan in [*plans, "int8 simulated"]:
                peer = m.get(f"ort {plan}")
                ort = f"{peer:.2f} | {m[plan] / peer:.2f}" if peer else "- | -"
                print(f"| {label} | {plan} | {m[plan]:.2f} | {1e3 / m[plan]:.1f} | "
                      f"{m['fp32'] / m[plan]:.2f} | {ort} |", flush=True)


if __name__ == "__main__":
    main()
