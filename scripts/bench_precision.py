#!/usr/bin/env python3
"""Precision plans on the CPU, the Quake table's layout: each model compiled fp32, fp16, bf16, int8
and auto (over fp16, and over fp32 as for the CPU runtime; calibrated on ../shared/images) at batch
1, 2, 4 and 8, timed with `temblor bench`: latency, throughput (images/s) and speedup against
temblor's fp32 at the same batch. At batch 1
the int8 plan also runs with its int8 layers as written (`--int8 simulate`: quantize, dequantize,
float convolution). The peers run the fp32 model and the int8 package's own Q/DQ graph
(`compile.ort.onnx`, which onnxruntime and OpenVINO fuse into their int8 kernels) at the same
batch; OpenVINO also runs the fp32 model at its bf16 inference precision, the bf16 plan's peer.

    ~/.cache/temblor/venv/bin/python scripts/bench_precision.py [--threads 2] [--rounds 3] \
        [--batches 1,2,4,8]

Each round runs every side once, in a fresh process, in the same order; the table gives the
median of each side's p50 over the rounds. A model whose export fixes its batch (PicoDet's
twin ties a Concat to batch 1) is measured at batch 1 only.
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
    """(label, model, input dims by batch, preprocess file, inputs as name -> .npy at batch 1,
    the largest batch the export takes)."""
    picodet_case = SHARED / "models/real/picodet_coco_onnx/chelsea"
    yolo_cfg = tmp / "yolo.yml"
    yolo_cfg.write_text(YOLO_PREPROCESS)
    return [
        ("PicoDet COCO twin 416", SHARED / "models/real/picodet_coco_onnx/model.onnx",
         lambda b: ["--input", f"image:{b}x3x416x416"], MODELS / "picodet_coco_paddle/infer_cfg.yml",
         {"image": picodet_case / "input_image.npy",
          "scale_factor": picodet_case / "input_scale_factor.npy"}, 1),
        ("YOLOv8n nudenet 320", MODELS / "yolov8n_nudenet_onnx/320n.onnx",
         lambda b: ["--input", f"images:{b}x3x320x320"], yolo_cfg, {"images": None}, 8),
    ]


# Each plan's compile flags: auto over fp32 is the search for the CPU runtime (`--auto-base`),
# auto over bf16 the one for a CPU with AMX, where bf16 layers run fastest.
PLANS = {
    "fp32": [],
    "fp16": ["--precision", "fp16"],
    "bf16": ["--precision", "bf16"],
    "int8": ["--precision", "int8"],
    "auto": ["--precision", "auto"],
    "auto over fp32": ["--precision", "auto", "--auto-base", "fp32"],
    "auto over bf16": ["--precision", "auto", "--auto-base", "bf16"],
}


def compile_package(temblor, model, flags, preprocess, out, plan):
    """Compiles `model` with `flags` and the plan named `plan` into the package `out`."""
    cmd = [temblor, "compile", model, "-o", out, "--no-measure", *flags, *PLANS[plan]]
    if plan != "fp32":
        cmd += ["--calib", SHARED / "images", "--preprocess", preprocess]
    subprocess.run([str(c) for c in cmd], check=True, capture_output=True)


def temblor_p50(temblor, package, feed, threads, iters, mode):
    cmd = [temblor, "bench", package, "--threads", str(threads), "--iters", str(iters),
           "--warmup", "5", "--int8", mode, "--json"]
    for name, path in feed.items():
        cmd += ["--input", f"{name}={path}"]
    out = subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["p50_ms"]


def peer_p50(peer, model, inputs, threads, iters, precision="f32"):
    cmd = [sys.executable, ROOT / "scripts/bench_cpu.py", "--peer-worker", peer, "--model", model,
           "--threads", str(threads), "--warmup", "5", "--iters", str(iters),
           "--precision", precision]
    for name, path in inputs.items():
        cmd += ["--input", f"{name}={path}"]
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["p50_ms"]


def batched(feed, batch, tmp):
    """Each input's .npy repeated `batch` times along axis 0."""
    import numpy as np
    if batch == 1:
        return feed
    out = {}
    for name, path in feed.items():
        x = np.load(path)
        target = tmp / f"{path.stem}.b{batch}.npy"
        np.save(target, np.concatenate([x] * batch, axis=0))
        out[name] = target
    return out


def has_openvino():
    try:
        import openvino  # noqa: F401
        return True
    except ImportError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--batches", default="1,2,4,8")
    ap.add_argument("--temblor", type=Path, default=ROOT / "target/release/temblor")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    peers = ["ort", "openvino"] if has_openvino() else ["ort"]
    names = {"ort": "onnxruntime", "openvino": "OpenVINO"}
    print(f"threads {args.threads}, {args.rounds} rounds of {args.iters} runs; p50 ms, median "
          "over rounds; peers on the fp32 model and on the int8 package's Q/DQ graph\n")
    peer_cols = " | ".join(f"{names[p]} ms | temblor / {names[p]}" for p in peers)
    print(f"| model | batch | plan | temblor ms | images/s | speedup vs fp32 | {peer_cols} |")
    print("|---|---:|---|---:|---:|---:|" + "---:|---:|" * len(peers))
    plans = list(PLANS)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for label, model, dims, preprocess, inputs, largest in cases(tmp):
            feed = {}
            for name, path in inputs.items():
                if path is None:
                    path = tmp / f"{name}.npy"
                    subprocess.run([str(args.temblor), "preprocess",
                                    str(SHARED / "images/astronaut.png"), "--size", "320x320",
                                    "--mean", "0,0,0", "--std", "1,1,1", "-o",
                                    str(path)], check=True, capture_output=True)
                feed[name] = path
            for batch in [b for b in batches if b <= largest]:
                packages = {p: tmp / f"{label}.b{batch}.{p.replace(' ', '_')}" for p in plans}
                for plan, package in packages.items():
                    compile_package(args.temblor, model, dims(batch), preprocess, package, plan)
                run_feed = batched(feed, batch, tmp)
                sides = {p: (lambda p=p: temblor_p50(args.temblor, packages[p], run_feed,
                                                     args.threads, args.iters, "native"))
                         for p in plans}
                if batch == 1:
                    sides["int8 simulated"] = lambda: temblor_p50(
                        args.temblor, packages["int8"], run_feed, args.threads, args.iters,
                        "simulate")
                # (peer, plan): the graph the peer runs and its inference precision. OpenVINO's
                # bf16 (the fp32 model with a bf16 inference precision) is the bf16 plan's peer;
                # onnxruntime's CPU provider has no bf16 convolution.
                graphs = {"fp32": (model, "f32"),
                          "int8": (packages["int8"] / "compile.ort.onnx", "f32")}
                peer_graphs = {(peer, plan): g for peer in peers for plan, g in graphs.items()}
                if "openvino" in peers:
                    peer_graphs[("openvino", "bf16")] = (model, "bf16")
                peer_sides = {k: (lambda k=k, g=g: peer_p50(
                    k[0], g[0], run_feed, args.threads, args.iters, g[1]))
                    for k, g in peer_graphs.items()}
                times = {k: [] for k in [*sides, *peer_sides]}
                for _ in range(args.rounds):
                    for k, f in [*sides.items(), *peer_sides.items()]:
                        times[k].append(f())
                m = {k: (statistics.median(v) if None not in v else None)
                     for k, v in times.items()}
                for plan in sides:
                    cols = []
                    for peer in peers:
                        theirs = m.get((peer, plan))
                        cols.append(f"{theirs:.2f} | {m[plan] / theirs:.2f}" if theirs
                                    else ("fails | -" if (peer, plan) in m else "- | -"))
                    print(f"| {label} | {batch} | {plan} | {m[plan]:.2f} | "
                          f"{1e3 * batch / m[plan]:.1f} | {m['fp32'] / m[plan]:.2f} | "
                          f"{' | '.join(cols)} |", flush=True)


if __name__ == "__main__":
    main()
