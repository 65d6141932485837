"""CPU latency of temblor against onnxruntime on the same model and input, in one run.

    python scripts/bench_cpu.py [--runs N] [--threads T]

For each real model: compile it with the release `temblor`, then time
  * temblor: `temblor run PACKAGE` as a whole process (load the package, one inference, write
    the outputs), and
  * onnxruntime: the same work in-process (create the session, one inference, save outputs),
    timed inside Python so the interpreter's start-up and `import onnxruntime` are not charged,
and, for the steady state, onnxruntime's `session.run` alone. Prints a Markdown table of medians
and the ratio temblor / onnxruntime (below 1: temblor is faster).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TEMBLOR_SHARED", ROOT.parent / "shared"))
MODELS = Path(os.environ.get("TEMBLOR_MODELS", Path.home() / ".cache/temblor/models"))
TEMBLOR = ROOT / "target/release/temblor"

CASES = [
    # name, model, input name, dims, preprocess flags
    ("PP-OCRv4 det (page.png, 1x3x192x384)", MODELS / "ppocrv4_det_onnx/ch_PP-OCRv4_det_infer.onnx",
     "x", "1x3x192x384", ["--bgr", "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5"]),
    ("PP-OCRv4 det (page.png, 1x3x640x640)", MODELS / "ppocrv4_det_onnx/ch_PP-OCRv4_det_infer.onnx",
     "x", "1x3x640x640", ["--bgr", "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5"]),
    ("PicoDet layout (page.png, 1x3x800x608)", MODELS / "picodet_layout_onnx/layout_cdla.onnx",
     "image", "1x3x800x608", []),
]


def median_time(fn, runs):
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "temblor"], cwd=ROOT, check=True)
    print(f"| model | temblor run (ms) | onnxruntime load+run (ms) | ratio | onnxruntime run only (ms) |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, (label, model, name, dims, flags) in enumerate(CASES):
            h, w = dims.split("x")[2:]
            x = tmp / f"in{i}.npy"
            pkg = tmp / f"pkg{i}"
            subprocess.run([TEMBLOR, "preprocess", SHARED / "images/page.png", "--size", f"{h}x{w}",
                            "-o", x, *flags], check=True, capture_output=True)
            subprocess.run([TEMBLOR, "compile", model, "--input", f"{name}:{dims}", "-o", pkg],
                           check=True, capture_output=True)
            out = tmp / f"out{i}"
            ours = median_time(lambda: subprocess.run(
                [TEMBLOR, "run", pkg, "--input", f"{name}={x}", "-o", out], check=True,
                capture_output=True), args.runs)
            feed = {name: np.load(x)}
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = args.threads

            def ort_whole():
                sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
                for j, v in enumerate(sess.run(None, feed)):
                    np.save(tmp / f"ort{i}_{j}.npy", v)

            theirs = median_time(ort_whole, args.runs)
            sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
            run_only = median_time(lambda: sess.run(None, feed), args.runs)
            print(f"| {label} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} | {run_only:.1f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
