"""CPU latency and peak memory of temblor against onnxruntime, same model, input and thread count.

    python scripts/bench_cpu.py [--threads 1,2] [--warmup 5] [--iters 20] [--runs 3] [--only SUBSTR]
                                [--no-build] [--temblor PATH]

For each real model, both sides run the same `.npy` inputs in fresh processes, `--runs` times:
  * temblor: `temblor bench PACKAGE --threads N --warmup W --iters I --json` on a package compiled
    once beforehand (the steady state of the release binary);
  * onnxruntime: this script in worker mode (`--ort-worker`): one InferenceSession with
    intra_op_num_threads = N, inter_op_num_threads = 1, sequential execution and all graph
    optimizations, W untimed and I timed `session.run` calls.
Latencies are per-call wall times; p50 is the nearest-rank median of a run's I calls, and the
table shows the median of the runs' p50s. Peak RSS is each process's VmHWM (the largest over the
runs): temblor's includes loading the package, onnxruntime's includes the Python interpreter,
numpy and the onnxruntime import (printed below the table as the worker's RSS before the session
was created). Thread count 0 means "the runtime's default": every core for temblor, the physical
cores for onnxruntime. Prints a Markdown table; ratio = temblor p50 / onnxruntime p50 (below 1:
temblor is faster).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TEMBLOR_SHARED", ROOT.parent / "shared"))
MODELS = Path(os.environ.get("TEMBLOR_MODELS", Path.home() / ".cache/temblor/models"))
PICODET = SHARED / "models/real/picodet_coco_onnx"
PREPROCESS_PPOCR = ["--bgr", "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5"]

# label, model, dims to compile with, inputs: name -> .npy file, or (image, size, preprocess flags)
CASES = [
    ("PicoDet COCO twin 416x416", PICODET / "model.onnx", ["image:1x3x416x416"],
     {"image": PICODET / "astronaut/input_image.npy",
      "scale_factor": PICODET / "astronaut/input_scale_factor.npy"}),
    ("PP-OCRv4 det 640x640", MODELS / "ppocrv4_det_onnx/ch_PP-OCRv4_det_infer.onnx",
     ["x:1x3x640x640"], {"x": ("page.png", "640x640", PREPROCESS_PPOCR)}),
]


def peak_rss_bytes():
    """VmHWM of this process, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def current_rss_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def percentile(sorted_ms, p):
    """Nearest rank, as `temblor bench` computes it."""
    rank = -(-p * len(sorted_ms) // 100)
    return sorted_ms[min(max(int(rank), 1), len(sorted_ms)) - 1]


def ort_worker(args):
    """One onnxruntime measurement; prints one JSON object."""
    import numpy as np
    import onnxruntime as ort

    baseline = current_rss_bytes()
    feed = {}
    for spec in args.input:
        name, path = spec.split("=", 1)
        feed[name] = np.load(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(args.ort_worker, opts, providers=["CPUExecutionProvider"])
    for _ in range(args.warmup):
        sess.run(None, feed)
    times = []
    for _ in range(args.iters):
        start = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    print(json.dumps({
        "p50_ms": percentile(times, 50),
        "p90_ms": percentile(times, 90),
        "p99_ms": percentile(times, 99),
        "mean_ms": statistics.fmean(times),
        "peak_rss_bytes": peak_rss_bytes(),
        "baseline_rss_bytes": baseline,
    }))


def run_json(cmd):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout)


def prepare_inputs(temblor, inputs, tmp):
    """Every input as a .npy file: given ones as they are, images preprocessed by temblor."""
    files = {}
    for name, source in inputs.items():
        if isinstance(source, Path):
            files[name] = source
            continue
        image, size, flags = source
        out = tmp / f"{name}_{size}.npy"
        subprocess.run([temblor, "preprocess", SHARED / "images" / image, "--size", size,
                        "-o", out, *flags], check=True, capture_output=True)
        files[name] = out
    return files


def mib(value):
    return "n/a" if value is None else f"{value / 2**20:.0f} MiB"


def measure(label, model, dims, inputs, threads, args, temblor, tmp):
    files = prepare_inputs(temblor, inputs, tmp)
    pkg = tmp / f"{model.stem}.temblor"
    if not pkg.exists():
        compile_cmd = [temblor, "compile", model, "-o", pkg]
        for d in dims:
            compile_cmd += ["--input", d]
        subprocess.run(compile_cmd, check=True, capture_output=True)
    feed = [f"{name}={path}" for name, path in files.items()]
    common = ["--threads", str(threads), "--warmup", str(args.warmup), "--iters", str(args.iters)]
    ours, theirs = [], []
    # Interleaved, so a change in machine load affects both sides alike.
    for _ in range(args.runs):
        bench = [temblor, "bench", pkg, *common, "--json"]
        for f in feed:
            bench += ["--input", f]
        ours.append(run_json(bench))
        worker = [sys.executable, __file__, "--ort-worker", model, *common]
        for f in feed:
            worker += ["--input", f]
        theirs.append(run_json(worker))
    p50 = lambda rs: statistics.median(r["p50_ms"] for r in rs)
    peak = lambda rs: max((r["peak_rss_bytes"] for r in rs if r["peak_rss_bytes"]), default=None)
    t, o = p50(ours), p50(theirs)
    shown = threads if threads else f"default (temblor {ours[0]['threads']})"
    print(f"| {label} | {shown} | {t:.1f} | {o:.1f} | {t / o:.2f} | "
          f"{mib(peak(ours))} | {mib(peak(theirs))} |", flush=True)
    return theirs[0]["baseline_rss_bytes"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", default="1", help="comma-separated thread counts (0 = default)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3, help="fresh processes per side")
    ap.add_argument("--only", default="", help="run only the models whose label contains this")
    ap.add_argument("--no-build", action="store_true", help="use target/release/temblor as is")
    ap.add_argument("--temblor", type=Path, default=ROOT / "target/release/temblor")
    ap.add_argument("--ort-worker", metavar="MODEL", help=argparse.SUPPRESS)
    ap.add_argument("--input", action="append", default=[], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ort_worker:
        args.threads = int(args.threads)
        ort_worker(args)
        return
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "temblor"], cwd=ROOT,
                       check=True)
    threads = [int(t) for t in args.threads.split(",")]
    print(f"warmup {args.warmup}, iters {args.iters}, runs {args.runs} per side; "
          f"{os.cpu_count()} logical cores\n")
    print("| model | threads | temblor p50 (ms) | onnxruntime p50 (ms) | ratio | temblor peak RSS "
          "| onnxruntime peak RSS |")
    print("|---|---|---:|---:|---:|---:|---:|")
    baseline = None
    with tempfile.TemporaryDirectory() as tmp:
        for label, model, dims, inputs in CASES:
            if args.only.lower() not in label.lower():
                continue
            for n in threads:
                baseline = measure(label, model, dims, inputs, n, args, args.temblor, Path(tmp))
    print(f"\nonnxruntime's worker held {mib(baseline)} before creating its session (Python, "
          "numpy, onnxruntime).")


if __name__ == "__main__":
    main()
